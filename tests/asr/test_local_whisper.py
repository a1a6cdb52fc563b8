"""The local recogniser on speech whose words are known (espeak-ng), and the packaged model's assembly."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from server.asr.local_whisper import LocalWhisper
from server.asr.model_assembly import MARKER, MODEL_SHA256, is_assembled, resolve_model
from server.asr.pipeline import transcribe_media
from server.core.errors import FailedPrecondition
from tests.asr.conftest import LONG_FIRST, LONG_SECOND, LONG_SECOND_AT, PARAGRAPH, Clips
from tests.asr.speech import word_error_rate

# espeak-ng's robotic voice is harder than a lecturer's; Whisper base gets about 0.1 on it.
MAX_WORD_ERROR_RATE = 0.25


@pytest.fixture(scope="module")
def whisper(whisper_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LocalWhisper:
    return LocalWhisper(model_dir=whisper_model_dir, data_dir=tmp_path_factory.mktemp("data"), cpu_threads=2)


async def test_known_paragraph_is_transcribed_within_the_error_threshold(whisper: LocalWhisper, clips: Clips) -> None:
    result = await transcribe_media(clips.paragraph, whisper, language=None, window_seconds=30, max_seconds=600)

    text = " ".join(segment.text for segment in result.segments)
    assert word_error_rate(PARAGRAPH, text) <= MAX_WORD_ERROR_RATE, text
    assert result.language == "en"
    assert whisper.model_id == "whisper-base"
    duration = clips.durations["paragraph"]
    assert result.duration_seconds == pytest.approx(duration, abs=0.05)
    assert len(result.segments) >= 2
    for segment in result.segments:
        assert 0.0 <= segment.start < segment.end <= duration
        assert segment.confidence is not None and 0.0 < segment.confidence <= 1.0
    for before, after in pairwise(result.segments):
        assert before.end <= after.start


async def test_long_media_is_recognised_window_by_window_at_the_right_times(
    whisper: LocalWhisper, clips: Clips
) -> None:
    progress: list[float] = []

    async def on_progress(seconds: float) -> None:
        progress.append(seconds)

    result = await transcribe_media(
        clips.long, whisper, language="en", window_seconds=30, max_seconds=600, on_progress=on_progress
    )

    assert result.windows == 3
    assert result.speech_windows == 2
    assert progress == sorted(progress) and len(progress) == 3
    assert progress[-1] == pytest.approx(clips.durations["long"], abs=0.05)
    first = [segment for segment in result.segments if segment.start < 20]
    second = [segment for segment in result.segments if segment.start >= 20]
    assert word_error_rate(LONG_FIRST, " ".join(segment.text for segment in first)) <= MAX_WORD_ERROR_RATE
    assert word_error_rate(LONG_SECOND, " ".join(segment.text for segment in second)) <= MAX_WORD_ERROR_RATE
    assert 0.5 <= first[0].start <= 2.0
    assert LONG_SECOND_AT - 1.0 <= second[0].start <= LONG_SECOND_AT + 1.5


async def test_silence_gives_no_segments(whisper: LocalWhisper, clips: Clips) -> None:
    result = await transcribe_media(clips.silent, whisper, language=None, window_seconds=30, max_seconds=600)
    assert result.segments == []
    assert result.speech_windows == 0
    assert result.duration_seconds == pytest.approx(6.0, abs=0.05)


def test_packaged_model_is_assembled_and_verified(whisper_model_dir: Path, tmp_path: Path) -> None:
    assert is_assembled(whisper_model_dir)
    assert (whisper_model_dir / MARKER).read_text().strip() == MODEL_SHA256
    assert {path.name for path in whisper_model_dir.iterdir()} >= {
        "model.bin",
        "config.json",
        "tokenizer.json",
        "vocabulary.txt",
    }
    # Already assembled: used as it is.
    assert resolve_model(whisper_model_dir, tmp_path) == (whisper_model_dir, "whisper-base")
    # A directory with something else in it is never overwritten.
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(FailedPrecondition):
        resolve_model(occupied, tmp_path)
    assert (occupied / "notes.txt").read_text() == "mine"
    # A model directory of another Whisper model is used as it is, named after the directory.
    custom = tmp_path / "whisper-small-ct2"
    custom.mkdir()
    (custom / "model.bin").write_bytes(b"weights")
    assert resolve_model(custom, tmp_path) == (custom, "whisper-small-ct2")


def test_a_damaged_assembly_is_assembled_again(tmp_path: Path) -> None:
    target = tmp_path / "whisper-base"
    target.mkdir()
    (target / MARKER).write_text(MODEL_SHA256)
    (target / "model.bin").write_bytes(b"truncated")
    assert not is_assembled(target)
    assert resolve_model(target, tmp_path) == (target, "whisper-base")
    assert is_assembled(target)
