"""Read side of the transcripts' sentence analysis (server.nlp, stored at ingest): the sentences of time
ranges, each with its similarity to a query vector computed in PostgreSQL, and a course's key phrases.

Nothing here parses or embeds transcript text: what the request path knows about the lecture's sentences
was computed once, when the transcript was ingested (or by the backfill job for older transcripts).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from server.core.db import Database
from server.nlp.addressed import addressed_to_model
from server.nlp.analysis import Mention
from server.nlp.questions import Frame
from server.nlp.sentence import StoredSentence
from server.transcripts.repository import sentences as repo

PHRASE_CACHE_SECONDS = 60.0
MAX_CACHED_COURSES = 64


@dataclass(frozen=True, slots=True)
class CoursePhrase:
    """A key phrase across a course's videos."""

    key: str
    surface: str
    kind: str
    mentions: int
    # (video id, sentence index) of every sentence that says it.
    sentences: tuple[tuple[str, int], ...]

    @property
    def videos(self) -> frozenset[str]:
        return frozenset(video for video, _ in self.sentences)


@dataclass(frozen=True)
class CoursePhrases:
    """The key phrases of a course with their unit vectors (one row of `vectors` per phrase, same order)."""

    course_id: str
    phrases: tuple[CoursePhrase, ...]
    vectors: npt.NDArray[np.float32]
    sentence_count: int

    def index_of(self, key: str) -> int | None:
        for position, phrase in enumerate(self.phrases):
            if phrase.key == key:
                return position
        return None

    def get(self, key: str) -> CoursePhrase | None:
        position = self.index_of(key)
        return self.phrases[position] if position is not None else None

    def idf(self, phrase: CoursePhrase) -> float:
        return math.log((self.sentence_count + 1) / (len(phrase.sentences) + 0.5))

    def similarity(self, key: str) -> npt.NDArray[np.float32]:
        """Cosine similarity of the phrase `key` with every phrase of the course (zeros if it has no vector)."""
        position = self.index_of(key)
        if position is None or not len(self.vectors):
            return np.zeros(len(self.phrases), dtype=np.float32)
        result: npt.NDArray[np.float32] = self.vectors @ self.vectors[position]
        return result


def _sentence(row: Any) -> StoredSentence:
    similarity = getattr(row, "similarity", None)
    return StoredSentence(
        video_id=row.video_id,
        index=row.sentence_index,
        start_seconds=row.start_seconds,
        end_seconds=row.end_seconds,
        text=row.text,
        lemmas=tuple(row.lemmas),
        kinds=frozenset(row.kinds),
        mentions=tuple(Mention(str(key), int(start), int(end)) for key, start, end in row.mentions),
        frames=tuple(Frame.from_json(frame) for frame in row.frames),
        complete=row.complete,
        similarity=float(similarity) if similarity is not None else None,
    )


def _material(rows: Sequence[Any]) -> list[StoredSentence]:
    """The rows' sentences the tutor may write from: not those addressed to a model (server.nlp.addressed)."""
    return [_sentence(row) for row in rows if not addressed_to_model(row.text, row.lemmas)]


def _parse_vector(literal: str) -> list[float]:
    return [float(value) for value in literal.strip("[]").split(",")] if literal else []


class SentenceStore:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._phrases: OrderedDict[str, tuple[float, tuple[tuple[str, str], ...], CoursePhrases]] = OrderedDict()
        self._vocabularies: OrderedDict[str, tuple[float, tuple[tuple[str, str], ...], frozenset[str]]] = OrderedDict()

    async def in_ranges(
        self,
        ranges: Sequence[tuple[str, float, float]],
        *,
        query_vector: str | None = None,
        model_id: str = "",
    ) -> list[StoredSentence]:
        """The sentences overlapping any of the (video, start, end) ranges, once each, in playback order;
        with `query_vector` (a vector literal of `model_id`), each with its similarity to it."""
        if not ranges:
            return []
        async with self._db.session() as session:
            rows = await repo.in_ranges(session, ranges, query_vector=query_vector, model_id=model_id)
        return sorted(_material(rows), key=lambda s: (s.video_id, s.start_seconds, s.index))

    async def vocabulary(self, course_id: str) -> frozenset[str]:
        """Every content key the course's sentences say (kept like the phrases: a minute, or until the
        course changes)."""
        shape = await self.versions(course_id)
        cached = self._vocabularies.get(course_id)
        if cached is not None and cached[1] == shape and cached[0] > time.monotonic():
            return cached[2]
        async with self._db.session() as session:
            words = await repo.vocabulary(session, course_id)
        self._vocabularies[course_id] = (time.monotonic() + PHRASE_CACHE_SECONDS, shape, words)
        while len(self._vocabularies) > MAX_CACHED_COURSES:
            self._vocabularies.popitem(last=False)
        return words

    async def versions(self, course_id: str) -> tuple[tuple[str, str], ...]:
        """What changes when a course's transcripts or their analyses change."""
        async with self._db.session() as session:
            return await repo.versions(session, course_id)

    async def nearest(
        self,
        query_vector: str,
        model_id: str,
        *,
        video_id: str | None = None,
        course_id: str | None = None,
        limit: int = 8,
    ) -> list[StoredSentence]:
        """The sentences of a video (or of a course) closest in meaning to the query vector, closest first: an
        exact scan of that video's or course's sentences."""
        if not (video_id or course_id):
            return []
        async with self._db.session() as session:
            rows = await repo.nearest(
                session, query_vector, model_id, video_id=video_id, course_id=course_id, limit=limit
            )
        return _material(rows)

    async def key_phrases(self, video_id: str, start: float, end: float, *, limit: int = 3) -> list[str]:
        """How the lecture writes the key phrases said between `start` and `end`, most telling first: said
        there most, rare in the rest of the video, multi-word and code terms preferred."""
        async with self._db.session() as session:
            rows = await repo.phrases_said(session, video_id, start, end)

        def telling(row: Any) -> float:
            boost = (1.6 if row.kind == "code" else 1.0) * 1.5 ** (len(row.key.split()) - 1)
            return (1.0 + math.log(row.here)) * math.log((row.total + 1) / (row.spread + 0.5)) * boost

        return [row.surface for row in sorted(rows, key=lambda row: (-telling(row), row.key))[:limit]]

    async def analysed(self, video_ids: Sequence[str]) -> set[str]:
        """Which of the videos have their sentences stored (older transcripts wait for the backfill job)."""
        if not video_ids:
            return set()
        async with self._db.session() as session:
            return await repo.analysed(session, video_ids)

    async def course_phrases(self, course_id: str, model_id: str) -> CoursePhrases:
        """The course's key phrases, merged over its videos, with their vectors of `model_id` (kept for a
        minute, reloaded at once when the course's videos or their analyses change)."""
        shape = (*await self.versions(course_id), ("", model_id))
        cached = self._phrases.get(course_id)
        if cached is not None and cached[1] == shape and cached[0] > time.monotonic():
            self._phrases.move_to_end(course_id)
            return cached[2]
        async with self._db.session() as session:
            rows = await repo.course_phrases(session, course_id, model_id)
            sentence_count = await repo.sentence_count(session, course_id)
        phrases = _merge_phrases(rows)
        raw = np.array([vector for _, vector in phrases], dtype=np.float32)
        raw = raw.reshape(len(phrases), -1) if len(phrases) else np.zeros((0, 1), dtype=np.float32)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        vectors = (raw / np.where(norms == 0, 1.0, norms)).astype(np.float32)
        loaded = CoursePhrases(course_id, tuple(phrase for phrase, _ in phrases), vectors, sentence_count)
        self._phrases[course_id] = (time.monotonic() + PHRASE_CACHE_SECONDS, shape, loaded)
        self._phrases.move_to_end(course_id)
        while len(self._phrases) > MAX_CACHED_COURSES:
            self._phrases.popitem(last=False)
        return loaded


def _merge_phrases(rows: Sequence[Any]) -> list[tuple[CoursePhrase, list[float]]]:
    """One phrase per key: mentions and sentences summed over videos, the surface and vector of the video
    that says it most."""
    merged: list[tuple[CoursePhrase, list[float]]] = []
    by_key: dict[str, list[Any]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    for key, group in by_key.items():
        main = max(group, key=lambda row: (row.mentions, row.video_id))
        sentences = tuple((row.video_id, int(index)) for row in group for index in row.sentences)
        phrase = CoursePhrase(
            key=key,
            surface=main.surface,
            kind="code" if any(row.kind == "code" for row in group) else main.kind,
            mentions=sum(row.mentions for row in group),
            sentences=sentences,
        )
        merged.append((phrase, _parse_vector(main.vector)))
    return merged
