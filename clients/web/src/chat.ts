// The chat sidebar: answers stream in chunk by chunk; the last chunk brings citations, usage and flags.
import { FinishReason } from "../../../generated/ts/tutorstream/v1/chat_service_pb.js";
import { MessageRole } from "../../../generated/ts/tutorstream/v1/chat_service_pb.js";
import type {
  Message,
  SegmentQuestion,
  StreamChatResponse,
  TranscriptReference,
} from "../../../generated/ts/tutorstream/v1/chat_service_pb.js";
import { citationList } from "./citations.js";
import { learningContext, type Page } from "./context.js";
import { button, clear, h } from "./dom.js";
import { isCancel } from "./errors.js";
import { span, tokens } from "./format.js";
import type { Range } from "./transcript.js";

export class ChatPanel {
  private session: string | null = null;
  private sessionVideo = "";
  private streaming: AbortController | null = null;
  private readonly log: HTMLElement;
  private readonly input: HTMLTextAreaElement;
  private readonly send: HTMLButtonElement;
  private readonly stop: HTMLButtonElement;
  private readonly references: HTMLElement;

  constructor(
    root: HTMLElement,
    private readonly page: Page,
  ) {
    this.log = h("div", { class: "chat-log", "data-testid": "chat-log" });
    this.references = h("div", { class: "references", "data-testid": "references" });
    this.input = h("textarea", {
      rows: 2,
      maxlength: 4000,
      placeholder: "Ask the tutor about this lecture…",
      "aria-label": "Your question",
      "data-testid": "question",
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        void this.ask(this.input.value);
      }
    });
    this.send = button("Ask", () => void this.ask(this.input.value), { class: "primary", "data-testid": "ask" });
    this.stop = button("Stop", () => this.streaming?.abort(), { hidden: true, "data-testid": "stop" });
    clear(root);
    root.append(
      h("h2", {}, "Ask the tutor"),
      this.references,
      this.log,
      h("div", { class: "composer" }, this.input, h("div", { class: "composer-buttons" }, this.send, this.stop)),
    );
  }

  /** A new video starts a new conversation. */
  reset(): void {
    this.streaming?.abort();
    this.session = null;
    clear(this.log);
    clear(this.references);
  }

  async ask(text: string, range?: Range): Promise<void> {
    const message = text.trim();
    if (!message || this.streaming !== null) {
      return;
    }
    this.input.value = "";
    const where = this.page.where();
    const context = learningContext(range ? { ...where, selection: range } : where);
    this.log.append(h("div", { class: "bubble user", "data-testid": "user-message" }, message));
    const body = h("div", { class: "answer-text" });
    const answer = h("div", { class: "bubble tutor streaming", "data-testid": "answer" }, body);
    this.log.append(answer);
    answer.scrollIntoView({ block: "end" });
    this.streaming = new AbortController();
    this.send.disabled = true;
    this.stop.hidden = false;
    try {
      const session = await this.ensureSession();
      for await (const chunk of this.page.api.chat.streamChat(
        { session, message, learningContext: context },
        { signal: this.streaming.signal },
      )) {
        if (chunk.text) {
          body.append(chunk.text);
          answer.scrollIntoView({ block: "end" });
        }
        if (chunk.finishReason !== FinishReason.UNSPECIFIED) {
          answer.append(...this.finalParts(chunk));
        }
      }
    } catch (error) {
      if (isCancel(error)) {
        answer.append(h("div", { class: "meta" }, "stopped"));
      } else {
        answer.classList.add("failed");
        answer.append(h("div", { class: "meta" }, "No answer this time — the reason is shown in the corner."));
        this.page.fail(error, "Asking the tutor");
      }
    } finally {
      answer.classList.remove("streaming");
      this.streaming = null;
      this.send.disabled = false;
      this.stop.hidden = true;
      this.page.usageChanged();
      this.page.questionsChanged();
    }
  }

  /** The student's earlier questions about a transcript line, each with the answer it got, shown in the log. */
  async showAsked(questions: SegmentQuestion[]): Promise<void> {
    const names = questions.flatMap((question) => question.messages);
    const block = h("div", { class: "asked", "data-testid": "asked" }, h("div", { class: "meta" }, "Earlier, you asked:"));
    this.log.append(block);
    try {
      const bySession = new Map<string, string[]>();
      for (const name of names) {
        const session = name.split("/messages/")[0] ?? "";
        bySession.set(session, [...(bySession.get(session) ?? []), name]);
      }
      for (const [session, wanted] of bySession) {
        const messages = await this.messagesOf(session);
        for (const name of wanted) {
          const index = messages.findIndex((message) => message.name === name);
          const question = messages[index];
          if (question === undefined) {
            continue;
          }
          const answer = messages.slice(index + 1).find((message) => message.role === MessageRole.ASSISTANT);
          block.append(h("div", { class: "bubble user", "data-testid": "asked-question" }, question.content));
          if (answer !== undefined) {
            const parts: HTMLElement[] = [h("div", { class: "answer-text" }, answer.content)];
            const citations = citationList(this.page, answer.citations);
            if (citations !== null) {
              parts.push(citations);
            }
            block.append(h("div", { class: "bubble tutor", "data-testid": "asked-answer" }, ...parts));
          }
        }
      }
    } catch (error) {
      this.page.fail(error, "Opening your earlier questions");
    }
    block.scrollIntoView({ block: "end" });
  }

  private async messagesOf(session: string): Promise<Message[]> {
    const found: Message[] = [];
    let pageToken = "";
    do {
      const response = await this.page.api.chat.listMessages({ parent: session, pageSize: 200, pageToken });
      found.push(...response.messages);
      pageToken = response.nextPageToken;
    } while (pageToken);
    return found;
  }

  async attach(range: Range): Promise<void> {
    try {
      const session = await this.ensureSession();
      const response = await this.page.api.chat.addTranscriptReference({
        session,
        videoId: this.page.where().videoId,
        range: { startSeconds: range.start, endSeconds: range.end },
      });
      if (response.reference) {
        this.showReference(session, response.reference);
      }
    } catch (error) {
      this.page.fail(error, "Attaching the selection to the chat");
    }
  }

  private showReference(session: string, reference: TranscriptReference): void {
    const chip = h(
      "span",
      { class: "reference", "data-testid": "reference", title: reference.text },
      `Attached ${span(reference.range?.startSeconds ?? 0, reference.range?.endSeconds ?? 0)}`,
    );
    chip.append(
      button(
        "×",
        async () => {
          try {
            await this.page.api.chat.removeTranscriptReference({ session, referenceId: reference.referenceId });
            chip.remove();
          } catch (error) {
            this.page.fail(error, "Removing the attached range");
          }
        },
        { class: "quiet", "aria-label": "Remove" },
      ),
    );
    this.references.append(chip);
  }

  private async ensureSession(): Promise<string> {
    const where = this.page.where();
    if (this.session !== null && this.sessionVideo === where.videoId) {
      return this.session;
    }
    const response = await this.page.api.chat.createSession({
      title: where.title,
      learningContext: learningContext({ ...where, selection: null }),
    });
    const name = response.session?.name;
    if (!name) {
      throw new Error("the server returned no session");
    }
    this.session = name;
    this.sessionVideo = where.videoId;
    return name;
  }

  private finalParts(chunk: StreamChatResponse): HTMLElement[] {
    const reason = chunk.finishReason;
    const parts: HTMLElement[] = [];
    const citations = citationList(this.page, chunk.citations);
    if (citations !== null) {
      parts.push(citations);
    }
    const facts = [chunk.model];
    if (chunk.usage) {
      facts.push(`${tokens(chunk.usage.totalTokens)} tokens`);
    }
    if (chunk.cached) {
      facts.push("from cache");
    }
    if (chunk.fallback) {
      facts.push("offline engine (model unavailable)");
    }
    if (reason === FinishReason.LENGTH) {
      facts.push("cut at the length limit");
    } else if (reason === FinishReason.ERROR) {
      facts.push("incomplete: the model failed mid-answer");
    } else if (reason === FinishReason.CONTENT_FILTER) {
      facts.push("filtered");
    }
    parts.push(h("div", { class: "meta", "data-testid": "answer-meta" }, facts.filter(Boolean).join(" · ")));
    if (chunk.interactionId) {
      parts.push(this.rating(chunk.interactionId));
    }
    return parts;
  }

  private rating(interactionId: string): HTMLElement {
    const row = h("div", { class: "rating" });
    const rate = async (value: number): Promise<void> => {
      try {
        await this.page.api.analytics.rateInteraction({ name: `interactions/${interactionId}`, rating: value });
        row.replaceChildren(h("span", { class: "meta" }, "thanks for the feedback"));
      } catch (error) {
        this.page.fail(error, "Rating the answer");
      }
    };
    row.append(
      h("span", { class: "meta" }, "Was this helpful? "),
      button("Yes", () => void rate(5), { class: "quiet", "data-testid": "rate-up" }),
      button("No", () => void rate(1), { class: "quiet", "data-testid": "rate-down" }),
    );
    return row;
  }
}
