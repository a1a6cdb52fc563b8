// Drives the instructor's course dashboard in Debian's Chromium (playwright-core) through Envoy.
//
//   node tests/edge/browser/dashboard.mjs STEP (env: BASE_URL, TOKEN, COURSE_ID, VIDEO_ID, USER_DATA_DIR, SCREENSHOT)
//
// `open` loads the dashboard and reports what it drew: every chart's data (read back from the chart into the
// canvas's data-chart) and how many of its pixels are painted, the question groups, the flagged messages
// and the experiments. `denied` loads it and reports the error it shows. JSON on stdout; a failure exits 1.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { chromium } from "playwright-core";

const BASE_URL = process.env.BASE_URL ?? "http://127.0.0.1:8080";
const TOKEN = process.env.TOKEN ?? "";
const COURSE_ID = process.env.COURSE_ID ?? "webdev-101";
const VIDEO_ID = process.env.VIDEO_ID ?? "flexbox-layout";
const SCREENSHOT = process.env.SCREENSHOT ?? "";
const WAIT_MS = Number(process.env.WAIT_MS ?? 60_000);
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

async function load(page) {
  const fragment = `token=${encodeURIComponent(TOKEN)}&course=${COURSE_ID}&video=${VIDEO_ID}`;
  await page.goto(`${BASE_URL}/dashboard.html#${fragment}`);
  await page.waitForSelector("body[data-ready=true]", { timeout: WAIT_MS });
}

// A canvas's chart data and the number of pixels drawn on it (not fully transparent).
function readCanvas(canvas) {
  const context = canvas.getContext("2d");
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let index = 3; index < pixels.length; index += 4) {
    if (pixels[index] > 0) {
      painted += 1;
    }
  }
  return {
    chart: JSON.parse(canvas.dataset.chart ?? "null"),
    painted,
    metric: canvas.dataset.metric ?? "",
    experiment: canvas.closest("[data-testid=experiment]")?.dataset.name ?? "",
  };
}

const steps = {
  async open(page) {
    await load(page);
    const charts = {};
    for (const id of ["heat-chart", "signals-chart", "ratings-chart"]) {
      charts[id] = await page.locator(`[data-testid=${id}]`).evaluate(readCanvas);
    }
    const armCharts = page.locator("[data-testid=arm-chart]");
    const arms = [];
    for (let index = 0; index < (await armCharts.count()); index += 1) {
      arms.push(await armCharts.nth(index).evaluate(readCanvas));
    }
    return {
      who: await page.locator("[data-testid=who]").textContent(),
      title: await page.locator("[data-testid=lecture-title]").textContent(),
      summary: await page.locator("[data-testid=summary]").textContent(),
      course: await page.locator("[data-testid=course-select]").inputValue(),
      video: await page.locator("[data-testid=video-select]").inputValue(),
      hash: new URL(page.url()).hash,
      bannerHidden: await page.locator("[data-testid=dashboard-error]").isHidden(),
      cues: await page.locator("[data-testid=dash-cue]").count(),
      charts,
      questionGroups: await page.locator("[data-testid=question-group]").evaluateAll((groups) =>
        groups.map((group) => ({
          segment: Number(group.dataset.segment),
          questions: [...group.querySelectorAll("[data-testid=question]")].map((item) => ({
            text: item.querySelector(".question-text").textContent,
            count: Number(item.dataset.count),
          })),
        })),
      ),
      flags: await page.locator("[data-testid=flag]").evaluateAll((flags) =>
        flags.map((flag) => ({
          category: flag.dataset.category,
          excerpt: flag.querySelector("[data-testid=flag-excerpt]").textContent,
        })),
      ),
      agents: await page.locator("[data-testid=agent-row]").count(),
      experiments: await page.locator("[data-testid=experiment]").evaluateAll((cards) =>
        cards.map((card) => ({
          name: card.dataset.name,
          comparisons: [...card.querySelectorAll("[data-testid=comparison]")].map((item) => item.textContent),
        })),
      ),
      arms,
    };
  },

  async denied(page) {
    await load(page);
    const banner = page.locator("[data-testid=dashboard-error]");
    await banner.waitFor({ state: "visible", timeout: WAIT_MS });
    return {
      code: await banner.getAttribute("data-code"),
      reason: await banner.getAttribute("data-reason"),
      text: await banner.textContent(),
      sectionErrors: await page
        .locator("[data-testid=section-error]")
        .evaluateAll((items) => items.map((item) => item.dataset.code)),
      toasts: await page.locator("[data-testid=error]").count(),
    };
  },
};

async function main() {
  const [name] = process.argv.slice(2);
  if (steps[name] === undefined) {
    throw new Error(`unknown step ${name}`);
  }
  const context = await chromium.launchPersistentContext(process.env.USER_DATA_DIR ?? "", {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
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
  let result = {};
  let failure = null;
  try {
    result = await steps[name](page);
  } catch (error) {
    failure = error;
  }
  if (SCREENSHOT) {
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  }
  await context.close();
  if (failure !== null) {
    process.stderr.write(`${failure.stack ?? failure}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ [name]: result, consoleErrors }));
}

await main();
