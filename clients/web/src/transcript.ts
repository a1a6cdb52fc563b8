// The transcript beside the player: click a cue to jump there, shift-click (or drag across cues) to select
// a range that the chat and the agents then work on. A line the student asked about carries a marker that opens
// those questions and their answers.
import type { SegmentQuestion } from "../../../generated/ts/tutorstream/v1/chat_service_pb.js";
import type { Cue } from "../../../generated/ts/tutorstream/v1/transcript_service_pb.js";
import { button, clear, h } from "./dom.js";
import { clock, span } from "./format.js";

export interface Range {
  start: number;
  end: number;
}

export interface TranscriptActions {
  seek(seconds: number): void;
  ask(range: Range): void;
  attach(range: Range): void;
  quiz(range: Range): void;
  /** Show the student's earlier questions (and their answers) about a line. */
  openAsked(questions: SegmentQuestion[]): void;
}

export class TranscriptPanel {
  selection: Range | null = null;
  private cues: Cue[] = [];
  private rows: HTMLElement[] = [];
  private anchor: number | null = null;
  private dragStart: number | null = null;
  private active = -1;
  private readonly list: HTMLElement;
  private readonly toolbar: HTMLElement;

  constructor(
    root: HTMLElement,
    private readonly actions: TranscriptActions,
  ) {
    this.list = h("ol", { class: "cues", "data-testid": "cues" });
    this.toolbar = h("div", { class: "selection-bar", hidden: true, "data-testid": "selection-bar" });
    clear(root);
    root.append(
      h("h2", {}, "Transcript"),
      h("p", { class: "hint-text" }, "Click a line to jump there; shift-click or drag to select a range."),
      this.toolbar,
      this.list,
    );
    document.addEventListener("mouseup", () => {
      this.dragStart = null;
    });
  }

  show(cues: Cue[]): void {
    this.cues = cues;
    this.selection = null;
    this.anchor = null;
    this.active = -1;
    clear(this.list);
    this.rows = cues.map((cue, index) => {
      const row = h(
        "li",
        { class: "cue", "data-index": index, "data-start": cue.startSeconds, "data-testid": "cue" },
        h("span", { class: "cue-time" }, clock(cue.startSeconds)),
        h("span", { class: "cue-text" }, cue.speaker ? `${cue.speaker}: ${cue.text}` : cue.text),
      );
      row.addEventListener("mousedown", (event) => {
        if (!event.shiftKey) {
          this.dragStart = index;
        }
      });
      row.addEventListener("mouseenter", () => {
        if (this.dragStart !== null && this.dragStart !== index) {
          this.select(this.dragStart, index);
        }
      });
      row.addEventListener("click", (event) => this.clicked(index, event.shiftKey));
      return row;
    });
    this.list.append(...this.rows);
    this.renderSelection();
  }

  /** Marks each line whose moment an answer to one of the student's questions cited (the earliest cited moment
   * of each question); a marker opens that line's questions. */
  markAsked(questions: SegmentQuestion[]): void {
    for (const marker of this.list.querySelectorAll("[data-testid=asked-marker]")) {
      marker.remove();
    }
    const byCue = new Map<number, SegmentQuestion[]>();
    for (const question of questions) {
      const index = this.cues.findIndex(
        (cue) => cue.startSeconds <= question.startSeconds && question.startSeconds < cue.endSeconds,
      );
      if (index >= 0) {
        byCue.set(index, [...(byCue.get(index) ?? []), question]);
      }
    }
    for (const [index, asked] of byCue) {
      const count = asked.reduce((total, question) => total + question.count, 0);
      const marker = h(
        "button",
        {
          class: "asked-marker",
          type: "button",
          title: `You asked about this line ${count === 1 ? "once" : `${count} times`}: ${asked.map((q) => q.text).join(" · ")}`,
          "data-testid": "asked-marker",
          "data-count": count,
        },
        "?",
      );
      marker.addEventListener("mousedown", (event) => event.stopPropagation());
      marker.addEventListener("click", (event) => {
        event.stopPropagation();
        this.actions.openAsked(asked);
      });
      this.rows[index]?.append(marker);
    }
  }

  /** Highlights the cue under the playhead and keeps it in view. */
  follow(position: number): void {
    const index = this.cues.findIndex((cue) => cue.startSeconds <= position && position < cue.endSeconds);
    if (index === this.active) {
      return;
    }
    this.rows[this.active]?.classList.remove("active");
    this.active = index;
    const row = this.rows[index];
    if (row !== undefined) {
      row.classList.add("active");
      row.scrollIntoView({ block: "nearest" });
    }
  }

  clearSelection(): void {
    this.selection = null;
    this.renderSelection();
  }

  private clicked(index: number, extend: boolean): void {
    if (extend && this.anchor !== null) {
      this.select(this.anchor, index);
      return;
    }
    if (this.selection !== null && this.dragStart === null && this.selectionCovers(index)) {
      return;
    }
    this.anchor = index;
    this.clearSelection();
    const cue = this.cues[index];
    if (cue !== undefined) {
      this.actions.seek(cue.startSeconds);
    }
  }

  private selectionCovers(index: number): boolean {
    const cue = this.cues[index];
    return (
      cue !== undefined &&
      this.selection !== null &&
      cue.startSeconds >= this.selection.start &&
      cue.endSeconds <= this.selection.end &&
      this.selection.end - this.selection.start > cue.endSeconds - cue.startSeconds
    );
  }

  private select(from: number, to: number): void {
    const first = this.cues[Math.min(from, to)];
    const last = this.cues[Math.max(from, to)];
    if (first === undefined || last === undefined) {
      return;
    }
    this.anchor = from;
    this.selection = { start: first.startSeconds, end: last.endSeconds };
    this.renderSelection();
  }

  private renderSelection(): void {
    const selection = this.selection;
    this.rows.forEach((row, index) => {
      const cue = this.cues[index];
      const inside =
        selection !== null &&
        cue !== undefined &&
        cue.startSeconds >= selection.start &&
        cue.endSeconds <= selection.end;
      row.classList.toggle("selected", inside);
    });
    clear(this.toolbar);
    this.toolbar.hidden = selection === null;
    if (selection === null) {
      return;
    }
    const range = { ...selection };
    this.toolbar.append(
      h("span", { class: "selection-label", "data-testid": "selection-label" }, `Selected ${span(range.start, range.end)}`),
      button("Ask about this", () => this.actions.ask(range), { "data-testid": "selection-ask" }),
      button("Attach to chat", () => this.actions.attach(range), { "data-testid": "selection-attach" }),
      button("Quiz me on this", () => this.actions.quiz(range), { "data-testid": "selection-quiz" }),
      button("Clear", () => this.clearSelection(), { class: "quiet" }),
    );
  }
}
