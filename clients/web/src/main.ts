// The tutorstream browser demo: a lecture with its transcript, the chat, the agents and the interventions,
// all over grpc-web through Envoy on this page's own origin.
import { Code } from "@connectrpc/connect";
import { TranscriptView, type Transcript } from "../../../generated/ts/tutorstream/v1/transcript_service_pb.js";
import { UsageWindow } from "../../../generated/ts/tutorstream/v1/analytics_service_pb.js";
import { QuestionScope } from "../../../generated/ts/tutorstream/v1/chat_service_pb.js";
import type { Citation } from "../../../generated/ts/tutorstream/v1/common_pb.js";
import { AgentPanel } from "./agents.js";
import {
  allTranscripts,
  createApi,
  forgetToken,
  hashParam,
  loadToken,
  readClaims,
  saveToken,
  setHashParam,
} from "./api.js";
import { ChatPanel } from "./chat.js";
import type { Page, Where } from "./context.js";
import { button, byId, clear, h } from "./dom.js";
import { describeError } from "./errors.js";
import { tokens } from "./format.js";
import { SimulatedPlayer } from "./player.js";
import { PreferencesPanel } from "./preferences.js";
import { ProgressReporter } from "./progress.js";
import { showProblem } from "./toasts.js";
import { TranscriptPanel } from "./transcript.js";

let token: string | null = loadToken();
const api = createApi(location.origin, () => token);

interface Video {
  videoId: string;
  courseId: string;
  title: string;
  duration: number;
}

let current: Video | null = null;
let progress: ProgressReporter | null = null;
let signInShown = false;

const player = new SimulatedPlayer(byId("player"));
const transcript = new TranscriptPanel(byId("transcript"), {
  seek: (seconds) => player.seek(seconds),
  ask: (range) => void chat.ask("Can you explain the selected part?", range),
  attach: (range) => void chat.attach(range),
  quiz: (range) => void agents.quiz(range),
  openAsked: (questions) => void chat.showAsked(questions),
});

const page: Page = {
  api,
  where(): Where {
    return {
      courseId: current?.courseId ?? "",
      videoId: current?.videoId ?? "",
      title: current?.title ?? "",
      duration: current?.duration ?? 0,
      position: player.position,
      selection: transcript.selection,
    };
  },
  seekTo(citation: Pick<Citation, "videoId" | "startSeconds">): void {
    if (current !== null && citation.videoId && citation.videoId !== current.videoId) {
      void openVideo(citation.videoId, citation.startSeconds);
      return;
    }
    player.seek(citation.startSeconds);
  },
  fail(error: unknown, doing: string): void {
    if (signInShown && describeError(error).code === Code.Unauthenticated) {
      return; // already asking for a new token
    }
    const problem = showProblem(error, doing);
    if (problem.code === Code.Unauthenticated) {
      showSignIn("Your token was not accepted — paste a fresh one.");
    }
  },
  usageChanged(): void {
    void refreshUsage();
  },
  questionsChanged(): void {
    void refreshAsked();
  },
};

const chat = new ChatPanel(byId("chat"), page);
const agents = new AgentPanel(byId("agents"), page);
const preferences = new PreferencesPanel(byId("preferences"), page);

player.onTime((position) => transcript.follow(position));
player.onEvent((event) => progress?.record(event));

function showSignIn(message: string): void {
  if (signInShown) {
    return;
  }
  signInShown = true;
  const dialog = byId<HTMLDialogElement>("sign-in");
  const field = byId<HTMLTextAreaElement>("token-input");
  byId("sign-in-message").textContent = message;
  field.value = "";
  dialog.showModal();
}

function renderUser(): void {
  const box = byId("user");
  clear(box);
  const claims = token ? readClaims(token) : null;
  if (claims === null) {
    box.append(button("Sign in", () => showSignIn("Paste a token to sign in."), { "data-testid": "sign-in" }));
    return;
  }
  const expires = new Date(claims.exp * 1000).toLocaleTimeString();
  box.append(
    h("span", { class: "who", "data-testid": "who" }, `${claims.sub} · ${claims.role}${claims.tier ? ` · ${claims.tier}` : ""}`),
    h("span", { class: "meta" }, ` until ${expires} `),
    button(
      "Sign out",
      () => {
        forgetToken();
        token = null;
        location.reload();
      },
      { class: "quiet" },
    ),
  );
}

async function refreshUsage(): Promise<void> {
  const pill = byId("usage");
  try {
    const usage = await api.analytics.getUsage({ user: "users/me" });
    const day = usage.budgets.find((budget) => budget.window === UsageWindow.DAY);
    pill.textContent = day
      ? `${tokens(day.tokensUsed)} / ${tokens(day.tokensLimit)} tokens today`
      : `${usage.tier} tier`;
    pill.hidden = false;
  } catch {
    // The pill is a courtesy; errors that matter surface on the calls the student made.
    pill.hidden = true;
  }
}

/** Marks the transcript lines the student's questions about this video were answered from. */
async function refreshAsked(): Promise<void> {
  const video = current?.videoId;
  if (!video) {
    return;
  }
  try {
    const response = await api.chat.listSegmentQuestions({
      videoId: video,
      scope: QuestionScope.MINE,
      maxQuestions: 100,
    });
    if (current?.videoId === video) {
      transcript.markAsked(response.questions);
    }
  } catch (error) {
    page.fail(error, "Loading your questions about this lecture");
  }
}

async function loadCatalogue(): Promise<void> {
  const select = byId<HTMLSelectElement>("video-select");
  let videos: Transcript[];
  try {
    videos = await allTranscripts(api);
  } catch (error) {
    page.fail(error, "Loading the course");
    return;
  }
  clear(select);
  for (const video of videos) {
    select.append(h("option", { value: video.videoId }, `${video.courseId} · ${video.title || video.videoId}`));
  }
  select.onchange = () => void openVideo(select.value, 0);
  const wanted = hashParam("video");
  const first = videos.find((video) => video.videoId === wanted) ?? videos[0];
  if (first === undefined) {
    byId("lecture-title").textContent = "No transcripts yet — ingest one with `tutorstream ingest`.";
    return;
  }
  await openVideo(first.videoId, 0);
}

async function openVideo(videoId: string, startAt: number): Promise<void> {
  let full: Transcript | undefined;
  try {
    const response = await api.transcripts.getTranscript({
      name: `videos/${videoId}/transcript`,
      view: TranscriptView.FULL,
    });
    full = response.transcript;
  } catch (error) {
    page.fail(error, "Loading the transcript");
    return;
  }
  if (full === undefined) {
    return;
  }
  await progress?.stop(player.position);
  const lastCue = full.cues[full.cues.length - 1];
  const duration = full.durationSeconds || (lastCue?.endSeconds ?? 0);
  current = { videoId: full.videoId, courseId: full.courseId, title: full.title || full.videoId, duration };
  setHashParam("video", full.videoId);
  byId<HTMLSelectElement>("video-select").value = full.videoId;
  byId("lecture-title").textContent = current.title;
  chat.reset();
  agents.reset();
  transcript.show(full.cues);
  void refreshAsked();
  progress = new ProgressReporter(page, current, {
    quiz: (intervention) => {
      const range = intervention.range;
      void agents.quiz(range ? { start: range.startSeconds, end: range.endSeconds } : undefined);
    },
  });
  progress.start();
  player.load(
    current.title,
    duration,
    full.cues.map((cue) => ({ start: cue.startSeconds, end: cue.endSeconds, text: cue.text })),
  );
  if (startAt > 0) {
    player.seek(startAt);
  }
}

function wireSignIn(): void {
  const dialog = byId<HTMLDialogElement>("sign-in");
  byId<HTMLFormElement>("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = byId<HTMLTextAreaElement>("token-input").value.trim();
    if (!value) {
      return;
    }
    saveToken(value);
    token = value;
    dialog.close();
    location.reload();
  });
  dialog.addEventListener("close", () => {
    signInShown = false;
  });
}

async function main(): Promise<void> {
  wireSignIn();
  renderUser();
  if (token === null) {
    showSignIn("Paste a token from `tutorstream-server token --user you` to start.");
    return;
  }
  window.addEventListener("pagehide", () => void progress?.stop(player.position));
  await Promise.all([preferences.load(), refreshUsage(), loadCatalogue()]);
  document.body.dataset.ready = "true";
}

void main();
