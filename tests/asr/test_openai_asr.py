"""The OpenAI-compatible transcription provider, over the wire against the test harness's server."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from tutorstream.v1 import transcript_service_pb2 as pb

from tests.asr.conftest import AsrServerFactory, Clips, follow_job
from tests.conftest import RunningServer
from tests.support.fake_openai import Behavior, FakeOpenAI

SPOKEN = "Flexbox aligns items along the main axis. Grid places items in rows and columns."


@pytest.fixture
async def openai_asr_server(
    asr_server_factory: AsrServerFactory, fake_openai: FakeOpenAI, clips: Clips, media_dir: Path
) -> RunningServer:
    shutil.copyfile(clips.short, media_dir / "layout.wav")
    return await asr_server_factory(
        asr_provider="openai",
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
        llm_max_retries=2,
    )


def _request(request_id: str, video_id: str, language: str = "") -> pb.TranscribeMediaRequest:
    return pb.TranscribeMediaRequest(
        request_id=request_id, video_id=video_id, course_id="course-css", media_path="layout.wav", language=language
    )


async def test_openai_transcription_feeds_the_same_pipeline(
    openai_asr_server: RunningServer, fake_openai: FakeOpenAI, clips: Clips
) -> None:
    # A 500 first: the SDK retries it, so the job still succeeds.
    fake_openai.enqueue_transcriptions(Behavior(status=500), Behavior(content=SPOKEN))
    instructor = openai_asr_server.client("teacher-openai", role="instructor")

    response = await instructor.transcripts.TranscribeMedia(_request("openai-layout-1", "layout"))
    final = (await follow_job(instructor, response.job.name))[-1]
    assert final.state == pb.INGEST_JOB_STATE_SUCCEEDED, final.error_message

    requests = fake_openai.transcription_requests
    assert len(requests) == 2
    body = requests[-1].body
    assert body["model"] == "whisper-1"
    assert body["response_format"] == "verbose_json"
    assert body["filename"] == "window.wav"
    samples = round(clips.durations["short"] * 16_000)
    assert abs(body["file_size"] - (44 + 2 * samples)) <= 64
    assert "language" not in body

    transcript = (
        await instructor.transcripts.GetTranscript(
            pb.GetTranscriptRequest(name="videos/layout/transcript", view=pb.TRANSCRIPT_VIEW_FULL)
        )
    ).transcript
    assert transcript.source == "asr:whisper-1"
    assert transcript.language == "en"
    assert [cue.text for cue in transcript.cues] == [
        "Flexbox aligns items along the main axis.",
        "Grid places items in rows and columns.",
    ]
    # The fake's segments are 2.5 s each; the second is clamped to the end of the 3 s clip.
    assert transcript.cues[0].start_seconds == 0.0
    assert transcript.cues[0].end_seconds == 2.5
    assert transcript.cues[1].end_seconds == pytest.approx(clips.durations["short"], abs=0.01)
    assert all(cue.confidence == pytest.approx(math.exp(-0.2), abs=1e-3) for cue in transcript.cues)
    hits = await openai_asr_server.server.runtime.search.search("rows and columns", video_id="layout")
    assert hits and "Grid places items" in hits[0].text


async def test_refusal_by_the_transcription_service_fails_the_job(
    openai_asr_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue_transcriptions(Behavior(status=400, error_message="Audio file might be corrupted"))
    instructor = openai_asr_server.client("teacher-openai-2", role="instructor")

    response = await instructor.transcripts.TranscribeMedia(_request("openai-refused-1", "refused", language="fr"))
    final = (await follow_job(instructor, response.job.name))[-1]
    assert final.state == pb.INGEST_JOB_STATE_FAILED
    assert "refused the audio (400)" in final.error_message
    assert "Audio file might be corrupted" in final.error_message
    assert fake_openai.transcription_requests[-1].body["language"] == "fr"
