"""TranscribeMedia and UploadMedia end to end: a real server, the local recogniser, the job queue, the
shared chunk/embed/index path and search."""

from __future__ import annotations

import math
import shutil
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from tutorstream.v1 import transcript_service_pb2 as pb

from tests.asr.conftest import PARAGRAPH, SHORT, AsrServerFactory, Clips, follow_job, upload_messages
from tests.asr.speech import word_error_rate
from tests.conftest import RunningServer

MAX_WORD_ERROR_RATE = 0.25
CAPTIONS = """WEBVTT

00:00:00.000 --> 00:00:06.000
Captions written by the instructor about flexbox layout.

00:00:06.000 --> 00:00:12.000
Flexbox aligns items along the main axis of a container.
"""


def _cue_text(transcript: pb.Transcript) -> str:
    return " ".join(cue.text for cue in transcript.cues)


async def _transcript(client, video_id: str) -> pb.Transcript:
    response = await client.transcripts.GetTranscript(
        pb.GetTranscriptRequest(name=f"videos/{video_id}/transcript", view=pb.TRANSCRIPT_VIEW_FULL)
    )
    return response.transcript


@pytest.fixture
async def media_site(clips: Clips, tmp_path: Path) -> AsyncIterator[str]:
    """Media served on loopback: a clip, a corrupt file, a redirect off the allow-list and a 404."""
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 64)

    async def short(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(clips.short)

    async def broken(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(corrupt)

    async def redirect_out(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"http://127.0.0.2:{request.url.port}/short.wav")

    app = web.Application()
    app.router.add_get("/short.wav", short)
    app.router.add_get("/corrupt.wav", broken)
    app.router.add_get("/elsewhere.wav", redirect_out)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_upload_by_client_streaming_is_transcribed_searchable_and_replaceable_by_captions(
    asr_server: RunningServer, clips: Clips
) -> None:
    instructor = asr_server.client("teacher-upload", role="instructor")
    data = clips.paragraph.read_bytes()
    response = await instructor.transcripts.UploadMedia(
        iter(
            upload_messages(
                data, request_id="upload-paragraph-1", video_id="browser-rendering", title="How browsers render"
            )
        )
    )
    assert response.job.state == pb.INGEST_JOB_STATE_QUEUED
    assert response.job.video_id == "browser-rendering"

    updates = await follow_job(instructor, response.job.name)
    final = updates[-1]
    assert final.state == pb.INGEST_JOB_STATE_SUCCEEDED, final.error_message
    assert final.stage == pb.INGEST_STAGE_DONE
    duration = clips.durations["paragraph"]
    transcribing = [job for job in updates if job.stage == pb.INGEST_STAGE_TRANSCRIBING]
    assert transcribing, [pb.IngestStage.Name(job.stage) for job in updates]
    assert all(job.total_units == math.ceil(duration) for job in transcribing)

    transcript = await _transcript(instructor, "browser-rendering")
    assert transcript.source == "asr:whisper-base"
    assert transcript.language == "en"
    assert not transcript.timing_estimated
    assert transcript.title == "How browsers render"
    assert transcript.chunk_count >= 1
    assert word_error_rate(PARAGRAPH, _cue_text(transcript)) <= MAX_WORD_ERROR_RATE, _cue_text(transcript)
    for cue in transcript.cues:
        assert cue.HasField("confidence") and 0.0 < cue.confidence <= 1.0
        assert 0.0 <= cue.start_seconds < cue.end_seconds <= duration + 0.01
    for before, after in pairwise(transcript.cues):
        assert before.end_seconds <= after.start_seconds

    hits = await asr_server.server.runtime.search.search(
        "how does the browser paint pixels on the screen", video_id="browser-rendering", limit=3
    )
    assert hits and any("pixels" in hit.text.lower() for hit in hits)
    student = asr_server.client("student-reader")
    found = await student.transcripts.SearchTranscripts(
        pb.SearchTranscriptsRequest(query="style sheets", course_id="course-asr", limit=3)
    )
    assert found.results and found.results[0].video_id == "browser-rendering"

    # The instructor replaces the speech-to-text transcript with captions, atomically.
    ingest = await instructor.transcripts.IngestTranscript(
        pb.IngestTranscriptRequest(
            request_id="captions-replace-1",
            video_id="browser-rendering",
            course_id="course-asr",
            format=pb.TRANSCRIPT_FORMAT_WEBVTT,
            content=CAPTIONS,
        )
    )
    replaced = (await follow_job(instructor, ingest.job.name))[-1]
    assert replaced.state == pb.INGEST_JOB_STATE_SUCCEEDED, replaced.error_message
    transcript = await _transcript(instructor, "browser-rendering")
    assert transcript.source == "upload"
    assert transcript.cues[0].text == "Captions written by the instructor about flexbox layout."
    assert not any(cue.HasField("confidence") for cue in transcript.cues)
    hits = await asr_server.server.runtime.search.search("flexbox main axis", video_id="browser-rendering")
    assert hits and all("pixels" not in hit.text.lower() for hit in hits)
    assert any("flexbox" in hit.text.lower() for hit in hits)


async def test_media_url_on_the_allow_list_is_fetched_and_transcribed(
    asr_server_factory: AsrServerFactory, media_site: str
) -> None:
    server = await asr_server_factory(asr_allowed_url_origins=[media_site])
    instructor = server.client("teacher-url", role="instructor")

    response = await instructor.transcripts.TranscribeMedia(
        pb.TranscribeMediaRequest(
            request_id="url-short-0001",
            video_id="fox",
            course_id="course-asr",
            media_url=f"{media_site}/short.wav",
            language="en-US",
        )
    )
    final = (await follow_job(instructor, response.job.name))[-1]
    assert final.state == pb.INGEST_JOB_STATE_SUCCEEDED, final.error_message
    transcript = await _transcript(instructor, "fox")
    assert transcript.source == "asr:whisper-base"
    assert transcript.language == "en"
    assert word_error_rate(SHORT, _cue_text(transcript)) <= MAX_WORD_ERROR_RATE, _cue_text(transcript)

    # The same request id and request: the same job.
    again = await instructor.transcripts.TranscribeMedia(
        pb.TranscribeMediaRequest(
            request_id="url-short-0001",
            video_id="fox",
            course_id="course-asr",
            media_url=f"{media_site}/short.wav",
            language="en-US",
        )
    )
    assert again.job.name == response.job.name

    # Media that does not decode is found by the job (only the URL's head is checked during the call).
    corrupt = await instructor.transcripts.TranscribeMedia(
        pb.TranscribeMediaRequest(
            request_id="url-corrupt-01",
            video_id="broken",
            course_id="course-asr",
            media_url=f"{media_site}/corrupt.wav",
        )
    )
    failed = (await follow_job(instructor, corrupt.job.name))[-1]
    assert failed.state == pb.INGEST_JOB_STATE_FAILED
    assert "cannot be decoded" in failed.error_message

    refusals = {
        "http://127.0.0.2:1/short.wav": grpc.StatusCode.PERMISSION_DENIED,
        f"{media_site}/elsewhere.wav": grpc.StatusCode.PERMISSION_DENIED,
        "https://example.com/lecture.mp4": grpc.StatusCode.PERMISSION_DENIED,
        f"{media_site}/missing.wav": grpc.StatusCode.INVALID_ARGUMENT,
        "file:///etc/passwd": grpc.StatusCode.INVALID_ARGUMENT,
    }
    for index, (url, code) in enumerate(refusals.items()):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await instructor.transcripts.TranscribeMedia(
                pb.TranscribeMediaRequest(
                    request_id=f"url-refused-{index:02d}", video_id="denied", course_id="course-asr", media_url=url
                )
            )
        assert raised.value.code() == code, (url, raised.value.details())


async def test_media_path_inside_the_media_directory_only(
    asr_server: RunningServer, clips: Clips, media_dir: Path, tmp_path: Path
) -> None:
    (media_dir / "course").mkdir()
    shutil.copyfile(clips.short, media_dir / "course" / "fox.wav")
    secret = tmp_path / "outside.wav"
    shutil.copyfile(clips.short, secret)
    (media_dir / "link-out.wav").symlink_to(secret)
    instructor = asr_server.client("teacher-path", role="instructor")

    def request(path: str, request_id: str) -> pb.TranscribeMediaRequest:
        return pb.TranscribeMediaRequest(
            request_id=request_id, video_id="fox-path", course_id="course-asr", media_path=path
        )

    refusals = {
        "../outside.wav": grpc.StatusCode.PERMISSION_DENIED,
        "course/../../outside.wav": grpc.StatusCode.PERMISSION_DENIED,
        str(secret): grpc.StatusCode.PERMISSION_DENIED,
        "link-out.wav": grpc.StatusCode.PERMISSION_DENIED,
        "course/missing.wav": grpc.StatusCode.NOT_FOUND,
        "course": grpc.StatusCode.INVALID_ARGUMENT,
    }
    for index, (path, code) in enumerate(refusals.items()):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await instructor.transcripts.TranscribeMedia(request(path, f"path-refused-{index:02d}"))
        assert raised.value.code() == code, (path, raised.value.details())

    response = await instructor.transcripts.TranscribeMedia(request("course/fox.wav", "path-fox-0001"))
    updates = await follow_job(instructor, response.job.name)
    assert updates[-1].state == pb.INGEST_JOB_STATE_SUCCEEDED, updates[-1].error_message
    transcript = await _transcript(instructor, "fox-path")
    assert word_error_rate(SHORT, _cue_text(transcript)) <= MAX_WORD_ERROR_RATE, _cue_text(transcript)
    assert transcript.duration_seconds == pytest.approx(clips.durations["short"], abs=0.05)
