"""Whether a text gives an answer away, and the text with the answer blanked out (spaCy lemmas, not string
tricks): the check every hint and quiz stem passes before a student sees it.

A text contains an answer when the answer is written in it (case and spacing ignored; whole words for
answers under three characters), or when the answer's content words appear in it in the same order and next
to each other, whatever their inflection ("flex containers" gives away "flex container").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from server.nlp import pipeline

BLANK = "_____"


def normalize(text: str) -> str:
    return " ".join(text.casefold().split())


def _adjacent(needle: Sequence[str], haystack: Sequence[str]) -> bool:
    size = len(needle)
    return size > 0 and any(list(haystack[i : i + size]) == list(needle) for i in range(len(haystack) - size + 1))


def contains_answer(text: str, answer: str) -> bool:
    wanted = normalize(answer).strip(" .,;:!?\"'“”‘’")
    if not wanted:
        return False
    written = normalize(text)
    if len(wanted) >= 3:
        if wanted in written:
            return True
    elif re.search(rf"(?<![a-z0-9]){re.escape(wanted)}(?![a-z0-9])", written):
        return True
    return _adjacent(pipeline.content_keys(answer), pipeline.content_keys(text))


def mask_answers(text: str, answers: Iterable[str]) -> str:
    """`text` with every place an answer is written (in any inflection) replaced by a blank."""
    for answer in answers:
        keys = pipeline.content_keys(answer)
        if keys:
            tokens = pipeline.content_tokens(pipeline.parse(text))
            spans: list[tuple[int, int]] = []
            for start in range(len(tokens) - len(keys) + 1):
                window = tokens[start : start + len(keys)]
                if [pipeline.token_key(token) for token in window] == keys:
                    spans.append((window[0].idx, window[-1].idx + len(window[-1].text)))
            for begin, end in reversed(spans):
                text = text[:begin] + BLANK + text[end:]
        literal = " ".join(answer.split())
        if len(literal) >= 3:
            text = re.sub(re.escape(literal), BLANK, text, flags=re.IGNORECASE)
    return text
