// The instructor's course dashboard: pick a course and a lecture; see where students struggle along the
// transcript, what they asked, what moderation flagged, how they rated the tutor and what experiments found.
// Everything comes over grpc-web through Envoy with the instructor's token, like the student page.
import {
  ExperimentState,
  type ConfusionSegment,
  type GetExperimentReportResponse,
} from "../../../../generated/ts/tutorstream/v1/analytics_service_pb.js";
import { QuestionScope } from "../../../../generated/ts/tutorstream/v1/chat_service_pb.js";
import { TranscriptView, type Transcript } from "../../../../generated/ts/tutorstream/v1/transcript_service_pb.js";
import { allTranscripts, createApi, hashParam, loadToken, readClaims, setHashParam } from "../api.js";
import { byId, clear, h } from "../dom.js";
import { describeError, problemLines } from "../errors.js";
import { span } from "../format.js";
import { showProblem } from "../toasts.js";
import { drawHeatStrip, drawRatings, drawSignals } from "./charts.js";
import {
  HeatTranscript,
  renderAgents,
  renderExperiment,
  renderFlags,
  renderQuestionGroups,
  renderSegmentQuestions,
} from "./panels.js";

const QUESTIONS_PER_SEGMENT = 3;

const token = loadToken();
const api = createApi(location.origin, () => token);
const transcript = new HeatTranscript(byId("dash-cues"));
let transcripts: Transcript[] = [];
let segments: ConfusionSegment[] = [];
let videoId = "";

/** A failed call, shown where its data would be and in a toast; PERMISSION_DENIED also in the page banner. */
function fail(where: HTMLElement, error: unknown, doing: string): void {
  const problem = describeError(error);
  showProblem(error, doing);
  clear(where);
  where.append(
    h(
      "div",
      { class: "section-error", "data-testid": "section-error", "data-code": problem.codeName },
      h("strong", {}, `${problem.title} — ${problem.codeName}${problem.reason ? ` · ${problem.reason}` : ""}`),
      ...problemLines(problem).map((line) => h("div", {}, line)),
    ),
  );
  const banner = byId("dashboard-error");
  // The sections load in parallel; the first refusal explains the page.
  if (banner.hidden && (problem.codeName === "PERMISSION_DENIED" || problem.codeName === "UNAUTHENTICATED")) {
    banner.dataset.code = problem.codeName;
    banner.dataset.reason = problem.reason;
    banner.textContent =
      `${problem.title}: ${problem.message} (${problem.codeName}${problem.reason ? ` · ${problem.reason}` : ""}). ` +
      "The dashboard needs a token for an instructor of this course.";
    banner.hidden = false;
  }
}

function renderUser(): void {
  const claims = token ? readClaims(token) : null;
  byId("user").textContent = claims ? `${claims.sub} · ${claims.role}` : "not signed in";
}

function fillSelect(select: HTMLSelectElement, options: [string, string][], wanted: string | null): string {
  clear(select);
  for (const [value, label] of options) {
    select.append(h("option", { value }, label));
  }
  const chosen = options.find(([value]) => value === wanted)?.[0] ?? options[0]?.[0] ?? "";
  select.value = chosen;
  return chosen;
}

async function openCourse(courseId: string): Promise<void> {
  setHashParam("course", courseId);
  const videos = transcripts.filter((item) => item.courseId === courseId);
  const chosen = fillSelect(
    byId<HTMLSelectElement>("video-select"),
    videos.map((item) => [item.videoId, item.title || item.videoId]),
    hashParam("video"),
  );
  await Promise.all([loadFlags(courseId), loadExperiments(courseId), chosen ? openVideo(chosen) : Promise.resolve()]);
}

async function openVideo(id: string): Promise<void> {
  videoId = id;
  setHashParam("video", id);
  const title = transcripts.find((item) => item.videoId === id)?.title ?? id;
  byId("lecture-title").textContent = title;
  byId("segment-questions").hidden = true;
  segments = [];
  // The questions are grouped by the analytics' segments.
  await loadAnalytics(id);
  await loadQuestions(id);
}

async function loadAnalytics(id: string): Promise<void> {
  const summary = byId("summary");
  try {
    const [report, full] = await Promise.all([
      api.analytics.getVideoAnalytics({ videoId: id, maxPeaks: 5 }),
      api.transcripts.getTranscript({ name: `videos/${id}/transcript`, view: TranscriptView.FULL }),
    ]);
    segments = report.segments;
    const ratings = report.ratings.map((rating) => Number(rating.count));
    const rated = ratings.reduce((sum, count) => sum + count, 0);
    summary.textContent =
      `${report.viewers} viewers · ${report.confusionPeaks.length} confusion peaks · ${rated} ratings` +
      (report.confusionPeaks[0]?.range
        ? ` · hardest: ${span(report.confusionPeaks[0].range.startSeconds, report.confusionPeaks[0].range.endSeconds)}`
        : "");
    transcript.show(full.transcript?.cues ?? [], segments);
    drawHeatStrip(byId<HTMLCanvasElement>("heat-chart"), segments, (index) => void focusSegment(index));
    drawSignals(byId<HTMLCanvasElement>("signals-chart"), segments, (index) => void focusSegment(index));
    drawRatings(byId<HTMLCanvasElement>("ratings-chart"), ratings);
    renderAgents(byId("agents-table"), report.agents);
  } catch (error) {
    fail(summary, error, "Loading the lecture's analytics");
  }
}

async function loadQuestions(id: string): Promise<void> {
  const root = byId("question-groups");
  try {
    const response = await api.chat.listSegmentQuestions({
      videoId: id,
      scope: QuestionScope.COURSE,
      maxQuestions: 100,
    });
    renderQuestionGroups(root, segments, response.questions, QUESTIONS_PER_SEGMENT);
  } catch (error) {
    fail(root, error, "Loading the students' questions");
  }
}

/** A segment picked on a chart: its cues in the transcript and its own top questions. */
async function focusSegment(index: number): Promise<void> {
  const range = segments[index]?.range;
  if (range === undefined) {
    return;
  }
  transcript.focus(index);
  const root = byId("segment-questions");
  root.hidden = false;
  try {
    const response = await api.chat.listSegmentQuestions({
      videoId,
      range: { startSeconds: range.startSeconds, endSeconds: range.endSeconds },
      scope: QuestionScope.COURSE,
      maxQuestions: 10,
    });
    renderSegmentQuestions(root, span(range.startSeconds, range.endSeconds), response.questions);
  } catch (error) {
    fail(root, error, "Loading the segment's questions");
  }
}

async function loadFlags(courseId: string): Promise<void> {
  const root = byId("flags");
  try {
    const response = await api.analytics.listFlaggedInteractions({ parent: `courses/${courseId}`, pageSize: 50 });
    renderFlags(root, response.flaggedInteractions);
  } catch (error) {
    fail(root, error, "Loading flagged messages");
  }
}

async function loadExperiments(courseId: string): Promise<void> {
  const root = byId("experiments");
  try {
    const listed = await api.analytics.listExperiments({ parent: `courses/${courseId}`, pageSize: 20 });
    const reports = await Promise.all(
      listed.experiments.map(
        (experiment): Promise<GetExperimentReportResponse | null> =>
          experiment.state === ExperimentState.DRAFT
            ? Promise.resolve(null)
            : api.analytics.getExperimentReport({ name: experiment.name }),
      ),
    );
    clear(root);
    if (listed.experiments.length === 0) {
      root.append(h("p", { class: "empty" }, "No experiments in this course."));
    }
    listed.experiments.forEach((experiment, index) => renderExperiment(root, experiment, reports[index] ?? null));
  } catch (error) {
    fail(root, error, "Loading experiments");
  }
}

async function main(): Promise<void> {
  renderUser();
  if (token === null) {
    byId("dashboard-error").hidden = false;
    byId("dashboard-error").textContent =
      "Open this page as /dashboard.html#token=… with an instructor token " +
      "(`tutorstream-server token --user you --role instructor --course COURSE`).";
    document.body.dataset.ready = "true";
    return;
  }
  try {
    transcripts = await allTranscripts(api);
  } catch (error) {
    fail(byId("summary"), error, "Loading the courses");
    document.body.dataset.ready = "true";
    return;
  }
  const courses = [...new Set(transcripts.map((item) => item.courseId))].sort();
  const taught = readClaims(token)?.courses.find((course) => courses.includes(course)) ?? null;
  const courseSelect = byId<HTMLSelectElement>("course-select");
  const course = fillSelect(
    courseSelect,
    courses.map((id) => [id, id]),
    hashParam("course") ?? taught,
  );
  courseSelect.onchange = () => void openCourse(courseSelect.value);
  const videoSelect = byId<HTMLSelectElement>("video-select");
  videoSelect.onchange = () => void openVideo(videoSelect.value);
  if (course) {
    await openCourse(course);
  } else {
    byId("lecture-title").textContent = "No transcripts yet — ingest a lecture first.";
  }
  document.body.dataset.ready = "true";
}

void main();
