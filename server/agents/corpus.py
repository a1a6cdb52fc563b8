"""A course's transcript chunks and their key-term statistics, loaded through retrieval and kept briefly.

Distractors come from the whole course and term rarity is measured against it, so the agents need every
chunk of the course. Loading is a handful of range reads; the result is kept for `ttl_seconds` per course
and reloaded at once when the course's videos or chunk counts change (a new or re-ingested video).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass

from server.agents.terms import TermIndex
from server.transcripts.search import SearchHit, TranscriptSearch, VideoInfo

DEFAULT_TTL_SECONDS = 60.0
MAX_COURSES = 64
WHOLE_VIDEO_END = 1e9  # seconds: past the end of any video


@dataclass(frozen=True)
class CourseCorpus:
    course_id: str
    videos: tuple[VideoInfo, ...]  # in course order (first ingested first)
    chunks: dict[str, SearchHit]
    index: TermIndex

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
    def __init__(self, search: TranscriptSearch, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self._search = search
        self._ttl = ttl_seconds
        self._entries: OrderedDict[str, tuple[float, tuple[tuple[str, int], ...], CourseCorpus]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def load(self, course_id: str) -> CourseCorpus:
        videos = tuple(await self._search.course_videos(course_id))
        shape = tuple((video.video_id, video.chunk_count) for video in videos)
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
            index = await asyncio.to_thread(TermIndex, {chunk_id: hit.text for chunk_id, hit in chunks.items()})
            corpus = CourseCorpus(course_id=course_id, videos=videos, chunks=chunks, index=index)
            self._entries[course_id] = (time.monotonic() + self._ttl, shape, corpus)
            self._entries.move_to_end(course_id)
            while len(self._entries) > MAX_COURSES:
                evicted, _ = self._entries.popitem(last=False)
                self._locks.pop(evicted, None)
            return corpus
