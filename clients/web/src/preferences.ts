// Tutor settings: each change is saved at once with an update mask naming just that field.
import { Personality, ResponseLength } from "../../../generated/ts/tutorstream/v1/common_pb.js";
import { QuizFrequency, type Preferences } from "../../../generated/ts/tutorstream/v1/agent_service_pb.js";
import type { Page } from "./context.js";
import { clear, h } from "./dom.js";

const NAME = "users/me/preferences";

type Choice = [number, string];
const PERSONALITIES: Choice[] = [
  [Personality.FRIENDLY, "Friendly"],
  [Personality.PROFESSIONAL, "Professional"],
  [Personality.PEER, "Peer"],
];
const LENGTHS: Choice[] = [
  [ResponseLength.SHORT, "Short"],
  [ResponseLength.MEDIUM, "Medium"],
  [ResponseLength.DETAILED, "Detailed"],
];
const FREQUENCIES: Choice[] = [
  [QuizFrequency.OFF, "Off"],
  [QuizFrequency.LOW, "Low"],
  [QuizFrequency.MEDIUM, "Medium"],
  [QuizFrequency.HIGH, "High"],
];

type EnumField = "personality" | "responseLength" | "quizFrequency";
type FlagField = "autoHintsEnabled" | "reflectionPromptsEnabled" | "noSpoilers";
const MASK_PATHS: Record<EnumField | FlagField, string> = {
  personality: "personality",
  responseLength: "response_length",
  quizFrequency: "quiz_frequency",
  autoHintsEnabled: "auto_hints_enabled",
  reflectionPromptsEnabled: "reflection_prompts_enabled",
  noSpoilers: "no_spoilers",
};

export class PreferencesPanel {
  private readonly form: HTMLElement;
  private readonly status: HTMLElement;

  constructor(
    root: HTMLElement,
    private readonly page: Page,
  ) {
    this.form = h("div", { class: "preferences-form" });
    this.status = h("span", { class: "meta", "data-testid": "preferences-status" }, "loading…");
    clear(root);
    root.append(h("summary", {}, "Tutor settings ", this.status), this.form);
  }

  async load(): Promise<void> {
    try {
      const response = await this.page.api.agents.getPreferences({ name: NAME });
      if (response.preferences) {
        this.render(response.preferences);
        this.status.textContent = "";
      }
    } catch (error) {
      this.status.textContent = "unavailable";
      this.page.fail(error, "Loading your tutor settings");
    }
  }

  private render(preferences: Preferences): void {
    clear(this.form);
    this.form.append(
      this.select("Voice", "personality", PERSONALITIES, preferences.personality),
      this.select("Answer length", "responseLength", LENGTHS, preferences.responseLength),
      this.select("Quizzes while watching", "quizFrequency", FREQUENCIES, preferences.quizFrequency),
      this.checkbox("Hints while watching", "autoHintsEnabled", preferences.autoHintsEnabled),
      this.checkbox("Reflection prompts", "reflectionPromptsEnabled", preferences.reflectionPromptsEnabled),
      this.checkbox("No spoilers (only what I have watched)", "noSpoilers", preferences.noSpoilers),
    );
  }

  private select(label: string, field: EnumField, choices: Choice[], current: number): HTMLElement {
    const select = h(
      "select",
      { "data-testid": `pref-${MASK_PATHS[field]}` },
      ...choices.map(([value, text]) => h("option", { value, selected: value === current }, text)),
    );
    select.addEventListener("change", () => void this.save(field, Number(select.value)));
    return h("label", {}, label, select);
  }

  private checkbox(label: string, field: FlagField, current: boolean): HTMLElement {
    const input = h("input", { type: "checkbox", checked: current, "data-testid": `pref-${MASK_PATHS[field]}` });
    input.addEventListener("change", () => void this.save(field, input.checked));
    return h("label", { class: "check" }, input, label);
  }

  private async save(field: EnumField | FlagField, value: number | boolean): Promise<void> {
    this.status.textContent = "saving…";
    try {
      const response = await this.page.api.agents.updatePreferences({
        preferences: { name: NAME, [field]: value },
        updateMask: { paths: [MASK_PATHS[field]] },
      });
      if (response.preferences) {
        this.render(response.preferences);
      }
      this.status.textContent = "saved";
    } catch (error) {
      this.status.textContent = "not saved";
      this.page.fail(error, "Saving your tutor settings");
    }
  }
}
