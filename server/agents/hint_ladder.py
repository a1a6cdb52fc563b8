"""The offline hint ladder: three rungs about one key sentence of the moment a student is stuck at.

The key sentence is chosen among the sentences around the playhead (or in the selected range): the one that
best matches what the student says is hard (by meaning and words), else the one just heard before the
playhead, preferring sentences whose parse gave a "why" or "what happens if" question (a `Frame`, see
server.nlp.questions), whose answers are what students most often miss; a sentence without one gets a
question about its topic, its first key phrase. Its key term is the most
telling key phrase inside the part of the sentence that answers the question.

    rung 1  where to look and a guiding question from the sentence's parse
            "Re-watch 07:01–07:12. Why does a flex item with a long URL overflow?"
    rung 2  narrower: what kind of answer it is, with the sentence quoted up to where the answer starts
            "At 07:01 the lecture gives the reason: “A flex item with a long URL overflows because …” What
             reason does it give?"
    rung 3  a scaffold that stops just short: the sentence with its key term blanked
            "Fill in the blank from 07:01: “… because its _____ is auto.” What goes in the blank?"

Rungs 1 and 2 never contain the key term, and no rung contains the correct option of a quiz on this stretch
(those are blanked too); a candidate that would is skipped for the next best sentence.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from server.agents.corpus import CourseIndex
from server.agents.leaks import BLANK, contains_answer, mask_answers
from server.llm.grounding import format_clock, shorten
from server.llm.persona import Persona
from server.nlp.analysis import Mention
from server.nlp.questions import WHAT_DOES, WHAT_IF, WHAT_IS, WHAT_OBJECT, WHY, Frame
from server.nlp.sentence import StoredSentence

QUESTION, NARROW, SCAFFOLD = 1, 2, 3
TOP_RUNG = SCAFFOLD
PROXIMITY_SCALE_SECONDS = 60.0
# A question about what the sentence says of its topic, when its parse allows no better one.
STATEMENT = "statement"
_KIND_PREFERENCE = {WHY: 0.3, WHAT_IF: 0.25, WHAT_IS: 0.15, WHAT_OBJECT: 0.12, WHAT_DOES: 0.1, STATEMENT: 0.0}
# A sentence ending this soon after the playhead counts as heard.
HEARD_TOLERANCE_SECONDS = 2.0
BEING_SAID = 0.5
NOT_YET_SAID = 0.3
_VERBS = {"friendly": "Take another look at", "professional": "Re-watch", "peer": "Try replaying"}
_NARROWING = {
    WHY: ("the lecture gives the reason", "What reason does it give?"),
    WHAT_IF: ("the lecture says what happens then", "What does it say happens?"),
    WHAT_IS: ("the lecture says what it is", "How does it finish that sentence?"),
    WHAT_DOES: ("the lecture says what it does", "What does it say it does?"),
    WHAT_OBJECT: ("the lecture says what it acts on", "How does it finish that sentence?"),
    STATEMENT: ("the lecture says it", "How does it finish that sentence?"),
}


@dataclass(frozen=True, slots=True)
class Step:
    """The key sentence of a moment, the question asked about it and its key term (None when the answer part
    names no key phrase)."""

    sentence: StoredSentence
    frame: Frame
    key: Mention | None

    @property
    def moment(self) -> str:
        """Identifies the moment across calls: a repeated hint for it climbs the ladder."""
        return f"{self.sentence.video_id}#{self.sentence.index}"


def _key_term(sentence: StoredSentence, frame: Frame, index: CourseIndex) -> Mention | None:
    inside = [m for m in sentence.mentions if frame.answer_start <= m.start and m.end <= frame.answer_end]
    scored: list[tuple[float, Mention]] = []
    for mention in inside:
        term = index.term(mention.key)
        if term is not None:
            scored.append((index.idf(term) * index.boost(term), mention))
    return max(scored, key=lambda pair: (pair[0], -pair[1].start))[1] if scored else None


def _ok(texts: Sequence[str], step: Step, forbidden: Sequence[str]) -> bool:
    """No rung may give away a quiz answer; rungs 1–2 may not say the key term."""
    if any(contains_answer(text, answer) for text in texts for answer in forbidden):
        return False
    if step.key is None:
        return True
    written = step.sentence.text[step.key.start : step.key.end]
    return not any(contains_answer(text, written) for text in texts)


def statement_frame(sentence: StoredSentence, index: CourseIndex) -> Frame | None:
    """For a sentence whose parse gave no question: one about its topic, its most telling key phrase (not the
    last words), answered by the rest of the sentence ("no-cache does not mean do not cache." → "What does the
    lecture say about no-cache?")."""
    scored: list[tuple[float, Mention]] = []
    for mention in sentence.mentions:
        term = index.term(mention.key)
        if term is not None and mention.end < len(sentence.text) - 8:
            scored.append((index.idf(term) * index.boost(term), mention))
    if not scored:
        return None
    topic = max(scored, key=lambda pair: (pair[0], -pair[1].start))[1]
    written = sentence.text[topic.start : topic.end]
    end = len(sentence.text.rstrip().rstrip(".!"))
    question = f"What does the lecture say about {written}?"
    return Frame(STATEMENT, question, sentence.text[topic.end : end].strip(), topic.end, end, "", written)


def _proximity(sentence: StoredSentence, position: float) -> float:
    """The student is stuck on what they just heard: a sentence finished before the playhead counts most, one
    being said at the playhead half, one not said yet a little."""
    if sentence.end_seconds <= position + HEARD_TOLERANCE_SECONDS:
        return math.exp(-max(0.0, position - sentence.end_seconds) / PROXIMITY_SCALE_SECONDS)
    if sentence.start_seconds <= position:
        return BEING_SAID
    return NOT_YET_SAID * math.exp(-(sentence.start_seconds - position) / PROXIMITY_SCALE_SECONDS)


def choose_step(
    sentences: Sequence[StoredSentence],
    index: CourseIndex,
    *,
    position: float,
    struggle_keys: Sequence[str],
    forbidden: Sequence[str],
    persona: Persona,
) -> Step | None:
    """The best key sentence of the window whose rungs 1–2 leak nothing (see the module docstring)."""
    asked = set(struggle_keys)
    candidates: list[tuple[float, Step]] = []
    for sentence in sentences:
        if not sentence.complete:
            continue
        frames = [f for f in sentence.frames if not f.answer_before and f.kind in _KIND_PREFERENCE]
        statement = statement_frame(sentence, index) if not frames else None
        for frame in [*frames, *([statement] if statement else [])]:
            step = Step(sentence, frame, _key_term(sentence, frame, index))
            score = _KIND_PREFERENCE[frame.kind] + 0.5 * _proximity(sentence, position)
            if asked:
                score += (sentence.similarity or 0.0) + 0.5 * len(asked & set(sentence.lemmas)) / len(asked)
            if step.key is not None:
                score += 0.1
            candidates.append((score, step))
    candidates.sort(key=lambda pair: (-pair[0], pair[1].sentence.start_seconds))
    for _, step in candidates:
        if _ok([rung(step, QUESTION, persona), rung(step, NARROW, persona)], step, forbidden):
            return step
    return None


def _where(sentence: StoredSentence) -> str:
    return f"{format_clock(sentence.start_seconds)}–{format_clock(sentence.end_seconds)}"


def rung(step: Step, level: int, persona: Persona, forbidden: Sequence[str] = ()) -> str:
    """The hint of one rung (forbidden answers are blanked out of the scaffold's quote)."""
    sentence, frame = step.sentence, step.frame
    verb = _VERBS.get(persona.personality, _VERBS["friendly"])
    if level <= QUESTION:
        return f"{verb} {_where(sentence)}. {frame.question}"
    at = format_clock(sentence.start_seconds)
    if level == NARROW:
        what, ask = _NARROWING[frame.kind]
        prefix = sentence.text[: frame.answer_start].rstrip()
        if not prefix:
            return f"At {at} {what}. Listen to the whole sentence: {frame.question[:1].lower()}{frame.question[1:]}"
        return f"At {at} {what}: “{shorten(prefix, 200)} …” {ask}"
    blanked = sentence.text
    if step.key is not None:
        blanked = blanked[: step.key.start] + BLANK + blanked[step.key.end :]
    else:
        blanked = blanked[: frame.answer_start] + BLANK + blanked[frame.answer_end :]
    blanked = mask_answers(blanked, forbidden)
    return f"Fill in the blank from {at}: “{shorten(blanked, 300)}” What goes in the blank?"


def hint_text(step: Step, level: int, persona: Persona, forbidden: Sequence[str]) -> str | None:
    """The rung's hint, or None when even the scaffold would give a quiz answer away."""
    text = rung(step, level, persona, forbidden)
    if any(contains_answer(text, answer) for answer in forbidden):
        return None
    return text
