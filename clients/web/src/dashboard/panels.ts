// The dashboard's lists: the transcript tinted by confusion, questions per segment, flagged messages,
// ratings by agent and experiment reports.
import {
  AgentType,
  ExperimentState,
  OutcomeKind,
  type AgentStats,
  type ConfusionSegment,
  type Experiment,
  type FlaggedInteraction,
  type GetExperimentReportResponse,
} from "../../../../generated/ts/tutorstream/v1/analytics_service_pb.js";
import type { SegmentQuestion } from "../../../../generated/ts/tutorstream/v1/chat_service_pb.js";
import type { Cue } from "../../../../generated/ts/tutorstream/v1/transcript_service_pb.js";
import { clear, h } from "../dom.js";
import { clock, span } from "../format.js";
import { drawArms, heat } from "./charts.js";

export function segmentOf(segments: ConfusionSegment[], seconds: number): number {
  return segments.findIndex((segment) => {
    const range = segment.range;
    return range !== undefined && range.startSeconds <= seconds && seconds < range.endSeconds;
  });
}

/** The lecture's cues, each tinted with the confusion of its segment; `focus` scrolls to a segment. */
export class HeatTranscript {
  private rows: HTMLElement[] = [];

  constructor(private readonly list: HTMLElement) {}

  show(cues: Cue[], segments: ConfusionSegment[]): void {
    clear(this.list);
    this.rows = cues.map((cue) => {
      const index = segmentOf(segments, cue.startSeconds);
      const score = segments[index]?.score ?? 0;
      const row = h(
        "li",
        { class: "cue", "data-testid": "dash-cue", "data-segment": index },
        h("span", { class: "cue-time" }, clock(cue.startSeconds)),
        h("span", { class: "cue-text" }, cue.text),
      );
      // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
      row.style.background = heat(score);
      this.list.append(row);
      return row;
    });
  }

  focus(segment: number): void {
    let first: HTMLElement | null = null;
    for (const row of this.rows) {
      const inside = row.dataset.segment === String(segment);
      row.classList.toggle("selected", inside);
      first ??= inside ? row : null;
    }
    first?.scrollIntoView({ block: "nearest" });
  }
}

function questionItem(question: SegmentQuestion): HTMLElement {
  return h(
    "li",
    { class: "question", "data-testid": "question", "data-count": question.count },
    h("span", { class: "question-text" }, question.text),
    h(
      "span",
      { class: "meta" },
      ` ×${question.count} · ${question.students} student${question.students === 1 ? "" : "s"}`,
    ),
  );
}

/** Questions grouped by the segment their answers cited, segments in lecture order, the most asked first. */
export function renderQuestionGroups(
  root: HTMLElement,
  segments: ConfusionSegment[],
  questions: SegmentQuestion[],
  perSegment: number,
): void {
  clear(root);
  const groups = new Map<number, SegmentQuestion[]>();
  for (const question of questions) {
    const index = segmentOf(segments, question.startSeconds);
    groups.set(index, [...(groups.get(index) ?? []), question]);
  }
  const order = [...groups.keys()].sort((a, b) => a - b);
  if (order.length === 0) {
    root.append(h("p", { class: "empty" }, "No student questions cited this lecture yet."));
    return;
  }
  for (const index of order) {
    const range = segments[index]?.range;
    const label = range ? span(range.startSeconds, range.endSeconds) : "elsewhere";
    root.append(
      h(
        "section",
        { class: "question-group", "data-testid": "question-group", "data-segment": index },
        h("h3", {}, label),
        h("ol", {}, ...(groups.get(index) ?? []).slice(0, perSegment).map(questionItem)),
      ),
    );
  }
}

export function renderSegmentQuestions(root: HTMLElement, label: string, questions: SegmentQuestion[]): void {
  clear(root);
  root.append(
    h("h3", {}, `Questions about ${label}`),
    questions.length > 0
      ? h("ol", {}, ...questions.map(questionItem))
      : h("p", { class: "empty" }, "No questions cited this segment."),
  );
}

export function renderFlags(root: HTMLElement, flags: FlaggedInteraction[]): void {
  clear(root);
  if (flags.length === 0) {
    root.append(h("p", { class: "empty" }, "Nothing flagged in this course."));
    return;
  }
  root.append(
    h(
      "ol",
      { class: "flags" },
      ...flags.map((flag) =>
        h(
          "li",
          { class: "flag", "data-testid": "flag", "data-category": flag.category },
          h("div", { class: "flag-head" }, h("strong", {}, flag.category), ` · score ${flag.score.toFixed(2)} · ${flag.detector}`),
          h("blockquote", { "data-testid": "flag-excerpt" }, flag.excerpt),
          h(
            "div",
            { class: "meta" },
            `${flag.userId} · ${flag.videoId || "no video"} · ${flag.surface} · ${
              flag.createTime ? new Date(Number(flag.createTime.seconds) * 1000).toLocaleString() : ""
            }`,
          ),
        ),
      ),
    ),
  );
}

const AGENT_NAMES: Partial<Record<AgentType, string>> = {
  [AgentType.CHAT]: "chat",
  [AgentType.HINT]: "hints",
  [AgentType.QUIZ]: "quizzes",
  [AgentType.REFLECTION]: "reflections",
  [AgentType.LEARNING_PATH]: "learning paths",
  [AgentType.INTERVENTION]: "interventions",
  [AgentType.CLIENT]: "quick actions",
};

export function renderAgents(root: HTMLElement, agents: AgentStats[]): void {
  clear(root);
  root.append(
    h(
      "table",
      { class: "agents-table", "data-testid": "agents-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "agent"), h("th", {}, "answers"), h("th", {}, "rated"), h("th", {}, "average"))),
      h(
        "tbody",
        {},
        ...agents.map((agent) =>
          h(
            "tr",
            { "data-testid": "agent-row" },
            h("td", {}, AGENT_NAMES[agent.agentType] ?? "other"),
            h("td", {}, Number(agent.count)),
            h("td", {}, Number(agent.ratingCount)),
            h("td", {}, agent.ratingCount > 0n ? `${agent.averageRating.toFixed(2)} ★` : "–"),
          ),
        ),
      ),
    ),
  );
}

const STATES: Partial<Record<ExperimentState, string>> = {
  [ExperimentState.DRAFT]: "draft",
  [ExperimentState.RUNNING]: "running",
  [ExperimentState.STOPPED]: "stopped",
};

function signed(value: number, percent: boolean): string {
  if (!Number.isFinite(value)) {
    return "n/a";
  }
  const shown = percent ? `${(value * 100).toFixed(1)} pt` : value.toFixed(2);
  return value > 0 ? `+${shown}` : shown;
}

/** One experiment: its arms and exposures, then per outcome a CI chart and the comparison with the control. */
export function renderExperiment(root: HTMLElement, experiment: Experiment, report: GetExperimentReportResponse | null): void {
  const exposures = Object.entries(experiment.exposures)
    .map(([arm, count]) => `${arm} ${count}`)
    .join(" · ");
  const card = h(
    "article",
    { class: "experiment", "data-testid": "experiment", "data-name": experiment.name },
    h("h3", {}, experiment.displayName || experiment.name),
    h("div", { class: "meta" }, `${STATES[experiment.state] ?? "unknown"} · exposed: ${exposures || "nobody yet"}`),
  );
  root.append(card);
  if (report === null) {
    card.append(h("p", { class: "empty" }, "Not started: no report yet."));
    return;
  }
  const outcomes = h("div", { class: "outcomes" });
  card.append(outcomes);
  for (const outcome of report.outcomes) {
    const percent = outcome.kind === OutcomeKind.PROPORTION;
    const canvas = h("canvas", { "data-testid": "arm-chart", "data-metric": outcome.metric });
    const verdicts = outcome.comparisons.map((comparison) =>
      h(
        "div",
        { class: "comparison", "data-testid": "comparison" },
        `${comparison.arm} − ${comparison.controlArm}: ${signed(comparison.difference, percent)} ` +
          `[${signed(comparison.ciLow, percent)}, ${signed(comparison.ciHigh, percent)}], ` +
          `p = ${Number.isFinite(comparison.pValue) ? comparison.pValue.toFixed(3) : "n/a"} · ` +
          (comparison.enoughData ? (comparison.significant ? "significant" : "no significant difference") : "not enough data"),
      ),
    );
    outcomes.append(
      h(
        "section",
        { class: "outcome", "data-metric": outcome.metric },
        h("h4", {}, outcome.metric.replace(/_/g, " ")),
        h("p", { class: "hint-text" }, outcome.description),
        h("div", { class: "chart-box small" }, canvas),
        ...verdicts,
      ),
    );
    drawArms(canvas, outcome.arms, percent);
  }
  if (report.notes.length > 0) {
    card.append(h("ul", { class: "notes" }, ...report.notes.map((note) => h("li", {}, note))));
  }
}
