"""The offline engine (`offline-extractive`): grounded answers without a language model.

It answers from the transcript excerpts the prompt builder selected, in three parts: what the lecture says
about the question (the best-matching sentences, quoted), where (the cited excerpt's mm:ss range, with its
`[cN]` id, so the same citation parser as for a model applies), and a next step to try. When nothing in the
excerpts matches the question it says so instead of inventing an answer.

Sentence ranking is deterministic: question terms (lower-cased, stop words dropped, light stemming, compound
terms such as `justify-content` kept whole and split) weighted by their rarity among the candidate sentences,
a bonus for adjacent question terms found together, the excerpt's retrieval rank, whether the student
selected it, and how close it is to the playhead. A question with no content words ("what does this mean?")
is answered from what the lecture says just before the playhead.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

from server.llm.grounding import (
    KIND_PLAYHEAD,
    KIND_SEARCH,
    KIND_SELECTED,
    Source,
    format_clock,
    sentences_of,
    shorten,
    stem,
)
from server.llm.persona import Persona, persona_for
from server.llm.provider import Completion, StreamEvent, TextDelta

OFFLINE_MODEL = "offline-extractive"

_WORD = re.compile(r"[A-Za-z0-9]+(?:['\-.:/][A-Za-z0-9]+)*")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_STOPWORD_TEXT = """a about above after again all also am an and any are as at be because been before being below
    between both but by can could did do does doing done down during each either else ever every few for
    from further get gets got had has have having he her here hers him his how i if in into is it its
    itself just kind let lot me mean means meant might more most much must my no nor not now of off on
    once one only or other our out over own please really same say said says she should so some such
    tell than that the their them then there these they thing things this those through to too under
    until up us use used using very want was way we were what when where whether which while who whom
    why will with would yes yet you your lecture lesson video teacher instructor explain explained
    explains talk talking talks difference different work works example show shows shown can't don't
    doesn't didn't isn't aren't won't wouldn't shouldn't i'm it's what's that's there's let's"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# A question made of these alone points at the playhead ("what does this mean?", "can you explain that?").
_DEICTIC = frozenset({"this", "that", "here", "it", "now", "just"})
_CODE_HINT = re.compile(r"[-_.:/()]|[a-z][A-Z]")
PROXIMITY_SCALE_SECONDS = 90.0
MIN_COVERAGE = 0.3
# A compound's parts (`justify` and `content` of `justify-content`) count for less than the compound.
PART_WEIGHT = 0.5
# A sentence whose subject is a term of the question ("justify-content distributes ...") likely defines it.
SUBJECT_BONUS = 0.6


def _tokens(text: str) -> list[str]:
    """Word-like tokens in their original case (compounds like `flex-direction` or `Promise.all` whole)."""
    return [token.strip(".:/'-") for token in _WORD.findall(text)]


def _terms(token: str) -> list[tuple[str, float]]:
    """A token's terms with their weight: the token itself, and the parts of a compound or camelCase word."""
    lower = token.lower()
    if not lower or lower in _STOPWORDS:
        return []
    head = stem(lower)
    terms = [(head, 1.0)]
    pieces = [part for piece in re.split(r"[-.:/']", token) for part in _CAMEL_BOUNDARY.split(piece) if part]
    if len(pieces) > 1:
        for piece in pieces:
            part = stem(piece.lower())
            if piece.lower() not in _STOPWORDS and part != head and all(part != term for term, _ in terms):
                terms.append((part, PART_WEIGHT))
    return terms


@dataclass(frozen=True, slots=True)
class _Sentence:
    text: str
    source: Source
    seconds: float
    terms: frozenset[str]
    bigrams: frozenset[tuple[str, str]]
    subject: str


@dataclass(slots=True)
class _Question:
    # term -> weight factor (1.0 for words, PART_WEIGHT for parts of compounds), in question order
    terms: dict[str, float] = field(default_factory=dict)
    bigrams: set[tuple[str, str]] = field(default_factory=set)
    surface: dict[str, str] = field(default_factory=dict)
    deictic: bool = False
    # term -> rarity-based weight among the candidate sentences (set while ranking)
    weights: dict[str, float] = field(default_factory=dict)


def _parse_question(question: str) -> _Question:
    parsed = _Question()
    previous: str | None = None
    raw_tokens = _tokens(question)
    for token in raw_tokens:
        terms = _terms(token)
        if not terms:
            previous = None
            continue
        head = terms[0][0]
        parsed.surface.setdefault(head, token)
        for term, factor in terms:
            parsed.terms[term] = max(factor, parsed.terms.get(term, 0.0))
        if previous is not None:
            parsed.bigrams.add((previous, head))
        previous = head
    parsed.deictic = not parsed.terms and any(token.lower() in _DEICTIC for token in raw_tokens)
    return parsed


def _heads(tokens: Sequence[str]) -> list[str]:
    return [terms[0][0] for token in tokens if (terms := _terms(token))]


def _sentences(sources: Sequence[Source]) -> list[_Sentence]:
    """Every sentence of every excerpt once (neighbouring chunks overlap), with an estimated time."""
    seen: set[str] = set()
    sentences: list[_Sentence] = []
    for source in sources:
        hit = source.hit
        text = " ".join(hit.text.split())
        offset = 0
        for sentence in sentences_of(text):
            position = text.find(sentence, offset)
            offset = position + len(sentence) if position >= 0 else offset
            key = sentence.lower()
            if key in seen or not _WORD.search(key):
                continue
            seen.add(key)
            fraction = max(0, position) / max(1, len(text))
            tokens = _tokens(sentence)
            heads = _heads(tokens)
            sentences.append(
                _Sentence(
                    text=sentence,
                    source=source,
                    seconds=hit.start_seconds + fraction * (hit.end_seconds - hit.start_seconds),
                    terms=frozenset(term for token in tokens for term, _ in _terms(token)),
                    bigrams=frozenset(itertools.pairwise(heads)),
                    subject=heads[0] if heads else "",
                )
            )
    return sentences


@dataclass(frozen=True, slots=True)
class OfflineRequest:
    question: str
    sources: Sequence[Source]
    video_id: str = ""
    position_seconds: float | None = None
    persona: Persona = field(default_factory=lambda: persona_for("", ""))


@dataclass(frozen=True, slots=True)
class _Pick:
    sentence: _Sentence
    score: float


class OfflineEngine:
    """Deterministic extractive answers, streamed word by word like a model's."""

    name = "offline"
    model = OFFLINE_MODEL

    def answer(self, request: OfflineRequest) -> str:
        question = _parse_question(request.question)
        sentences = _sentences(request.sources)
        picks = self._rank(question, sentences, request)
        opener = f"{request.persona.opener} " if request.persona.opener else ""
        if picks:
            return opener + self._grounded_answer(question, picks, request)
        return opener + self._no_answer(request)

    async def stream(self, request: OfflineRequest) -> AsyncGenerator[StreamEvent, None]:
        text = self.answer(request)
        for word in re.findall(r"\S+\s*", text):
            yield TextDelta(word)
            # Hand the loop back between words: other streams progress and a cancel lands here.
            await asyncio.sleep(0)
        yield Completion(finish_reason="stop", prompt_tokens=0, completion_tokens=0, model=self.model, text=text)

    # --- ranking -------------------------------------------------------------------------------------------

    def _rank(self, question: _Question, sentences: list[_Sentence], request: OfflineRequest) -> list[_Pick]:
        if not sentences:
            return []
        if question.deictic and request.position_seconds is not None:
            return self._near_playhead(sentences, request)
        if not question.terms:
            return []
        total = len(sentences)
        document_frequency = {
            term: sum(1 for sentence in sentences if term in sentence.terms) for term in question.terms
        }
        weight = {term: math.log(1.0 + total / (1.0 + document_frequency[term])) for term in question.terms}
        question.weights = weight
        question_weight = sum(weight.values())
        best_retrieval = max((s.source.hit.score for s in sentences), default=0.0) or 1.0
        scored: list[_Pick] = []
        for sentence in sentences:
            matched = [term for term in question.terms if term in sentence.terms]
            if not matched:
                continue
            lexical = sum(weight[term] for term in matched)
            if lexical / question_weight < MIN_COVERAGE:
                continue
            score = lexical + 0.75 * len(question.bigrams & sentence.bigrams)
            if sentence.subject in weight:
                score += SUBJECT_BONUS * weight[sentence.subject]
            hit = sentence.source.hit
            if sentence.source.kind == KIND_SEARCH:
                score += 0.5 * max(0.0, hit.score) / best_retrieval
            if sentence.source.kind == KIND_SELECTED:
                score += 0.5
            score += self._proximity(sentence, request)
            scored.append(_Pick(sentence, score))
        if not scored:
            return []
        scored.sort(key=lambda pick: (-pick.score, pick.sentence.seconds))
        floor = 0.5 * scored[0].score
        count = max(1, request.persona.sentences)
        return [pick for pick in scored if pick.score >= floor][:count]

    @staticmethod
    def _proximity(sentence: _Sentence, request: OfflineRequest) -> float:
        if request.position_seconds is None or sentence.source.hit.video_id != request.video_id:
            return 0.0
        distance = abs(sentence.seconds - request.position_seconds)
        return 0.6 * math.exp(-distance / PROXIMITY_SCALE_SECONDS)

    @staticmethod
    def _near_playhead(sentences: list[_Sentence], request: OfflineRequest) -> list[_Pick]:
        position = request.position_seconds or 0.0
        local = [
            s
            for s in sentences
            if s.source.hit.video_id == request.video_id and s.source.kind in (KIND_PLAYHEAD, KIND_SELECTED)
        ]
        before = [s for s in local if s.seconds <= position + 5.0]
        ordered = sorted(before or local, key=lambda s: abs(position - s.seconds))
        count = max(2, request.persona.sentences)
        return [_Pick(sentence, 1.0) for sentence in ordered[:count]]

    # --- wording -------------------------------------------------------------------------------------------

    def _grounded_answer(self, question: _Question, picks: list[_Pick], request: OfflineRequest) -> str:
        by_source: dict[str, list[_Sentence]] = {}
        order: list[Source] = []
        for pick in sorted(picks, key=lambda p: (p.sentence.source.hit.video_id, p.sentence.seconds)):
            source = pick.sentence.source
            if source.label not in by_source:
                by_source[source.label] = []
                order.append(source)
            by_source[source.label].append(pick.sentence)
        parts: list[str] = []
        for index, source in enumerate(order):
            hit = source.hit
            where = f"{format_clock(hit.start_seconds)}–{format_clock(hit.end_seconds)}"
            if hit.video_id != request.video_id:
                where = f"{where} of “{hit.video_id}”"
            quote = shorten(" ".join(s.text for s in by_source[source.label]), 400)
            lead = "The lecture covers this at" if index == 0 else "It comes back to it at"
            parts.append(f"{lead} {where} [{source.label}]: “{quote}”")
        first = order[0].hit
        replay = f"{format_clock(first.start_seconds)}–{format_clock(first.end_seconds)}"
        parts.append(f"Next step: {self._next_step(question, picks, replay)}")
        return " ".join(parts)

    @staticmethod
    def _next_step(question: _Question, picks: list[_Pick], replay: str) -> str:
        """Try the code term the answer is about, if the question names one; otherwise restate the idea."""
        top = picks[0].sentence
        code_words = [word for term, word in question.surface.items() if term in top.terms and _CODE_HINT.search(word)]
        if code_words:
            word = max(code_words, key=lambda w: question.weights.get(stem(w.lower()), 0.0))
            return (
                f"replay {replay}, then try `{word}` in a small example of your own "
                "and check that it behaves as described."
            )
        return f"replay {replay}, then put the idea in your own words and check it against the lecture."

    @staticmethod
    def _no_answer(request: OfflineRequest) -> str:
        asked = shorten(request.question, 120)
        if not request.sources:
            return (
                f"I have no transcript to answer “{asked}” from yet, so I can't tell you what the lecture says. "
                "Next step: check that this video's transcript has been added, then ask again."
            )
        where = ""
        if request.position_seconds is not None and request.video_id:
            where = f" near {format_clock(request.position_seconds)}"
        return (
            f"I couldn't find anything about “{asked}” in the parts of the lecture I can see{where}. "
            "Next step: ask again using the words the lecture uses, or select the part of the transcript "
            "you mean and ask about it."
        )
