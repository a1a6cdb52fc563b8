"""A course's transcript chunks, its analysed sentences and key phrases (server.nlp, stored at ingest),
loaded through the read side and kept briefly.

Distractors come from the whole course and how rare a phrase is is measured against it, so the agents need
every chunk and sentence of the course. Loading is a handful of reads — nothing is parsed or embedded; the
result is kept for `ttl_seconds` per course and reloaded at once when the course's videos or chunk counts
change (a new or re-ingested video).

`CourseIndex` answers what the agents ask of the course's vocabulary: the key phrases a set of chunks says
(ranked), which chunks say a phrase, the known phrases a student's text names.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from server.core.values import SearchHit, VideoInfo
from server.nlp import pipeline
from server.nlp.sentence import StoredSentence
from server.transcripts.search import TranscriptSearch
from server.transcripts.sentences import CoursePhrase, CoursePhrases, SentenceStore

DEFAULT_TTL_SECONDS = 60.0
MAX_COURSES = 64
WHOLE_VIDEO_END = 1e9  # seconds: past the end of any video
# What a lecture defines is more often a multi-word term or a code term than a single common word.
PHRASE_BOOST = 1.5
CODE_BOOST = 1.6
# A plain word said this many times per video it appears in counts fully.
CONCENTRATION = 3


@dataclass(frozen=True, slots=True)
class Term:
    """A key phrase of the course: `key` its lemmas (code terms as written, lower-cased), `surface` how the
    lecture writes it, `kind` code, term or name."""

    key: str
    surface: str
    kind: str
    count: int
    doc_freq: int

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.key.split())

    def overlaps(self, other: Term) -> bool:
        shorter, longer = sorted((self.words, other.words), key=len)
        size = len(shorter)
        return any(longer[i : i + size] == shorter for i in range(len(longer) - size + 1))


def _holds(hit: SearchHit, sentence: StoredSentence) -> bool:
    middle = (sentence.start_seconds + sentence.end_seconds) / 2
    return hit.video_id == sentence.video_id and hit.start_seconds <= middle <= hit.end_seconds


class CourseIndex:
    """The course's key phrases over its chunks (see the module docstring)."""

    def __init__(
        self, chunks: Iterable[SearchHit], sentences: Sequence[StoredSentence], phrases: CoursePhrases
    ) -> None:
        self.phrases = phrases
        self._terms = {
            phrase.key: Term(phrase.key, phrase.surface, phrase.kind, phrase.mentions, len(phrase.sentences))
            for phrase in phrases.phrases
        }
        self._sentences_of: dict[str, list[StoredSentence]] = {}
        by_video: dict[str, list[StoredSentence]] = {}
        for sentence in sentences:
            by_video.setdefault(sentence.video_id, []).append(sentence)
        for hit in chunks:
            self._sentences_of[hit.chunk_id] = [s for s in by_video.get(hit.video_id, ()) if _holds(hit, s)]
        self._chunks_with: dict[str, set[str]] = {}
        for chunk_id, held in self._sentences_of.items():
            for sentence in held:
                for mention in sentence.mentions:
                    self._chunks_with.setdefault(mention.key, set()).add(chunk_id)

    @property
    def sentence_count(self) -> int:
        return self.phrases.sentence_count

    def term(self, key: str) -> Term | None:
        return self._terms.get(key)

    def sentences_of(self, chunk_id: str) -> list[StoredSentence]:
        return list(self._sentences_of.get(chunk_id, ()))

    def docs_with(self, key: str) -> set[str]:
        """The chunks that say the phrase."""
        return set(self._chunks_with.get(key, ()))

    def says(self, chunk_id: str, key: str) -> bool:
        return chunk_id in self._chunks_with.get(key, ())

    def idf(self, term: Term) -> float:
        return math.log((self.sentence_count + 1) / (term.doc_freq + 0.5))

    def boost(self, term: Term) -> float:
        """Code terms and multi-word terms said more than once are what a lecture defines; a plain word said
        across the whole course (`things`, `lesson`) is not: it counts in proportion to how concentrated it
        is (its mentions per video it is said in, a third at most per video)."""
        if term.kind == "code":
            return CODE_BOOST
        if len(term.words) > 1:
            return PHRASE_BOOST ** (len(term.words) - 1) if term.count > 1 else 1.0
        phrase = self.phrases.get(term.key)
        videos = len(phrase.videos) if phrase is not None else 1
        return min(1.0, term.count / (CONCENTRATION * max(1, videos)))

    def rank(self, chunk_ids: Iterable[str] | None = None, *, limit: int = 20) -> list[tuple[Term, float]]:
        """The best phrases said in the given chunks (all chunks when None), scored, none overlapping another."""
        wanted = set(self._sentences_of) if chunk_ids is None else set(chunk_ids) & set(self._sentences_of)
        counts: Counter[str] = Counter()
        seen: set[tuple[str, int]] = set()
        for chunk_id in wanted:
            for sentence in self._sentences_of[chunk_id]:
                if sentence.key in seen:
                    continue
                seen.add(sentence.key)
                for mention in sentence.mentions:
                    counts[mention.key] += 1
        scored: list[tuple[Term, float]] = []
        for key, count in counts.items():
            term = self._terms.get(key)
            if term is None:
                continue
            # Sublinear in the count: a phrase said twenty times is not ten times as central as one said twice.
            score = (1.0 + math.log(count)) * self.idf(term) * self.boost(term)
            if score > 0:
                scored.append((term, score))
        scored.sort(key=lambda pair: (-pair[1], pair[0].surface))
        picked: list[tuple[Term, float]] = []
        for term, score in scored:
            if any(term.overlaps(other) for other, _ in picked):
                continue
            picked.append((term, score))
            if len(picked) >= limit:
                break
        return picked

    def terms_in_text(self, text: str, *, limit: int = 10) -> list[Term]:
        """Known phrases a student's (or a model's) text names, rarest first, none overlapping another."""
        keys = pipeline.content_keys(text)
        found: dict[str, Term] = {}
        for size in range(4, 0, -1):
            for start in range(len(keys) - size + 1):
                term = self._terms.get(" ".join(keys[start : start + size]))
                if term is not None:
                    found.setdefault(term.key, term)
        ordered = sorted(found.values(), key=lambda term: -self.idf(term) * self.boost(term))
        picked: list[Term] = []
        for term in ordered:
            if not any(term.overlaps(other) for other in picked):
                picked.append(term)
            if len(picked) >= limit:
                break
        return picked

    def phrase(self, key: str) -> CoursePhrase | None:
        return self.phrases.get(key)


@dataclass(frozen=True)
class CourseCorpus:
    course_id: str
    videos: tuple[VideoInfo, ...]  # in course order (first ingested first)
    chunks: dict[str, SearchHit]
    index: CourseIndex

    def video(self, video_id: str) -> VideoInfo | None:
        return next((video for video in self.videos if video.video_id == video_id), None)

    def video_position(self, video_id: str) -> int:
        """0-based position of the video in the course, or len(videos) when unknown."""
        for position, video in enumerate(self.videos):
            if video.video_id == video_id:
                return position
        return len(self.videos)

    def chunks_of(self, video_id: str) -> list[SearchHit]:
        return sorted((c for c in self.chunks.values() if c.video_id == video_id), key=lambda c: c.start_seconds)


class CorpusCache:
    def __init__(
        self, search: TranscriptSearch, sentences: SentenceStore, ttl_seconds: float = DEFAULT_TTL_SECONDS
    ) -> None:
        self._search = search
        self._sentences = sentences
        self._ttl = ttl_seconds
        self._entries: OrderedDict[str, tuple[float, tuple[tuple[str, str], ...], CourseCorpus]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def load(self, course_id: str) -> CourseCorpus:
        videos = tuple(await self._search.course_videos(course_id))
        # A re-ingest can keep a video's chunk count while replacing every chunk id: the versions change.
        shape = await self._sentences.versions(course_id)
        lock = self._locks.setdefault(course_id, asyncio.Lock())
        async with lock:
            cached = self._entries.get(course_id)
            if cached is not None and cached[1] == shape and cached[0] > time.monotonic():
                self._entries.move_to_end(course_id)
                return cached[2]
            chunks: dict[str, SearchHit] = {}
            for video in videos:
                for hit in await self._search.chunks_in_range(video.video_id, 0.0, WHOLE_VIDEO_END):
                    chunks[hit.chunk_id] = hit
            sentences = await self._sentences.in_ranges([(video.video_id, 0.0, WHOLE_VIDEO_END) for video in videos])
            phrases = await self._sentences.course_phrases(course_id, self._search.embedding_model)
            index = CourseIndex(chunks.values(), sentences, phrases)
            corpus = CourseCorpus(course_id=course_id, videos=videos, chunks=chunks, index=index)
            self._entries[course_id] = (time.monotonic() + self._ttl, shape, corpus)
            self._entries.move_to_end(course_id)
            while len(self._entries) > MAX_COURSES:
                evicted, _ = self._entries.popitem(last=False)
                self._locks.pop(evicted, None)
            return corpus
