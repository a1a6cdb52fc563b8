"""Where a video confuses its students: confusion peaks relative to the video's own baseline, and how each
kind of intervention is received.

The video is cut into `analytics_bin_seconds` segments. Four signals are counted per segment over every
student: backward seeks landing in it (re-watching, Kim et al. L@S 2014), pauses in it (Li et al. 2015),
hints about it (hint interventions covering it and hints students asked for there) and wrong first answers
to quiz questions drawn from it. Each signal is divided by its own mean per segment, so a video whose
students pause a lot everywhere does not look confusing everywhere; a segment's score is the mean of these
ratios over the signals the video has at all (1 = baseline). Every segment is reported (the dashboard's
heatmap); segments scoring at least `analytics_peak_min_score` are peaks, and neighbouring peak segments merge
into one stretch. Ratings of the AI interactions about the video come with it, by agent and by star.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.analytics import repository as repo
from server.analytics.domain import AgentCount, ConfusionPeak, ConfusionSegment, InterventionStat, VideoAnalytics
from server.config import Settings
from server.core.auth import Principal, Role
from server.core.db import Database
from server.core.errors import InvalidArgument, NotFound, PermissionDenied
from server.core.names import require_id
from server.core.values import REWATCH_MIN_BACK_SECONDS, VideoInfo
from server.experiments.stats import compare_proportions
from server.transcripts.courses import not_taught, teaches
from server.transcripts.search import TranscriptSearch

DEFAULT_PEAKS = 5
MAX_PEAKS = 50
MAX_TRANSCRIPT_CHARS = 600
SIGNALS = ("rewatches", "pauses", "hints", "wrong_answers")
INTERVENTION_KINDS = ("hint", "quiz", "review", "break")


# How far from a question's stretch the playhead may be when the student asked, to count as asking about it.
HELP_SLACK_SECONDS = 30.0
HELP_OUTCOME_DESCRIPTION = (
    "Observational, not an experiment: first answers to this video's quiz questions given after the student asked "
    f"the tutor (chat or hint) within {HELP_SLACK_SECONDS:g} s of the question's stretch, against first answers "
    "without. Confounded: students choose whether to ask, and those who ask are often the ones who struggle."
)


@dataclass
class _Stretch:
    first_bin: int
    last_bin: int
    score: float
    counts: dict[str, int]
    students: set[str]


def score_bins(rows: list[Any], bin_count: int) -> list[_Stretch]:
    """Every segment from the first to `bin_count`, each scored against the video's own per-segment means
    (0 everywhere when the video has no signals)."""
    by_bin = {int(row.bin): row for row in rows}
    totals = {signal: sum(int(getattr(row, signal)) for row in rows) for signal in SIGNALS}
    present = [signal for signal in SIGNALS if totals[signal] > 0]
    means = {signal: totals[signal] / bin_count for signal in present}
    bins: list[_Stretch] = []
    for index in range(bin_count):
        row = by_bin.get(index)
        counts = {signal: int(getattr(row, signal)) if row is not None else 0 for signal in SIGNALS}
        score = sum(counts[signal] / means[signal] for signal in present) / len(present) if present else 0.0
        students = {str(student) for student in row.students or ()} if row is not None else set()
        bins.append(_Stretch(index, index, score, counts, students))
    return bins


def find_peaks(bins: list[_Stretch], min_score: float) -> list[_Stretch]:
    """The segments scoring at least `min_score`, neighbours merged, most confusing first."""
    stretches: list[_Stretch] = []
    for segment in bins:
        if segment.score < min_score:
            continue
        last = stretches[-1] if stretches else None
        if last is not None and last.last_bin == segment.first_bin - 1:
            last.last_bin = segment.first_bin
            last.score = max(last.score, segment.score)
            for signal in SIGNALS:
                last.counts[signal] += segment.counts[signal]
            last.students |= segment.students
        else:
            stretches.append(
                _Stretch(
                    segment.first_bin, segment.first_bin, segment.score, dict(segment.counts), set(segment.students)
                )
            )
    stretches.sort(key=lambda stretch: (-stretch.score, stretch.first_bin))
    return stretches


class VideoAnalyticsService:
    def __init__(self, database: Database, search: TranscriptSearch, settings: Settings) -> None:
        self._db = database
        self._search = search
        self._settings = settings

    @staticmethod
    async def _require_course(
        session: AsyncSession, principal: Principal, video_id: str, info: VideoInfo | None
    ) -> None:
        """Instructors see the analytics of the courses they teach: the course of the video's transcript, or
        without one the course its viewers reported. A video with neither answers like a missing one."""
        if principal.role is Role.SERVICE:
            return
        course_id = info.course_id if info is not None else ""
        if not course_id:
            course_id = await repo.reported_course(session, video_id)
        if not course_id or not await teaches(session, principal, course_id):
            if info is None:
                raise NotFound(f"video `{video_id}` not found")
            raise not_taught(course_id)

    async def video_analytics(self, principal: Principal, video_id: str, max_peaks: int) -> VideoAnalytics:
        if not principal.is_privileged:
            raise PermissionDenied("video analytics are for instructors and services", reason="INSTRUCTORS_ONLY")
        require_id(video_id, "video_id")
        if max_peaks < 0 or max_peaks > MAX_PEAKS:
            raise InvalidArgument.field("max_peaks", f"must be 0 (default {DEFAULT_PEAKS}) to {MAX_PEAKS}")
        limit = max_peaks or DEFAULT_PEAKS
        bin_seconds = self._settings.analytics_bin_seconds
        info = await self._search.video_info(video_id)
        async with self._db.session() as session:
            await self._require_course(session, principal, video_id, info)
            viewers = await repo.viewer_count(session, video_id)
            rows = await repo.confusion_signals(
                session, video_id, bin_seconds=bin_seconds, rewatch_back=REWATCH_MIN_BACK_SECONDS
            )
            stats = {row.type: row for row in await repo.intervention_stats(session, video_id)}
            agents = [
                AgentCount(row.agent_type, int(row.n), int(row.rated), round(float(row.average), 3))
                for row in await repo.video_agent_counts(session, video_id)
            ]
            stars = {int(row.rating): int(row.n) for row in await repo.rating_counts(session, video_id)}
            helped = {
                bool(row.helped): (int(row.correct), int(row.n))
                for row in await repo.help_outcomes(session, video_id, HELP_SLACK_SECONDS)
            }
        if info is None and viewers == 0 and not rows:
            raise NotFound(f"video `{video_id}` not found")
        last_bin = max((int(row.bin) for row in rows), default=-1)
        duration_bins = math.ceil(info.duration_seconds / bin_seconds) if info and info.duration_seconds > 0 else 0
        bin_count = max(duration_bins, last_bin + 1)
        bins = score_bins(rows, bin_count)
        stretches = find_peaks(bins, self._settings.analytics_peak_min_score)[:limit]
        duration = info.duration_seconds if info is not None and info.duration_seconds > 0 else math.inf

        def end_of(first_bin: int, last_bin: int) -> float:
            # The last segment ends with the video (events past its reported end keep whole segments).
            start, end = first_bin * bin_seconds, (last_bin + 1) * bin_seconds
            return min(end, duration) if start < duration else end

        def measured(stretch: _Stretch) -> dict[str, Any]:
            return {
                "start_seconds": stretch.first_bin * bin_seconds,
                "end_seconds": end_of(stretch.first_bin, stretch.last_bin),
                "score": round(stretch.score, 3),
                **{signal: stretch.counts[signal] for signal in SIGNALS},
                "students": len(stretch.students),
            }

        segments = [ConfusionSegment(**measured(segment)) for segment in bins]
        peaks = []
        for stretch in stretches:
            values = measured(stretch)
            chunks = await self._search.chunks_in_range(video_id, values["start_seconds"], values["end_seconds"])
            words = " ".join(chunk.text for chunk in chunks)
            if len(words) > MAX_TRANSCRIPT_CHARS:
                words = words[: MAX_TRANSCRIPT_CHARS - 1].rstrip() + "…"
            peaks.append(ConfusionPeak(**values, transcript_text=words))
        interventions = [
            InterventionStat(
                kind,
                int(stats[kind].delivered) if kind in stats else 0,
                int(stats[kind].accepted) if kind in stats else 0,
                int(stats[kind].dismissed) if kind in stats else 0,
            )
            for kind in INTERVENTION_KINDS
        ]
        outcome = compare_proportions(*helped.get(False, (0, 0)), *helped.get(True, (0, 0)))
        ratings = [stars.get(star, 0) for star in range(1, 6)]
        return VideoAnalytics(video_id, viewers, peaks, interventions, outcome, segments, agents, ratings)
