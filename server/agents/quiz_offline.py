"""The offline quiz generator (the default without a model): questions whose answers are concepts of the
course, with distractors a teacher would choose.

Answers are key phrases of the course index (noun phrases, code terms and names found by spaCy at ingest),
never a verb fragment. Two kinds of question, both built from the sentences' stored analysis:

    definition  from a sentence that says what something is or does ("A Promise is an object that …",
                "justify-content distributes space along the main axis"):
                "Which term does the lecture use for an object that represents a value that is not available
                yet?" / "According to the lecture, which of these distributes space along the main axis?"
    cloze       a complete sentence of the lecture with one key phrase blanked:
                "Complete the sentence from the lecture: “… the _____ runs perpendicular to it.”"

Distractors are key phrases of the same course and kind (code term, term, name) whose vectors (stored at
ingest) lie in a plausible band of similarity to the answer — related, but not a synonym — that do not
overlap the answer, are not in the stem, and would not make another true sentence of the lecture. Difficulty
moves the band: easy questions get less similar distractors, hard ones closer ones, from the same video. A
course too small for three of the same kind lends phrases of another kind rather than asking nothing.

Questions are spread over the stretch (one per equal part of it, in order); questions already asked by a
quiz on an overlapping stretch of the video are avoided while others remain; no two questions of a quiz share
an answer or a sentence. Each question then passes the same checks as a model's (`quiz_rules`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from server.agents.base import clock_range
from server.agents.corpus import CourseCorpus, CourseIndex, Term
from server.agents.leaks import BLANK, contains_answer
from server.agents.quiz_rules import QuizItemDraft, check_item
from server.core.values import SearchHit
from server.llm.grounding import Source
from server.nlp.analysis import SUMMARY
from server.nlp.questions import WHAT_DOES, WHAT_IS
from server.nlp.sentence import StoredSentence

OFFLINE_QUIZ_VERSION = "concepts-v2"
MIN_SENTENCE_WORDS = 7
MAX_SENTENCE_WORDS = 45
# Cosine similarity of a distractor's vector to the answer's: related, not a synonym.
BANDS = {"easy": (0.15, 0.6), "medium": (0.25, 0.75), "hard": (0.35, 0.85)}
WIDEST_BAND = (0.05, 0.88)
OTHER_KIND_BAND = (0.15, 0.8)
# Last resort (a course of a few phrases, or an embedding model that relates none of them): any phrase that is
# not a synonym. A quiz with weak distractors beats no quiz; the eval's distractor check counts them.
ANY_BAND = (-1.0, 0.8)
# Two sentences sharing this share of their content words say the same thing.
SAME_STATEMENT = 0.6
_ARTICLE = re.compile(r"\b(an?)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _Candidate:
    sentence: StoredSentence
    chunk: SearchHit
    term: Term
    start: int  # where the answer is written in the sentence (definition questions: its subject)
    end: int
    kind: str  # "definition" or "cloze"
    stem: str
    score: float


def _sentences(chunks: Sequence[SearchHit], index: CourseIndex) -> list[tuple[StoredSentence, SearchHit]]:
    """Every usable sentence of the chunks once, in playback order, with the chunk that holds it."""
    seen: set[tuple[str, int]] = set()
    found: list[tuple[StoredSentence, SearchHit]] = []
    for chunk in sorted(chunks, key=lambda c: c.start_seconds):
        said = " ".join(chunk.text.split())
        for sentence in index.sentences_of(chunk.chunk_id):
            words = len(sentence.text.split())
            if sentence.key in seen or not sentence.complete or not MIN_SENTENCE_WORDS <= words <= MAX_SENTENCE_WORDS:
                continue
            # A recap names everything in passing; the sentence that explains a thing is the one to ask about.
            if SUMMARY in sentence.kinds:
                continue
            # The cited excerpt must show the whole sentence (one cut by a chunk boundary waits for its
            # neighbour, which repeats it).
            if " ".join(sentence.text.split()) not in said:
                continue
            seen.add(sentence.key)
            found.append((sentence, chunk))
    return found


def _definition(sentence: StoredSentence, chunk: SearchHit, index: CourseIndex) -> _Candidate | None:
    """A question whose answer is the sentence's subject, asked from what the sentence says of it."""
    for frame in sentence.frames:
        if frame.kind not in (WHAT_IS, WHAT_DOES) or not frame.subject:
            continue
        start = sentence.text.find(frame.subject)
        inside = [m for m in sentence.mentions if start <= m.start and m.end <= start + len(frame.subject)]
        # A subject that names a relation ("The second argument to useEffect") is not a term for what the
        # sentence says: only a subject whose phrases all overlap its first one is asked about.
        first = min((m.start for m in inside), default=0)
        first_end = max((m.end for m in inside if m.start == first), default=0)
        if any(m.start >= first_end for m in inside):
            continue
        # "The flex-direction property sets …" is about flex-direction: a code term in the subject is the answer.
        code = [m for m in inside if (term := index.term(m.key)) is not None and term.kind == "code"]
        mention = min(code, key=lambda m: m.end - m.start) if code else (inside[0] if inside else None)
        if start < 0 or mention is None:
            continue
        term = index.term(mention.key)
        if term is None:
            continue
        said = frame.answer.rstrip(".")
        if frame.kind == WHAT_IS:
            stem = f"Which term does the lecture use for {said[:1].lower()}{said[1:]}?"
        else:
            stem = f"According to the lecture, which of these {said}?"
        return _Candidate(sentence, chunk, term, mention.start, mention.end, "definition", stem, 0.0)
    return None


def _clozes(sentence: StoredSentence, chunk: SearchHit, index: CourseIndex) -> list[_Candidate]:
    found: list[_Candidate] = []
    for mention in sentence.mentions:
        term = index.term(mention.key)
        if term is None:
            continue
        before = sentence.text[: mention.start]
        # "a _____" / "an _____" would tell which option fits: such a blank is not asked.
        if _ARTICLE.search(before) or sentence.text.count(sentence.text[mention.start : mention.end]) != 1:
            continue
        blanked = f"{before}{BLANK}{sentence.text[mention.end :]}"
        stem = f"Complete the sentence from the lecture: “{blanked}”"
        found.append(_Candidate(sentence, chunk, term, mention.start, mention.end, "cloze", stem, 0.0))
    return found


def _score(candidate: _Candidate, index: CourseIndex, rng: random.Random) -> float:
    term = candidate.term
    telling = index.idf(term) * index.boost(term)
    kind_bonus = 1.0 if candidate.kind == "definition" else 0.0
    return telling + kind_bonus + rng.random() * 0.8


def _same_statement(a: StoredSentence, b: StoredSentence) -> bool:
    mine = set(a.lemmas)
    return bool(mine) and len(mine & set(b.lemmas)) / len(mine) >= SAME_STATEMENT


def _distractors(
    candidate: _Candidate, corpus: CourseCorpus, video_id: str, difficulty: str, rng: random.Random
) -> list[str]:
    index = corpus.index
    phrases = index.phrases
    answer = candidate.term
    similarity = phrases.similarity(answer.key)
    said = [sentence for chunk in corpus.chunks.values() for sentence in index.sentences_of(chunk.chunk_id)]
    answer_text = candidate.sentence.text[candidate.start : candidate.end]
    # The band for the difficulty, then the widest band, then (a small course) phrases of any kind.
    tiers = ((BANDS[difficulty], True), (WIDEST_BAND, True), (OTHER_KIND_BAND, False), (ANY_BAND, False))
    for (low, high), same_kind in tiers:
        scored: list[tuple[float, str]] = []
        for position, phrase in enumerate(phrases.phrases):
            term = index.term(phrase.key)
            value = float(similarity[position]) if len(similarity) else 0.0
            if term is None or term.key == answer.key or not low <= value <= high:
                continue
            if same_kind and term.kind != answer.kind:
                continue
            if term.overlaps(answer) or len(term.words) > 4:
                continue
            surface = term.surface
            if contains_answer(candidate.stem, surface) or contains_answer(surface, answer_text):
                continue
            if contains_answer(answer_text, surface):
                continue
            # Not true in the stem: no sentence of the lecture says this with the distractor instead.
            if any(
                phrase.key in {m.key for m in other.mentions} and _same_statement(candidate.sentence, other)
                for other in said
            ):
                continue
            in_video = video_id in phrase.videos
            closeness = value if difficulty != "easy" else 1.0 - value
            nearby = 0.3 if (in_video and difficulty != "easy") or (not in_video and difficulty == "easy") else 0.0
            shape = 0.2 if len(term.words) == len(answer.words) else 0.0
            scored.append((closeness + nearby + shape + rng.random() * 0.1, surface))
        scored.sort(key=lambda pair: -pair[0])
        chosen: list[str] = []
        for _, surface in scored:
            if any(contains_answer(surface, other) or contains_answer(other, surface) for other in chosen):
                continue
            chosen.append(surface)
            if len(chosen) == 3:
                return chosen
    return []


def _display(candidate: _Candidate) -> str:
    written = candidate.sentence.text[candidate.start : candidate.end]
    if candidate.start == 0 and candidate.term.surface[:1].islower():
        return written[:1].lower() + written[1:]
    return written


def offline_quiz(
    chunks: Sequence[SearchHit],
    corpus: CourseCorpus,
    *,
    video_id: str,
    difficulty: str,
    count: int,
    seed: str,
    asked_before: frozenset[str] = frozenset(),
) -> list[QuizItemDraft]:
    """`asked_before`: stems of quizzes already made on overlapping stretches of the video; other questions are
    preferred to them (they are asked again only when the stretch has nothing else to ask)."""
    rng = random.Random(seed)
    index = corpus.index
    sentences = _sentences(chunks, index)
    if not sentences:
        return []
    candidates: list[_Candidate] = []
    for sentence, chunk in sentences:
        definition = _definition(sentence, chunk, index)
        for candidate in ([definition] if definition else []) + _clozes(sentence, chunk, index):
            candidates.append(replace(candidate, score=_score(candidate, index, rng)))
    start = min(sentence.start_seconds for sentence, _ in sentences)
    span = max(1e-6, max(sentence.end_seconds for sentence, _ in sentences) - start)

    def part(candidate: _Candidate) -> int:
        return min(count - 1, int((candidate.sentence.start_seconds - start) / span * count))

    items: list[QuizItemDraft] = []
    used_terms: list[Term] = []
    used_sentences: set[tuple[str, int]] = set()

    def take(pool: Sequence[_Candidate]) -> bool:
        for candidate in sorted(pool, key=lambda c: -c.score):
            if candidate.sentence.key in used_sentences or any(candidate.term.overlaps(t) for t in used_terms):
                continue
            item = _question(candidate, corpus, video_id, difficulty, rng)
            if item is not None:
                items.append(item)
                used_terms.append(candidate.term)
                used_sentences.add(candidate.sentence.key)
                return True
        return False

    fresh = [candidate for candidate in candidates if candidate.stem not in asked_before]
    # One question per equal part of the stretch; parts without a usable one are made up from the rest.
    for number in range(count):
        take([candidate for candidate in fresh if part(candidate) == number])
    while len(items) < count and (take(fresh) or take(candidates)):
        pass
    return sorted(items, key=lambda item: item.chunk.start_seconds)


def _question(
    candidate: _Candidate, corpus: CourseCorpus, video_id: str, difficulty: str, rng: random.Random
) -> QuizItemDraft | None:
    answer = _display(candidate)
    if contains_answer(candidate.stem, answer) or contains_answer(candidate.stem, candidate.term.surface):
        return None
    distractors = _distractors(candidate, corpus, video_id, difficulty, rng)
    if len(distractors) < 3:
        return None
    options = [answer, *distractors]
    rng.shuffle(options)
    chunk = candidate.chunk
    where = clock_range(candidate.sentence.start_seconds, candidate.sentence.end_seconds)
    draft = {
        "stem": candidate.stem,
        "options": options,
        "correct_index": options.index(answer),
        "explanation": f"At {where} the lecture says: “{candidate.sentence.text}”",
        "source": "c1",
        "concepts": [candidate.term.surface],
    }
    checked = check_item(draft, {"c1": Source("c1", chunk)}, corpus.index)
    return None if isinstance(checked, str) else checked
