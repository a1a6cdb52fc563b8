"""What the transcripts domain returns: ingest jobs and transcripts as plain values, built from their rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.transcripts.models import IngestJob, Transcript
from server.transcripts.repository.jobs import TERMINAL_STATES


@dataclass(frozen=True)
class JobView:
    job_id: str
    request_id: str
    video_id: str
    course_id: str
    state: str
    stage: str
    completed_units: int
    total_units: int
    error_message: str
    unchanged: bool
    create_time: datetime | None
    update_time: datetime | None
    warnings: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    def progress_key(self) -> tuple[Any, ...]:
        return (self.state, self.stage, self.completed_units, self.total_units, self.error_message, self.unchanged)


@dataclass(frozen=True)
class CueView:
    index: int
    start_seconds: float
    end_seconds: float
    text: str
    speaker: str
    confidence: float | None = None


@dataclass(frozen=True)
class TranscriptView:
    video_id: str
    course_id: str
    title: str
    language: str
    source: str
    timing_estimated: bool
    duration_seconds: float
    cue_count: int
    chunk_count: int
    content_hash: str
    embedding_model: str
    create_time: datetime | None
    update_time: datetime | None
    cues: list[CueView] = field(default_factory=list)


def job_view(row: IngestJob) -> JobView:
    return JobView(
        job_id=row.id,
        request_id=row.request_id,
        video_id=row.video_id,
        course_id=row.course_id,
        state=row.state,
        stage=row.stage,
        completed_units=int(row.completed_units),
        total_units=int(row.total_units),
        error_message=row.error_message,
        unchanged=row.unchanged,
        create_time=row.create_time,
        update_time=row.update_time,
        warnings=tuple(row.warnings or ()),
    )


def transcript_view(row: Transcript, *, with_cues: bool = False) -> TranscriptView:
    cues = (
        [
            CueView(
                index,
                float(cue["start"]),
                float(cue["end"]),
                str(cue["text"]),
                str(cue.get("speaker") or ""),
                None if cue.get("confidence") is None else float(cue["confidence"]),
            )
            for index, cue in enumerate(row.cues)
        ]
        if with_cues
        else []
    )
    return TranscriptView(
        video_id=row.video_id,
        course_id=row.course_id,
        title=row.title,
        language=row.language,
        source=row.source,
        timing_estimated=row.timing_estimated,
        duration_seconds=float(row.duration_seconds),
        cue_count=row.cue_count,
        chunk_count=row.chunk_count,
        content_hash=row.content_hash,
        embedding_model=row.embedding_model,
        create_time=row.create_time,
        update_time=row.update_time,
        cues=cues,
    )
