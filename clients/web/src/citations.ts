// Citation chips: "▶ 01:23–01:40" buttons that move the player to the cited moment.
import type { Citation } from "../../../generated/ts/tutorstream/v1/common_pb.js";
import { button, h } from "./dom.js";
import { span } from "./format.js";
import type { Page } from "./context.js";

export function citationChip(page: Page, citation: Citation): HTMLButtonElement {
  const here = page.where().videoId === citation.videoId;
  const label = `▶ ${span(citation.startSeconds, citation.endSeconds)}${here ? "" : ` · ${citation.videoId}`}`;
  return button(label, () => page.seekTo(citation), {
    class: "citation",
    "data-testid": "citation",
    "data-start": citation.startSeconds,
    "data-video": citation.videoId,
    title: citation.quotedText,
  });
}

export function citationList(page: Page, citations: Citation[]): HTMLElement | null {
  if (citations.length === 0) {
    return null;
  }
  return h("div", { class: "citations" }, ...citations.map((citation) => citationChip(page, citation)));
}
