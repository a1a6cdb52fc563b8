"""The offline quiz generator (the default without a model): key-term cloze questions.

Each question is a sentence of the lecture with one of its key terms blanked out (see `terms.py` for what a
key term is). The correct option is the blanked term; the three distractors are other key terms of the same
course, preferably of the same kind (code-like, phrase, word) and length. Difficulty decides which terms are
asked and how confusable the distractors are:

    easy    the most prominent terms of the stretch; distractors from other videos of the course
    medium  prominent terms; distractors from anywhere in the course, the same video preferred
    hard    rarer terms, code-like and phrases first; distractors from the same video, sharing a prefix

A question is kept only if the blanked sentence no longer contains the answer (nor any inflection of it),
no distractor appears in the sentence, and it passes the same checks as a model's question (`quiz_rules`).
The choice of distractors and the option order are seeded by the cache key: the same request yields the
same quiz. Short stretches can yield fewer questions than asked for.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from server.agents.base import clock_range
from server.agents.corpus import CourseCorpus
from server.agents.quiz_rules import QuizItemDraft, check_item
from server.agents.terms import Term, TermIndex, contains_answer, normalize_text, occurrences
from server.llm.grounding import Source
from server.transcripts.parsing import split_sentences
from server.transcripts.search import SearchHit

OFFLINE_QUIZ_VERSION = "cloze-v1"
BLANK = "_____"
MIN_SENTENCE_WORDS = 7
MAX_SENTENCE_WORDS = 45
CANDIDATE_TERMS = 60
DISTRACTOR_POOL = 300
_COMPLETE = re.compile(r"[.!][\"')\]’”]*$")
_ARTICLE_BEFORE_BLANK = re.compile(r"\b([Aa])n? (?=" + re.escape(BLANK) + ")")


@dataclass(frozen=True, slots=True)
class _Sentence:
    text: str
    chunk: SearchHit


def _sentences(chunks: Sequence[SearchHit]) -> list[_Sentence]:
    """Every usable sentence of the chunks once (neighbouring chunks overlap), in playback order."""
    seen: set[str] = set()
    found: list[_Sentence] = []
    for chunk in sorted(chunks, key=lambda c: c.start_seconds):
        for sentence in split_sentences(" ".join(chunk.text.split())):
            key = normalize_text(sentence)
            words = len(sentence.split())
            # Questions make poor statements, and a chunk can end mid-sentence (the next one repeats it whole).
            complete = _COMPLETE.search(sentence) is not None
            if key in seen or not complete or not MIN_SENTENCE_WORDS <= words <= MAX_SENTENCE_WORDS:
                continue
            seen.add(key)
            found.append(_Sentence(sentence, chunk))
    return found


def _ordered_terms(ranked: list[tuple[Term, float]], difficulty: str, index: TermIndex) -> list[Term]:
    terms = [term for term, _ in ranked]
    if difficulty == "hard":
        return sorted(terms, key=lambda term: (term.kind == "word", -index.idf(term)))
    return terms


def _display(span_text: str, term: Term, sentence_start: bool) -> str:
    if span_text.lower() == term.surface.lower():
        return term.surface
    if sentence_start and not term.surface[:1].isupper():
        return span_text[:1].lower() + span_text[1:]
    return span_text


def _distractors(
    answer: Term,
    answer_text: str,
    sentence: str,
    pool: Sequence[Term],
    corpus: CourseCorpus,
    video_id: str,
    difficulty: str,
    rng: random.Random,
) -> list[str]:
    video_chunks = {chunk.chunk_id for chunk in corpus.chunks_of(video_id)}
    scored: list[tuple[float, str]] = []
    for rank, candidate in enumerate(pool):
        if not candidate.nounish or candidate.overlaps(answer):
            continue
        if contains_answer(sentence, candidate.surface):
            continue
        if contains_answer(candidate.surface, answer_text) or contains_answer(answer_text, candidate.surface):
            continue
        score = (2.0 if candidate.kind == answer.kind else 0.0) + (
            1.0 if len(candidate.key) == len(answer.key) else 0.0
        )
        in_video = bool(corpus.index.docs_with(candidate.key) & video_chunks)
        if difficulty == "easy":
            score += 0.0 if in_video else 2.0
        elif difficulty == "hard":
            score += 2.0 if in_video else 0.0
            if candidate.key[0][:4] == answer.key[0][:4]:
                score += 1.0
        else:
            score += 1.0 if in_video else 0.5
        salience = 1.5 * (1.0 - rank / max(1, len(pool)))
        scored.append((score + salience + rng.random() * 0.9, candidate.surface))
    scored.sort(key=lambda pair: -pair[0])
    chosen: list[str] = []
    taken = {normalize_text(answer_text)}
    for _, surface in scored:
        key = normalize_text(surface)
        if key in taken or any(contains_answer(surface, other) or contains_answer(other, surface) for other in chosen):
            continue
        taken.add(key)
        chosen.append(surface)
        if len(chosen) == 3:
            break
    return chosen


def offline_quiz(
    chunks: Sequence[SearchHit],
    corpus: CourseCorpus,
    *,
    video_id: str,
    difficulty: str,
    count: int,
    seed: str,
) -> list[QuizItemDraft]:
    rng = random.Random(seed)
    index = corpus.index
    sentences = _sentences(chunks)
    ranked = index.rank([chunk.chunk_id for chunk in chunks], limit=CANDIDATE_TERMS)
    if not ranked:
        ranked = [(term, 1.0) for term in index.terms_in_text(" ".join(c.text for c in chunks), limit=CANDIDATE_TERMS)]
    pool = [term for term, _ in index.rank(None, limit=DISTRACTOR_POOL)]
    items: list[QuizItemDraft] = []
    used_terms: list[Term] = []
    used_sentences: set[str] = set()
    for term in _ordered_terms(ranked, difficulty, index):
        if len(items) >= count:
            break
        if not term.nounish or any(term.overlaps(other) for other in used_terms):
            continue
        item = _question_for(term, sentences, used_sentences, pool, corpus, video_id, difficulty, rng)
        if item is not None:
            items.append(item)
            used_terms.append(term)
    return items


def _question_for(
    term: Term,
    sentences: Sequence[_Sentence],
    used_sentences: set[str],
    pool: Sequence[Term],
    corpus: CourseCorpus,
    video_id: str,
    difficulty: str,
    rng: random.Random,
) -> QuizItemDraft | None:
    for sentence in sentences:
        if sentence.text in used_sentences:
            continue
        spans = occurrences(sentence.text, term.key)
        if len(spans) != 1:
            continue
        start, end = spans[0]
        answer = _display(sentence.text[start:end], term, sentence_start=start == 0)
        blanked = _ARTICLE_BEFORE_BLANK.sub(r"\1(n) ", sentence.text[:start] + BLANK + sentence.text[end:])
        if contains_answer(blanked, answer) or contains_answer(blanked, term.surface):
            continue
        distractors = _distractors(term, answer, sentence.text, pool, corpus, video_id, difficulty, rng)
        if len(distractors) < 3:
            return None
        options = [answer, *distractors]
        rng.shuffle(options)
        chunk = sentence.chunk
        where = clock_range(chunk.start_seconds, chunk.end_seconds)
        draft = {
            "stem": f"Complete the sentence from the lecture: “{blanked}”",
            "options": options,
            "correct_index": options.index(answer),
            "explanation": f"At {where} the lecture says: “{sentence.text}”",
            "source": "c1",
            "concepts": [term.surface],
        }
        checked = check_item(draft, {"c1": Source("c1", chunk)}, corpus.index)
        if isinstance(checked, str):
            continue
        used_sentences.add(sentence.text)
        return checked
    return None
