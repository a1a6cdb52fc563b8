"""The offline engine (`offline-extractive`): grounded answers without a language model.

It answers from the lecture's own sentences — those of the excerpts the turn retrieved, of the playhead
window and of the sentences closest in meaning to the question, analysed at ingest (server.nlp) — in three
parts: the direct answer (one to three sentences quoted verbatim, in lecture order, neighbours merged),
where it is said (mm:ss with the excerpt's `[cN]` id, so the same citation parser as for a model applies),
and one question to check understanding, generated from the answer sentence's parse.

A sentence's `support` is how well it answers the question: the cosine similarity of the question's
embedding (the one retrieval computed) with the sentence's stored embedding, plus the question's content
lemmas found in it (weighted by their rarity among the candidates) and a bonus when it says a code term the
question names (`justify-content`). Ranking adds a little for a range the student selected and for the kind
of statement the question wants ("why" → causal, "how" → procedural, "what is" → definition), and takes some
off a recap, which names everything briefly where other sentences explain it.

Whether the lecture answers the question at all is a probability from a logistic model of the best support
and of the share of the question's terms that the course never says, fitted on the demo course's labelled
answerable and unanswerable questions (`calibration.py`, reading `calibration.json` as
`python -m evals.calibrate` writes it; never on the held-out course). Below one half the engine says the
lecture doesn't seem to cover the question; up to the calibrated `confident` probability it says so too but
points to the closest passage; above it, it answers.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field, replace

from server.llm.calibration import CALIBRATION
from server.llm.grounding import KIND_PLAYHEAD, KIND_SELECTED, Source, format_clock, shorten
from server.llm.persona import Persona, persona_for
from server.llm.provider import Completion, StreamEvent, TextDelta
from server.nlp.analysis import CAUSAL, DEFINITION, PROCEDURAL, SUMMARY
from server.nlp.query import DEFINE, HOW, WHY, QuestionAnalysis
from server.nlp.questions import WHAT_DOES, WHAT_IF, WHAT_IS, WHAT_OBJECT
from server.nlp.questions import WHY as WHY_FRAME
from server.nlp.sentence import StoredSentence

OFFLINE_MODEL = "offline-extractive"

# How much each signal counts (tuned on the demo course's labelled questions, never on the held-out course).
LEXICAL_WEIGHT = 0.25
CODE_BONUS = 0.4
SELECTED_BONUS = 0.15
KIND_BONUS = 0.08
# A recap sentence names everything briefly; where a thing is explained is the better answer.
SUMMARY_PENALTY = 0.3
# Further answer sentences must score at least this share of the best one.
COMPANION_SHARE = 0.9
# The sentence after the best one joins it at this share of its support.
CONTINUATION_SHARE = 0.7
# Sentences this close in a video (by index) are one passage and are quoted together.
ADJACENT = 1
MAX_ANSWER_SENTENCES = 3
PLAYHEAD_LOOKBACK_SECONDS = 5.0
_KIND_WANTED = {WHY: CAUSAL, HOW: PROCEDURAL, DEFINE: DEFINITION}
# Check questions about the answer, most telling first.
_CHECK_ORDER = (WHY_FRAME, WHAT_IF, WHAT_OBJECT, WHAT_IS, WHAT_DOES)
COVERED, HEDGED, NOT_COVERED, LATER = "covered", "hedged", "not_covered", "later"


# For an embedding model nobody calibrated, similarities are of unknown scale: the lecture must share the
# question's words, most of them (weighted by rarity), for an answer.
UNCALIBRATED_WORDS = 0.5 * LEXICAL_WEIGHT


@dataclass(frozen=True, slots=True)
class Evidence:
    """A sentence the engine may quote, the excerpt (`[cN]`) that cites it, and whether the student selected
    the range it is in."""

    sentence: StoredSentence
    source: Source
    selected: bool = False


@dataclass(frozen=True, slots=True)
class OfflineRequest:
    question: QuestionAnalysis
    evidence: Sequence[Evidence]
    sources: Sequence[Source]
    video_id: str = ""
    position_seconds: float | None = None
    persona: Persona = field(default_factory=lambda: persona_for("", ""))
    embedding_model: str = ""
    # Videos of the excerpts whose sentences are not analysed yet (stored before the analysis existed).
    unanalysed: frozenset[str] = frozenset()
    # What the question is about that the course never says (see `calibration.Calibration`).
    unknown_terms: tuple[str, ...] = ()
    # No spoilers: sentences later in the video than the student has watched (pointed to, never quoted).
    ahead: Sequence[Evidence] = ()


@dataclass(frozen=True, slots=True)
class Scored:
    """`support`: how well the sentence answers the question (meaning + words + named code terms); `words`:
    the same without meaning (for embedding models nobody calibrated); `score`: what ranks answers."""

    evidence: Evidence
    support: float
    words: float
    score: float

    @property
    def sentence(self) -> StoredSentence:
        return self.evidence.sentence


def answerability_features(scored: Sequence[Scored], request: OfflineRequest) -> tuple[float, float, int]:
    """(best support, share of the question's terms the course never says, names among those)."""
    support = max((item.support for item in scored), default=0.0)
    terms = len(request.question.terms)
    share = len(request.unknown_terms) / terms if terms else 0.0
    names = sum(1 for term in request.unknown_terms if term in request.question.names)
    return support, share, names


def _weights(keys: dict[str, float], evidence: Sequence[Evidence]) -> dict[str, float]:
    """Each question key weighted by its rarity among the candidate sentences (and by its own share)."""
    total = len(evidence)
    weights: dict[str, float] = {}
    for key, share in keys.items():
        frequency = sum(1 for item in evidence if key in item.sentence.lemmas)
        weights[key] = share * math.log(1.0 + (total + 1) / (1.0 + frequency))
    return weights


class OfflineEngine:
    """Deterministic extractive answers, streamed word by word like a model's."""

    name = "offline"
    model = OFFLINE_MODEL

    def answer(self, request: OfflineRequest) -> str:
        opener = f"{request.persona.opener} " if request.persona.opener else ""
        question = request.question
        if not question.english:
            return (
                "I can only answer questions written in English: the lecture's transcript is in English and I "
                "quote it. Could you ask again in English?"
            )
        if request.video_id and request.video_id in request.unanalysed:
            return self._not_analysed(request)
        verdict, picks = self.decide(request)
        if verdict == COVERED:
            return opener + self._grounded_answer(picks, request)
        if verdict == LATER:
            return self._later(picks, request)
        if verdict == HEDGED:
            return self._closest(picks, request)
        return self._no_answer(request)

    async def stream(self, request: OfflineRequest) -> AsyncGenerator[StreamEvent, None]:
        text = self.answer(request)
        for word in re.findall(r"\S+\s*", text):
            yield TextDelta(word)
            # Hand the loop back between words: other streams progress and a cancel lands here.
            await asyncio.sleep(0)
        yield Completion(finish_reason="stop", prompt_tokens=0, completion_tokens=0, model=self.model, text=text)

    # --- ranking -------------------------------------------------------------------------------------------

    @staticmethod
    def probability(scored: Sequence[Scored], request: OfflineRequest) -> float:
        """How likely the lecture answers the question (`calibration.Calibration`); 0 or 1 for an uncalibrated model."""
        calibration = CALIBRATION.get(request.embedding_model)
        if calibration is None:
            return 1.0 if max((item.words for item in scored), default=0.0) >= UNCALIBRATED_WORDS else 0.0
        return calibration.probability(*answerability_features(scored, request))

    @staticmethod
    def confident(request: OfflineRequest) -> float:
        calibration = CALIBRATION.get(request.embedding_model)
        return calibration.confident if calibration is not None else 0.5

    @staticmethod
    def keys_of(request: OfflineRequest) -> tuple[dict[str, float], list[str]]:
        """The question's keys (each counting once) and code terms. A follow-up's sentences were retrieved and
        scored by meaning together with the question it continues; its words are what it adds ("and what is
        the fix?"), so only they count as words."""
        return dict.fromkeys(request.question.keys, 1.0), list(request.question.code_terms)

    def score_all(self, request: OfflineRequest) -> list[Scored]:
        """Every candidate sentence with its support (meaning + words) and its ranking score."""
        evidence = [item for item in request.evidence if item.sentence.text.strip()]
        keys, code_terms = self.keys_of(request)
        if not evidence or not keys:
            return []
        weights = _weights(keys, evidence)
        total_weight = sum(weights.values()) or 1.0
        wanted_kind = _KIND_WANTED.get(request.question.wants)
        scored: list[Scored] = []
        for item in evidence:
            sentence = item.sentence
            lemmas = set(sentence.lemmas)
            lexical = sum(weight for key, weight in weights.items() if key in lemmas) / total_weight
            named = any(term in lemmas or term in sentence.text.lower() for term in code_terms)
            words = LEXICAL_WEIGHT * lexical + (CODE_BONUS if named else 0.0)
            support = (sentence.similarity or 0.0) + words
            score = support
            if item.selected:
                score += SELECTED_BONUS
            if wanted_kind is not None and wanted_kind in sentence.kinds:
                score += KIND_BONUS
            if SUMMARY in sentence.kinds:
                score -= SUMMARY_PENALTY
            scored.append(Scored(item, support, words, score))
        return scored

    def decide(self, request: OfflineRequest) -> tuple[str, list[Scored]]:
        """Whether the lecture answers the question (COVERED, HEDGED, NOT_COVERED) and the sentences to quote,
        best first."""
        if request.question.deictic and request.position_seconds is not None:
            picks = self._near_playhead(request)
            return (COVERED if picks else NOT_COVERED), picks
        scored = self.score_all(request)
        probability = self.probability(scored, request) if scored else 0.0
        ordered = sorted(scored, key=lambda item: -item.score)
        if probability < self.confident(request) and request.ahead:
            # No spoilers: the answer may be later in the video; say where, never what.
            later = self.score_all(replace(request, evidence=request.ahead, ahead=()))
            if later and self.probability(later, request) > probability and self.probability(later, request) >= 0.5:
                return LATER, sorted(later, key=lambda item: -item.score)[:1]
        if probability < 0.5:
            return NOT_COVERED, []
        if probability < self.confident(request):
            return HEDGED, ordered[:1]
        top = ordered[0]
        count = max(1, min(MAX_ANSWER_SENTENCES, request.persona.sentences))
        picks = [top]
        # The sentence right after the best one, when it goes on about the same thing ("Another useful directive
        # is stale-while-revalidate." is followed by what it does): an adjacent passage is quoted whole.
        following = self._neighbour(scored, top, 1)
        if following is not None and count > 1 and following.support >= CONTINUATION_SHARE * top.support:
            picks.append(following)
        for item in ordered[1:]:
            if len(picks) >= count:
                break
            if item not in picks and item.score >= COMPANION_SHARE * top.score:
                picks.append(item)
        # "This is why X." gives its reason in the sentence before: quote that one too.
        for pick in list(picks):
            if any(frame.answer_before for frame in pick.sentence.frames):
                before = self._neighbour(scored, pick, -1)
                if before is not None and before not in picks:
                    picks.append(before)
        return COVERED, picks

    @staticmethod
    def _neighbour(scored: Sequence[Scored], pick: Scored, step: int) -> Scored | None:
        wanted = (pick.sentence.video_id, pick.sentence.index + step)
        return next((item for item in scored if item.sentence.key == wanted), None)

    @staticmethod
    def _near_playhead(request: OfflineRequest) -> list[Scored]:
        """ "What does this mean?": what the lecture said just before the playhead."""
        position = request.position_seconds or 0.0
        local = [
            item
            for item in request.evidence
            if item.sentence.video_id == request.video_id and item.source.kind in (KIND_PLAYHEAD, KIND_SELECTED)
        ]
        before = [item for item in local if item.sentence.start_seconds <= position + PLAYHEAD_LOOKBACK_SECONDS]
        ordered = sorted(before or local, key=lambda item: abs(position - item.sentence.end_seconds))
        count = max(2, request.persona.sentences)
        return [Scored(item, 1.0, 1.0, 1.0) for item in ordered[:count]]

    # --- wording -------------------------------------------------------------------------------------------

    def _grounded_answer(self, picks: list[Scored], request: OfflineRequest) -> str:
        passages: list[list[Scored]] = []
        for pick in sorted(
            picks, key=lambda p: (p.sentence.video_id != request.video_id, p.sentence.video_id, p.sentence.index)
        ):
            last = passages[-1][-1] if passages else None
            if (
                last is not None
                and last.sentence.video_id == pick.sentence.video_id
                and pick.sentence.index - last.sentence.index <= ADJACENT
                and last.evidence.source.label == pick.evidence.source.label
            ):
                passages[-1].append(pick)
            else:
                passages.append([pick])
        parts: list[str] = []
        for number, passage in enumerate(passages):
            first, final = passage[0].sentence, passage[-1].sentence
            where = f"{format_clock(first.start_seconds)}–{format_clock(final.end_seconds)}"
            if first.video_id != request.video_id:
                where = f"{where} of “{first.video_id}”"
            quote = shorten(" ".join(p.sentence.text for p in passage), 600)
            lead = "The lecture answers this at" if number == 0 else "It adds at"
            parts.append(f"{lead} {where}: “{quote}” [{passage[0].evidence.source.label}]")
        check = self.check_question(picks, request)
        if check:
            parts.append(f"Check yourself: {check}")
        unanalysed = request.unanalysed & {p.sentence.video_id for p in picks}
        if unanalysed:
            parts.append("(Part of this course is still being analysed, so some moments may be missing.)")
        return " ".join(parts)

    @staticmethod
    def check_question(picks: Sequence[Scored], request: OfflineRequest) -> str:
        """A question about what the answer says, from its sentences' parses; never the student's own question."""
        asked = set(request.question.keys)
        best: tuple[int, str] | None = None
        for pick in picks:
            for frame in pick.sentence.frames:
                if frame.answer_before or frame.kind not in _CHECK_ORDER:
                    continue
                # Not the student's own question back: a check asks about something the question did not.
                if set(frame.keys) <= asked:
                    continue
                rank = _CHECK_ORDER.index(frame.kind)
                if best is None or rank < best[0]:
                    best = (rank, frame.question)
        return best[1] if best is not None else ""

    @staticmethod
    def _closest(picks: Sequence[Scored], request: OfflineRequest) -> str:
        """Weak evidence: say so, and show the one passage that comes closest."""
        asked = shorten(request.question.text, 120)
        sentence = picks[0].sentence
        where = f"{format_clock(sentence.start_seconds)}–{format_clock(sentence.end_seconds)}"
        if sentence.video_id != request.video_id:
            where = f"{where} of “{sentence.video_id}”"
        return (
            f"I'm not sure the lecture answers “{asked}” directly — it may not cover exactly this. The closest it "
            f"comes is at {where}: “{shorten(sentence.text, 400)}” [{picks[0].evidence.source.label}] If that is "
            "not what you meant, try asking with the words the lecture uses."
        )

    @staticmethod
    def _later(picks: Sequence[Scored], request: OfflineRequest) -> str:
        sentence = picks[0].sentence
        return (
            f"No spoilers: the lecture answers that later, at {format_clock(sentence.start_seconds)} "
            f"[{picks[0].evidence.source.label}] — keep watching and it will come up. If you want it now, turn "
            "off no spoilers or select that part of the transcript."
        )

    @staticmethod
    def _not_analysed(request: OfflineRequest) -> str:
        """This video was stored before its sentences were analysed (the backfill job has not reached it): no
        sentence can be quoted yet, so point to the excerpt of it that retrieval ranked first."""
        here = next((source for source in request.sources if source.hit.video_id == request.video_id), None)
        told = "This video's transcript is still being analysed, so I can't quote the lecture yet."
        if here is None:
            return f"{told} Try again in a minute."
        hit = here.hit
        where = f"{format_clock(hit.start_seconds)}–{format_clock(hit.end_seconds)}"
        return f"{told} The part that matches your question best is {where} [{here.label}]; try again in a minute."

    @staticmethod
    def _no_answer(request: OfflineRequest) -> str:
        asked = shorten(request.question.text, 120)
        if not request.sources:
            return (
                f"I have no transcript to answer “{asked}” from yet, so I can't tell you what the lecture says. "
                "Check that this video's transcript has been added, then ask again."
            )
        where = ""
        if request.position_seconds is not None and request.video_id:
            where = f" (I looked around {format_clock(request.position_seconds)} and across the course)"
        return (
            f"The lecture doesn't seem to cover “{asked}”: nothing it says answers that{where}. "
            "If you meant something the lecture does discuss, try asking with the words it uses, or select the "
            "part of the transcript you mean."
        )
