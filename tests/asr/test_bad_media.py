"""Bad input to TranscribeMedia and UploadMedia is refused during the call, before any job or work exists;
silence ends in a failed job with a clear reason that leaves the existing transcript alone."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select
from tutorstream.v1 import transcript_service_pb2 as pb

from server.transcripts.models import IngestJob
from tests.asr.conftest import AsrServerFactory, Clips, follow_job, upload_messages
from tests.conftest import RunningServer
from tests.support.clients import error_details

# Bytes no decoder reads as media (text, not a container); fixed so the refusal reason is always the same.
CORRUPT_MEDIA = b"these bytes are not audio or video at all; " * 5_000
CAPTIONS = "WEBVTT\n\n00:00:00.000 --> 00:00:04.000\nThe instructor's own captions stay in place.\n"


async def _refused(call, code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, raised.value.details()
    return raised.value


async def _job_count(server: RunningServer) -> int:
    async with server.server.database.session() as session:
        return int((await session.execute(select(func.count()).select_from(IngestJob))).scalar_one())


async def test_bad_media_is_refused_before_any_work(
    asr_server_factory: AsrServerFactory, clips: Clips, media_dir: Path, tmp_path: Path
) -> None:
    server = await asr_server_factory(asr_max_media_bytes=4_000_000, asr_max_media_seconds=30.0)
    instructor = server.client("teacher-bad", role="instructor")
    student = server.client("student-bad")
    transcripts = instructor.transcripts
    uploads = tmp_path / "uploads"

    # Students may not transcribe, whatever they send.
    await _refused(
        student.transcripts.UploadMedia(iter(upload_messages(b"x", request_id="student-up-01", video_id="v1"))),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    await _refused(
        student.transcripts.TranscribeMedia(
            pb.TranscribeMediaRequest(request_id="student-tm-01", video_id="v1", course_id="c1", media_path="a.wav")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )

    # Corrupt upload: the decoder's reason, on the field that carried the bytes. Fixed bytes, not random ones:
    # random bytes now and then probe as a container without an audio stream (MEDIA_WITHOUT_AUDIO).
    error = await _refused(
        transcripts.UploadMedia(iter(upload_messages(CORRUPT_MEDIA, request_id="corrupt-up-01", video_id="v1"))),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    details = error_details(error)
    assert details["ErrorInfo"].reason == "MEDIA_UNDECODABLE"
    assert details["BadRequest"].field_violations[0].field == "chunk"
    assert "cannot be decoded: Invalid data" in error.details()

    # Over the size limit: refused on the declared size, before a single chunk is read.
    error = await _refused(
        transcripts.UploadMedia(
            iter(upload_messages(b"", request_id="too-big-up-01", video_id="v1", total_bytes=4_000_001))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert error_details(error)["ErrorInfo"].reason == "MEDIA_TOO_LARGE"

    # Over the duration limit (the long clip lasts 70 s).
    error = await _refused(
        transcripts.UploadMedia(
            iter(upload_messages(clips.long.read_bytes(), request_id="too-long-01", video_id="v1"))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert error_details(error)["ErrorInfo"].reason == "MEDIA_TOO_LONG"
    (media_dir / "long.wav").write_bytes(clips.long.read_bytes())
    error = await _refused(
        transcripts.TranscribeMedia(
            pb.TranscribeMediaRequest(request_id="too-long-02", video_id="v1", course_id="c1", media_path="long.wav")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert error_details(error)["ErrorInfo"].reason == "MEDIA_TOO_LONG"
    (media_dir / "broken.mp3").write_bytes(CORRUPT_MEDIA[:10_000])
    error = await _refused(
        transcripts.TranscribeMedia(
            pb.TranscribeMediaRequest(
                request_id="corrupt-path-1", video_id="v1", course_id="c1", media_path="broken.mp3"
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert error_details(error)["BadRequest"].field_violations[0].field == "media_path"

    # Malformed streams.
    short, long = clips.short.read_bytes(), clips.long.read_bytes()
    messages = upload_messages(short, request_id="chunk-first-01", video_id="v1")
    await _refused(transcripts.UploadMedia(iter(messages[1:])), grpc.StatusCode.INVALID_ARGUMENT)
    await _refused(
        transcripts.UploadMedia(
            iter(upload_messages(long, request_id="big-chunk-01", video_id="v1", chunk_size=1_048_577))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await _refused(
        transcripts.UploadMedia(
            iter(upload_messages(short, request_id="short-total-1", video_id="v1", total_bytes=len(short) + 10))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await _refused(
        transcripts.UploadMedia(iter([*messages, messages[0]])),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    # Bad fields.
    for request in (
        pb.TranscribeMediaRequest(request_id="no-media-0001", video_id="v1", course_id="c1"),
        pb.TranscribeMediaRequest(request_id="short", video_id="v1", course_id="c1", media_path="a.wav"),
        pb.TranscribeMediaRequest(request_id="bad-video-001", video_id="../v1", course_id="c1", media_path="a.wav"),
        pb.TranscribeMediaRequest(
            request_id="bad-lang-0001", video_id="v1", course_id="c1", media_path="a.wav", language="klingon"
        ),
    ):
        await _refused(transcripts.TranscribeMedia(request), grpc.StatusCode.INVALID_ARGUMENT)

    assert await _job_count(server) == 0
    assert not uploads.exists() or list(uploads.iterdir()) == []


async def test_silence_fails_with_no_speech_and_keeps_the_existing_transcript(
    asr_server: RunningServer, clips: Clips
) -> None:
    instructor = asr_server.client("teacher-silence", role="instructor")
    captions = await instructor.transcripts.IngestTranscript(
        pb.IngestTranscriptRequest(
            request_id="silence-captions-1",
            video_id="quiet",
            course_id="course-asr",
            format=pb.TRANSCRIPT_FORMAT_WEBVTT,
            content=CAPTIONS,
        )
    )
    assert (await follow_job(instructor, captions.job.name))[-1].state == pb.INGEST_JOB_STATE_SUCCEEDED

    silent = clips.silent.read_bytes()
    response = await instructor.transcripts.UploadMedia(
        iter(upload_messages(silent, request_id="silence-upload-1", video_id="quiet"))
    )
    final = (await follow_job(instructor, response.job.name))[-1]
    assert final.state == pb.INGEST_JOB_STATE_FAILED
    assert final.error_message == "no speech detected in 6.0 s of media"

    transcript = (
        await instructor.transcripts.GetTranscript(
            pb.GetTranscriptRequest(name="videos/quiet/transcript", view=pb.TRANSCRIPT_VIEW_FULL)
        )
    ).transcript
    assert transcript.source == "upload"
    assert [cue.text for cue in transcript.cues] == ["The instructor's own captions stay in place."]

    # Idempotency: the same request id and bytes return the same job; other bytes under it are refused.
    again = await instructor.transcripts.UploadMedia(
        iter(upload_messages(silent, request_id="silence-upload-1", video_id="quiet"))
    )
    assert again.job.name == response.job.name
    error = await _refused(
        instructor.transcripts.UploadMedia(
            iter(upload_messages(clips.short.read_bytes(), request_id="silence-upload-1", video_id="quiet"))
        ),
        grpc.StatusCode.ALREADY_EXISTS,
    )
    assert error_details(error)["ErrorInfo"].reason == "REQUEST_ID_REUSED"


async def test_uploads_of_ended_jobs_are_removed(asr_server: RunningServer, clips: Clips, tmp_path: Path) -> None:
    instructor = asr_server.client("teacher-sweep", role="instructor")
    uploads = tmp_path / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    abandoned = uploads / "incoming-abandoned"
    abandoned.write_bytes(b"partial")
    os.utime(abandoned, (0, 0))

    response = await instructor.transcripts.UploadMedia(
        iter(upload_messages(clips.silent.read_bytes(), request_id="sweep-upload-1", video_id="swept"))
    )
    job_file = uploads / f"{response.job.job_id}.media"
    assert job_file.exists()
    assert (await follow_job(instructor, response.job.name))[-1].state == pb.INGEST_JOB_STATE_FAILED
    os.utime(job_file, (0, 0))

    # The maintenance sweep (every JOB_SWEEP_SECONDS in every worker) removes both.
    for _ in range(300):
        if not job_file.exists() and not abandoned.exists():
            break
        await asyncio.sleep(0.1)
    assert not job_file.exists()
    assert not abandoned.exists()
