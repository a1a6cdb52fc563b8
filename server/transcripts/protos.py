"""Transcript values to and from TranscriptService messages."""

from __future__ import annotations

from tutorstream.v1 import transcript_service_pb2 as pb

from server.core.protos import timestamp
from server.core.values import SearchHit
from server.transcripts.courses import CourseRole, InstructorView
from server.transcripts.domain import JobView, TranscriptView

FORMAT_FROM_PROTO = {
    pb.TRANSCRIPT_FORMAT_WEBVTT: "webvtt",
    pb.TRANSCRIPT_FORMAT_SRT: "srt",
    pb.TRANSCRIPT_FORMAT_JSON_SEGMENTS: "json_segments",
    pb.TRANSCRIPT_FORMAT_PLAIN_TEXT: "plain_text",
}
STATE_TO_PROTO = {
    "queued": pb.INGEST_JOB_STATE_QUEUED,
    "running": pb.INGEST_JOB_STATE_RUNNING,
    "succeeded": pb.INGEST_JOB_STATE_SUCCEEDED,
    "failed": pb.INGEST_JOB_STATE_FAILED,
}
STAGE_TO_PROTO = {
    "unspecified": pb.INGEST_STAGE_UNSPECIFIED,
    "parsing": pb.INGEST_STAGE_PARSING,
    "chunking": pb.INGEST_STAGE_CHUNKING,
    "embedding": pb.INGEST_STAGE_EMBEDDING,
    "indexing": pb.INGEST_STAGE_INDEXING,
    "done": pb.INGEST_STAGE_DONE,
    "fetching": pb.INGEST_STAGE_FETCHING,
    "decoding": pb.INGEST_STAGE_DECODING,
    "transcribing": pb.INGEST_STAGE_TRANSCRIBING,
}
ROLE_TO_PROTO = {CourseRole.OWNER: pb.COURSE_ROLE_OWNER, CourseRole.INSTRUCTOR: pb.COURSE_ROLE_INSTRUCTOR}
ROLE_FROM_PROTO = {value: key.value for key, value in ROLE_TO_PROTO.items()}


def job_to_proto(job: JobView) -> pb.IngestJob:
    return pb.IngestJob(
        name=f"ingestJobs/{job.job_id}",
        job_id=job.job_id,
        video_id=job.video_id,
        course_id=job.course_id,
        state=STATE_TO_PROTO.get(job.state, pb.INGEST_JOB_STATE_UNSPECIFIED),
        stage=STAGE_TO_PROTO.get(job.stage, pb.INGEST_STAGE_UNSPECIFIED),
        completed_units=job.completed_units,
        total_units=job.total_units,
        error_message=job.error_message,
        unchanged=job.unchanged,
        request_id=job.request_id,
        create_time=timestamp(job.create_time),
        update_time=timestamp(job.update_time),
        warnings=list(job.warnings),
    )


def transcript_to_proto(view: TranscriptView) -> pb.Transcript:
    return pb.Transcript(
        name=f"videos/{view.video_id}/transcript",
        video_id=view.video_id,
        course_id=view.course_id,
        title=view.title,
        language=view.language,
        source=view.source,
        timing_estimated=view.timing_estimated,
        duration_seconds=view.duration_seconds,
        cue_count=view.cue_count,
        chunk_count=view.chunk_count,
        content_hash=view.content_hash,
        embedding_model=view.embedding_model,
        cues=[
            pb.Cue(
                index=cue.index,
                start_seconds=cue.start_seconds,
                end_seconds=cue.end_seconds,
                text=cue.text,
                speaker=cue.speaker,
                confidence=cue.confidence,
            )
            for cue in view.cues
        ],
        create_time=timestamp(view.create_time),
        update_time=timestamp(view.update_time),
    )


def instructor_to_proto(view: InstructorView) -> pb.CourseInstructor:
    return pb.CourseInstructor(
        name=f"courses/{view.course_id}/instructors/{view.user_id}",
        user_id=view.user_id,
        role=ROLE_TO_PROTO[view.role],
        granted_by=view.granted_by,
        create_time=timestamp(view.create_time),
    )


def hit_to_proto(hit: SearchHit) -> pb.SearchResult:
    return pb.SearchResult(
        chunk_id=hit.chunk_id,
        video_id=hit.video_id,
        course_id=hit.course_id,
        start_seconds=hit.start_seconds,
        end_seconds=hit.end_seconds,
        text=hit.text,
        score=hit.score,
        vector_rank=hit.vector_rank,
        text_rank=hit.text_rank,
    )
