// Toasts: errors decoded from status details, and the tutor's interventions.
import { button, h, type Child } from "./dom.js";
import { describeError, problemLines, type Problem } from "./errors.js";

const ERROR_TOAST_MS = 12_000;

function region(): HTMLElement {
  let element = document.getElementById("toasts");
  if (element === null) {
    element = h("div", { id: "toasts", "aria-live": "polite" });
    document.body.appendChild(element);
  }
  return element;
}

export function toast(className: string, testId: string, ...children: Child[]): HTMLElement {
  const element = h("div", { class: `toast ${className}`, role: "status", "data-testid": testId });
  const close = button("×", () => element.remove(), { class: "toast-close", "aria-label": "Close" });
  element.append(close);
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      element.append(typeof child === "object" ? child : String(child));
    }
  }
  region().prepend(element);
  return element;
}

/** Shows a failed call; returns the decoded problem so callers can react (e.g. sign-in on UNAUTHENTICATED). */
export function showProblem(error: unknown, doing: string): Problem {
  const problem = describeError(error);
  const facts = problem.reason
    ? `${problem.codeName} · ${problem.reason}${problem.requestId ? ` · request ${problem.requestId}` : ""}`
    : problem.codeName;
  const element = toast(
    `error code-${problem.codeName.toLowerCase()}`,
    "error",
    h("strong", { class: "toast-title" }, problem.title),
    h("div", { class: "toast-context" }, doing),
    ...problemLines(problem).map((line) => h("div", { class: "toast-line" }, line)),
    h("div", { class: "toast-facts", "data-testid": "error-facts" }, facts),
  );
  element.dataset.code = problem.codeName;
  element.dataset.reason = problem.reason;
  window.setTimeout(() => element.remove(), ERROR_TOAST_MS);
  return problem;
}
