// Agent cards: hint (amber), quiz (violet), reflect (teal) and learning path (blue). Quizzes are answered in
// place; the server reveals the correct option and the updated mastery per answer.
import { Difficulty } from "../../../generated/ts/tutorstream/v1/common_pb.js";
import type {
  Quiz,
  QuizQuestion,
  SubmitQuizAnswerResponse,
} from "../../../generated/ts/tutorstream/v1/agent_service_pb.js";
import { citationChip, citationList } from "./citations.js";
import { learningContext, type Page, type Where } from "./context.js";
import { append, button, clear, h, type Child } from "./dom.js";
import { randomId, span } from "./format.js";
import type { Range } from "./transcript.js";

const QUIZ_QUESTIONS = 3;
// The rungs of the server's hint ladder (GetHintResponse.level).
const HINT_RUNGS = 3;
const QUIZ_LOOKBACK_SECONDS = 180;
const LETTERS = ["A", "B", "C", "D"];

export class AgentPanel {
  private readonly cards: HTMLElement;
  private readonly buttons: HTMLButtonElement[];

  constructor(
    root: HTMLElement,
    private readonly page: Page,
  ) {
    this.cards = h("div", { class: "cards", "data-testid": "cards" });
    this.buttons = [
      button("Hint", () => void this.hint(), { class: "agent-button hint", "data-testid": "agent-hint" }),
      button("Quiz me", () => void this.quiz(), { class: "agent-button quiz", "data-testid": "agent-quiz" }),
      button("Reflect", () => void this.reflect(), {
        class: "agent-button reflect",
        "data-testid": "agent-reflect",
      }),
      button("Learning path", () => void this.path(), {
        class: "agent-button path",
        "data-testid": "agent-path",
      }),
    ];
    clear(root);
    root.append(h("h2", {}, "Tutor tools"), h("div", { class: "agent-buttons" }, ...this.buttons), this.cards);
  }

  reset(): void {
    clear(this.cards);
  }

  /**
   * A hint about the moment on screen. Asking again for the same moment climbs the server's hint ladder: a
   * guiding question, then a narrower one, then a scaffold that stops just short of the answer.
   */
  async hint(struggle = "", at?: Where): Promise<void> {
    const where = at ?? this.page.where();
    await this.run("hint", "Getting a hint", async () => {
      const response = await this.page.api.agents.getHint({ learningContext: learningContext(where), struggle });
      const another =
        response.level < HINT_RUNGS
          ? button(
              "Another hint",
              () => void this.hint(struggle, where),
              { class: "quiet", "data-testid": "hint-another" },
            )
          : null;
      return [
        h(
          "div",
          { class: "meta", "data-testid": "hint-level" },
          `Hint ${response.level} of ${HINT_RUNGS}`,
          response.level >= HINT_RUNGS ? " · the last one: the answer is yours to find" : "",
        ),
        h("p", { class: "card-text", "data-testid": "hint-text" }, response.hint),
        response.citation ? h("div", { class: "citations" }, citationChip(this.page, response.citation)) : null,
        another,
        h("div", { class: "meta" }, `confidence ${Math.round(response.confidence * 100)}% · ${response.model}`),
      ];
    });
  }

  async quiz(range?: Range): Promise<void> {
    const where = this.page.where();
    const chosen = range ?? where.selection ?? this.recentRange(where.position, where.duration);
    await this.run("quiz", "Writing a quiz", async () => {
      const response = await this.page.api.agents.generateQuiz({
        videoId: where.videoId,
        range: { startSeconds: chosen.start, endSeconds: chosen.end },
        difficulty: Difficulty.MEDIUM,
        questionCount: QUIZ_QUESTIONS,
      });
      if (!response.quiz) {
        throw new Error("the server returned no quiz");
      }
      return this.quizBody(response.quiz);
    });
  }

  /** Shows a quiz the server already made (e.g. offered by an intervention). */
  showQuiz(quiz: Quiz): void {
    this.cards.prepend(this.card("quiz", ...this.quizBody(quiz)));
  }

  async reflect(): Promise<void> {
    await this.run("reflect", "Preparing a reflection", async () => {
      const response = await this.page.api.agents.generateReflection({
        learningContext: learningContext(this.page.where()),
      });
      return [
        h("p", { class: "card-text", "data-testid": "reflection-prompt" }, response.prompt),
        h("ol", {}, ...response.guidingQuestions.map((question) => h("li", {}, question))),
        h("textarea", {
          rows: 3,
          placeholder: `About ${response.expectedLengthWords} words — for yourself; nothing is sent.`,
          "aria-label": "Your reflection",
        }),
        citationList(this.page, response.citations),
      ];
    });
  }

  async path(): Promise<void> {
    await this.run("path", "Planning a learning path", async () => {
      const response = await this.page.api.agents.generateLearningPath({ courseId: this.page.where().courseId });
      return [
        response.detectedIssues.length > 0
          ? h("ul", { class: "issues" }, ...response.detectedIssues.map((issue) => h("li", {}, issue)))
          : null,
        h(
          "ol",
          { class: "recommendations", "data-testid": "recommendations" },
          ...response.recommendations.map((item) =>
            h(
              "li",
              {},
              h("strong", {}, item.title || item.videoId),
              ` — ${item.concept} (${Math.round(item.estimatedMinutes)} min) `,
              button(
                `▶ ${span(item.range?.startSeconds ?? 0, item.range?.endSeconds ?? 0)}`,
                () => this.page.seekTo({ videoId: item.videoId, startSeconds: item.range?.startSeconds ?? 0 }),
                { class: "citation", "data-testid": "citation" },
              ),
              h("div", { class: "why" }, item.why),
            ),
          ),
        ),
        response.nextSteps.length > 0
          ? h("ul", { class: "next-steps" }, ...response.nextSteps.map((step) => h("li", {}, step)))
          : null,
      ];
    });
  }

  private recentRange(position: number, duration: number): Range {
    const end = Math.max(Math.min(duration, position), Math.min(duration, QUIZ_LOOKBACK_SECONDS));
    return { start: Math.max(0, end - QUIZ_LOOKBACK_SECONDS), end };
  }

  private async run(kind: string, doing: string, produce: () => Promise<Child[]>): Promise<void> {
    const placeholder = this.card(kind, h("p", { class: "meta" }, `${doing}…`));
    placeholder.classList.add("loading");
    this.cards.prepend(placeholder);
    for (const element of this.buttons) {
      element.disabled = true;
    }
    try {
      const body = await produce();
      placeholder.replaceWith(this.card(kind, ...body));
    } catch (error) {
      placeholder.remove();
      this.page.fail(error, doing);
    } finally {
      for (const element of this.buttons) {
        element.disabled = false;
      }
      this.page.usageChanged();
    }
  }

  private card(kind: string, ...body: Child[]): HTMLElement {
    const titles: Record<string, string> = {
      hint: "Hint",
      quiz: "Knowledge check",
      reflect: "Reflect",
      path: "Your learning path",
    };
    const close = button("×", () => element.remove(), { class: "card-close quiet", "aria-label": "Close" });
    const element = h(
      "article",
      { class: `card ${kind}`, "data-testid": `card-${kind}` },
      h("header", {}, h("span", { class: "card-kind" }, titles[kind] ?? kind), close),
      ...body,
    );
    return element;
  }

  private quizBody(quiz: Quiz): Child[] {
    const score = h("div", { class: "quiz-score", "data-testid": "quiz-score" });
    const results: boolean[] = [];
    const questions = quiz.questions.map((question, number) =>
      this.question(quiz, question, number, (correct) => {
        results.push(correct);
        const right = results.filter(Boolean).length;
        score.textContent = `${right} of ${results.length} correct (${quiz.questions.length} questions)`;
      }),
    );
    return [
      h("div", { class: "meta" }, `${span(quiz.range?.startSeconds ?? 0, quiz.range?.endSeconds ?? 0)} · ${quiz.model}`),
      ...questions,
      score,
    ];
  }

  private question(
    quiz: Quiz,
    question: QuizQuestion,
    number: number,
    answered: (correct: boolean) => void,
  ): HTMLElement {
    const feedback = h("div", { class: "feedback" });
    const attemptId = randomId(24);
    const options = question.options.map((option, index) =>
      button(`${LETTERS[index] ?? index + 1}. ${option}`, () => void choose(index), {
        class: "option",
        "data-testid": "quiz-option",
        "data-index": index,
      }),
    );
    const choose = async (index: number): Promise<void> => {
      for (const option of options) {
        option.disabled = true;
      }
      try {
        const result = await this.page.api.agents.submitQuizAnswer({
          quiz: quiz.name,
          questionId: question.questionId,
          selectedIndex: index,
          attemptId,
        });
        this.showResult(options, feedback, index, result);
        answered(result.correct);
      } catch (error) {
        for (const option of options) {
          option.disabled = false;
        }
        this.page.fail(error, "Checking your answer");
      }
    };
    return h(
      "div",
      { class: "question", "data-testid": "quiz-question" },
      h("p", { class: "stem" }, `${number + 1}. ${question.stem}`),
      h("div", { class: "options" }, ...options),
      feedback,
    );
  }

  private showResult(
    options: HTMLButtonElement[],
    feedback: HTMLElement,
    chosen: number,
    result: SubmitQuizAnswerResponse,
  ): void {
    options[result.correctIndex]?.classList.add("correct");
    if (!result.correct) {
      options[chosen]?.classList.add("wrong");
    }
    const mastery = result.mastery
      .map((item) => `${item.concept} ${Math.round(item.probability * 100)}%`)
      .join(", ");
    clear(feedback);
    append(
      feedback,
      h(
        "strong",
        { class: result.correct ? "verdict correct" : "verdict wrong", "data-testid": "quiz-verdict" },
        result.correct ? "Correct" : "Not quite",
      ),
      h("p", {}, result.explanation),
      result.citation ? citationChip(this.page, result.citation) : null,
      mastery ? h("div", { class: "meta" }, `mastery: ${mastery}`) : null,
    );
  }
}
