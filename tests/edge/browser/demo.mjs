// Drives the browser demo in Debian's Chromium (playwright-core, no downloaded browser) through Envoy.
//
//   node tests/edge/browser/demo.mjs STEP... (env: BASE_URL, TOKEN, VIDEO_ID, USER_DATA_DIR, SCREENSHOT,
//                                              SPKI_PINS)
//
// Steps run in order on one page; each adds its observations to the JSON printed at the end. A failed
// expectation throws: the process exits 1 with the reason (and a screenshot of the failure).
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { chromium } from "playwright-core";

const BASE_URL = process.env.BASE_URL ?? "http://127.0.0.1:8080";
const TOKEN = process.env.TOKEN ?? "";
const VIDEO_ID = process.env.VIDEO_ID ?? "flexbox-layout";
const SCREENSHOT = process.env.SCREENSHOT ?? "";
const WAIT_MS = Number(process.env.WAIT_MS ?? 60_000);
// An https BASE_URL whose certificate no system CA issued: Chromium accepts exactly the public keys listed here
// (base64 SHA-256 of the SPKI, comma-separated) and still rejects every other certificate it cannot verify.
const SPKI_PINS = process.env.SPKI_PINS ?? "";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const results = {};

function expect(condition, message) {
  if (!condition) {
    throw new Error(`expectation failed: ${message}`);
  }
}

async function text(page, selector) {
  return (await page.locator(selector).first().textContent()) ?? "";
}

// Click a citation chip and wait until the player shows the moment it cites; returns that moment (seconds).
async function seekWith(page, chip) {
  const start = Number(await chip.getAttribute("data-start"));
  await chip.click();
  const minutes = String(Math.floor(start / 60)).padStart(2, "0");
  const seconds = String(Math.floor(start % 60)).padStart(2, "0");
  await page.waitForFunction(
    (label) => document.querySelector("[data-testid=time]")?.textContent?.startsWith(label),
    `${minutes}:${seconds}`,
    { timeout: WAIT_MS },
  );
  return start;
}

const steps = {
  // The dev login by URL fragment: the page signs in and removes the token from the address bar.
  async open(page) {
    await page.goto(`${BASE_URL}/#token=${encodeURIComponent(TOKEN)}&video=${VIDEO_ID}`);
    await page.waitForSelector("body[data-ready=true]", { timeout: WAIT_MS });
    results.open = {
      who: await text(page, "[data-testid=who]"),
      title: await text(page, "[data-testid=lecture-title]"),
      cues: await page.locator("[data-testid=cue]").count(),
      hash: new URL(page.url()).hash,
    };
  },

  // The dev login by pasting a token into the sign-in dialog.
  async paste(page) {
    await page.goto(`${BASE_URL}/`);
    await page.waitForSelector("#sign-in[open]", { timeout: WAIT_MS });
    await page.fill("[data-testid=token-input]", TOKEN);
    await page.click("[data-testid=token-submit]");
    await page.waitForSelector("body[data-ready=true]", { timeout: WAIT_MS });
    results.paste = { who: await text(page, "[data-testid=who]") };
  },

  async preferences(page) {
    await page.click("#preferences summary");
    const select = page.locator("[data-testid=pref-personality]");
    await select.waitFor({ timeout: WAIT_MS });
    await select.selectOption({ label: "Peer" });
    await page.waitForFunction(
      () => document.querySelector("[data-testid=preferences-status]")?.textContent === "saved",
      null,
      { timeout: WAIT_MS },
    );
    results.preferences = { personality: await select.inputValue() };
    await page.click("#preferences summary");
  },

  // Ask a question; record every length the answer bubble's text passes through while it streams.
  async chat(page) {
    await page.evaluate(() => {
      window.__answerLengths = [];
      const log = document.querySelector("[data-testid=chat-log]");
      new MutationObserver(() => {
        const answers = log.querySelectorAll("[data-testid=answer] .answer-text");
        const last = answers[answers.length - 1];
        if (last) {
          window.__answerLengths.push([Math.round(performance.now()), last.textContent.length]);
        }
      }).observe(log, { childList: true, subtree: true, characterData: true });
    });
    await page.fill("[data-testid=question]", process.env.QUESTION ?? "How do I center an item with flexbox?");
    await page.click("[data-testid=ask]");
    const answer = page.locator("[data-testid=answer]").last();
    await answer.locator("[data-testid=answer-meta]").waitFor({ timeout: WAIT_MS });
    // [milliseconds, length] each time the answer text changed length.
    const samples = await page.evaluate(() => window.__answerLengths);
    const growth = samples.filter((sample, index) => index === 0 || sample[1] !== samples[index - 1][1]);
    const citations = answer.locator("[data-testid=citation]");
    results.chat = {
      text: await answer.locator(".answer-text").textContent(),
      growth,
      citations: await citations.count(),
      citationStart: Number((await citations.first().getAttribute("data-start")) ?? "-1"),
      meta: await text(page, "[data-testid=answer-meta]"),
    };
  },

  // A citation moves the player to the cited moment.
  async cite(page) {
    const citation = page.locator("[data-testid=answer] [data-testid=citation]").first();
    const start = await seekWith(page, citation);
    results.cite = { start, time: await text(page, "[data-testid=time]") };
  },

  // The line the answer cited carries a marker of the question; the marker opens the question and its answer.
  async asked(page) {
    const marker = page.locator("[data-testid=asked-marker]").first();
    await marker.waitFor({ timeout: WAIT_MS });
    const cue = page.locator("[data-testid=cue]", { has: marker });
    await marker.click();
    const block = page.locator("[data-testid=asked]").last();
    await block.locator("[data-testid=asked-answer]").waitFor({ timeout: WAIT_MS });
    results.asked = {
      markers: await page.locator("[data-testid=asked-marker]").count(),
      cueStart: Number((await cue.getAttribute("data-start")) ?? "-1"),
      question: await block.locator("[data-testid=asked-question]").first().textContent(),
      answer: await block.locator("[data-testid=asked-answer] .answer-text").first().textContent(),
      citations: await block.locator("[data-testid=citation]").count(),
    };
  },

  // Select a transcript range (click, then shift-click) and take a quiz on it, answering every question.
  async quiz(page) {
    const cues = page.locator("[data-testid=cue]");
    await cues.nth(3).click();
    await cues.nth(8).click({ modifiers: ["Shift"] });
    const label = await text(page, "[data-testid=selection-label]");
    await page.click("[data-testid=selection-quiz]");
    const card = page.locator("[data-testid=card-quiz]").first();
    await card.locator("[data-testid=quiz-question]").first().waitFor({ timeout: WAIT_MS });
    const questions = card.locator("[data-testid=quiz-question]");
    const count = await questions.count();
    const verdicts = [];
    for (let index = 0; index < count; index += 1) {
      const question = questions.nth(index);
      await question.locator("[data-testid=quiz-option]").first().click();
      const verdict = question.locator("[data-testid=quiz-verdict]");
      await verdict.waitFor({ timeout: WAIT_MS });
      verdicts.push(await verdict.textContent());
    }
    results.quiz = { selection: label, questions: count, verdicts, score: await text(card, "[data-testid=quiz-score]") };
  },

  // Ask for a hint, then climb the ladder with "Another hint" (each answer arrives as a new card on top);
  // the last rung's citation chip moves the player to the cited moment.
  async hint(page) {
    await page.click("[data-testid=agent-hint]");
    const rungs = [];
    for (let rung = 1; rung <= 3; rung += 1) {
      const card = page.locator("[data-testid=card-hint]").first();
      await card.locator(`[data-testid=hint-level]:has-text("Hint ${rung} of 3")`).waitFor({ timeout: WAIT_MS });
      rungs.push({
        level: await text(card, "[data-testid=hint-level]"),
        text: await text(card, "[data-testid=hint-text]"),
        citations: await card.locator("[data-testid=citation]").count(),
        another: await card.locator("[data-testid=hint-another]").count(),
      });
      if (rung < 3) {
        await card.locator("[data-testid=hint-another]").click();
      }
    }
    const chip = page.locator("[data-testid=card-hint]").first().locator("[data-testid=citation]").first();
    const start = await seekWith(page, chip);
    results.hint = { rungs, seekedTo: await text(page, "[data-testid=time]"), start };
  },

  async reflect(page) {
    await page.click("[data-testid=agent-reflect]");
    const card = page.locator("[data-testid=card-reflect]").first();
    await card.locator("[data-testid=reflection-prompt]").waitFor({ timeout: WAIT_MS });
    results.reflect = { prompt: await text(card, "[data-testid=reflection-prompt]") };
  },

  async path(page) {
    await page.click("[data-testid=agent-path]");
    const card = page.locator("[data-testid=card-path]").first();
    await card.locator("[data-testid=recommendations]").waitFor({ timeout: WAIT_MS });
    results.path = { recommendations: await card.locator("[data-testid=recommendations] li").count() };
  },

  // Play, then jump back over the same stretch a few times: the tutor steps in with a toast.
  async rewatch(page) {
    await page.locator("[data-testid=cue]").nth(12).click();
    await page.click("[data-testid=play]");
    await page.waitForTimeout(1500);
    for (let jump = 0; jump < 3; jump += 1) {
      await page.click("[data-testid=skip-back]");
      await page.waitForTimeout(1200);
    }
    const toast = page.locator("[data-testid=intervention]").first();
    await toast.waitFor({ timeout: WAIT_MS });
    if (SCREENSHOT) {
      await page.screenshot({ path: SCREENSHOT.replace(/\.png$/, "-intervention.png") });
    }
    results.rewatch = {
      type: await toast.getAttribute("data-type"),
      reason: await toast.getAttribute("data-reason"),
      text: await toast.textContent(),
    };
    await page.click("[data-testid=play]");
    await toast.locator("[data-testid=intervention-accept]").click();
    results.rewatch.accepted = (await page.locator("[data-testid=intervention]").count()) === 0;
  },

  // Ask until the chat rate limit answers; the decoded details show in an error toast.
  async ratelimit(page) {
    for (let attempt = 0; attempt < 6; attempt += 1) {
      await page.fill("[data-testid=question]", `Quick question number ${attempt + 1} about flex-wrap?`);
      await page.click("[data-testid=ask]");
      await page.waitForFunction(
        () => !document.querySelector("[data-testid=answer].streaming"),
        null,
        { timeout: WAIT_MS },
      );
      if ((await page.locator("[data-testid=error][data-code=RESOURCE_EXHAUSTED]").count()) > 0) {
        break;
      }
    }
    const toast = page.locator("[data-testid=error][data-code=RESOURCE_EXHAUSTED]").first();
    await toast.waitFor({ timeout: WAIT_MS });
    results.ratelimit = { text: await toast.textContent(), reason: await toast.getAttribute("data-reason") };
  },

  // A token the server rejects: the decoded UNAUTHENTICATED error and the sign-in dialog.
  async rejected(page) {
    await page.goto(`${BASE_URL}/#token=${encodeURIComponent(TOKEN.slice(0, -4) + "AAAA")}&video=${VIDEO_ID}`);
    const toast = page.locator("[data-testid=error][data-code=UNAUTHENTICATED]").first();
    await toast.waitFor({ timeout: WAIT_MS });
    await page.waitForSelector("#sign-in[open]", { timeout: WAIT_MS });
    results.rejected = { text: await toast.textContent(), reason: await toast.getAttribute("data-reason") };
  },
};

async function main() {
  const names = process.argv.slice(2);
  for (const name of names) {
    expect(steps[name] !== undefined, `unknown step ${name}`);
  }
  const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR ?? "", {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: SPKI_PINS ? [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${SPKI_PINS}`] : CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error") {
      consoleErrors.push(message.text());
    }
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  let failure = null;
  try {
    for (const name of names) {
      await steps[name](page);
    }
  } catch (error) {
    failure = error;
  }
  if (SCREENSHOT) {
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: false });
  }
  results.consoleErrors = consoleErrors;
  await context.close();
  if (failure !== null) {
    process.stderr.write(`${failure.stack ?? failure}\nobserved so far: ${JSON.stringify(results)}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify(results));
}

await main();
