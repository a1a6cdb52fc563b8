"""Media handling without the recogniser: probing, windowing, WAV encoding, path containment, URL
allow-list, languages and confidence."""

from __future__ import annotations

import math
import os
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from server.asr.base import SAMPLE_RATE, confidence_from_logprob, confidence_from_probabilities
from server.asr.fetch import check_url, origin_of, resolve_media_path
from server.asr.languages import language_code, whisper_language
from server.asr.media import AudioWindow, encode_wav, iter_windows, pause_cut, probe_media, windows_from_chunks
from server.core.errors import InvalidArgument, NotFound, PermissionDenied
from tests.asr.conftest import Clips
from tests.asr.speech import speak, write_wav


def test_probe_reads_duration_and_codec(clips: Clips) -> None:
    info = probe_media(clips.short, max_seconds=60)
    assert info.container == "wav"
    assert info.codec == "pcm_s16le"
    assert info.duration_seconds == pytest.approx(clips.durations["short"], abs=0.05)


def test_probe_refuses_corrupt_media_with_the_decoder_reason(tmp_path: Path) -> None:
    corrupt = tmp_path / "lecture.mp4"
    corrupt.write_bytes(os.urandom(4096))
    with pytest.raises(InvalidArgument) as raised:
        probe_media(corrupt, max_seconds=60, field="media_path")
    assert raised.value.reason == "MEDIA_UNDECODABLE"
    assert raised.value.message.startswith("media_path: the media cannot be decoded: ")
    assert "Invalid data" in raised.value.message
    assert str(tmp_path) not in raised.value.message


def test_probe_refuses_media_without_audio(tmp_path: Path) -> None:
    video_only = tmp_path / "slides.mp4"
    with av.open(str(video_only), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(InvalidArgument) as raised:
        probe_media(video_only, max_seconds=60)
    assert raised.value.reason == "MEDIA_WITHOUT_AUDIO"


def test_duration_limit_is_enforced_by_probe_and_while_decoding(clips: Clips) -> None:
    with pytest.raises(InvalidArgument) as raised:
        probe_media(clips.long, max_seconds=30)
    assert raised.value.reason == "MEDIA_TOO_LONG"
    with pytest.raises(InvalidArgument) as raised:
        list(iter_windows(clips.long, window_seconds=30, max_seconds=30))
    assert raised.value.reason == "MEDIA_TOO_LONG"


def test_windows_cover_the_media_in_order_and_cut_in_quiet_moments(tmp_path: Path) -> None:
    sentence = speak("This sentence is spoken again and again to fill the window with speech.")
    speech = np.tile(sentence, 20)
    duration = write_wav(tmp_path / "speech.wav", [speech[: 75 * 22_050]])

    windows = list(iter_windows(tmp_path / "speech.wav", window_seconds=30, max_seconds=600))
    assert len(windows) == 3
    position = 0.0
    for window in windows:
        assert window.offset == pytest.approx(position, abs=1e-6)
        assert 25.0 <= window.duration <= 30.0 or window is windows[-1]
        position = window.offset + window.duration
    assert position == pytest.approx(duration, abs=0.05)
    peak = max(float(np.max(np.abs(window.audio))) for window in windows)
    for before, after in pairwise(windows):
        edge = np.concatenate([before.audio[-160:], after.audio[:160]])
        assert float(np.max(np.abs(edge))) < 0.05 * peak, "a window was cut in the middle of a word"


def test_a_window_is_cut_in_the_longest_pause_not_between_words() -> None:
    rng = np.random.default_rng(7)

    def voiced(seconds: float) -> np.ndarray:
        return (rng.standard_normal(round(seconds * SAMPLE_RATE)) * 0.2).astype(np.float32)

    def pause(seconds: float) -> np.ndarray:
        return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)

    # Search region from 25 s: a word gap (0.1 s) at 26 s, a sentence gap (0.5 s) at 27.5 s, a word gap at 29 s.
    audio = np.concatenate([voiced(26.0), pause(0.1), voiced(1.4), pause(0.5), voiced(1.0), pause(0.1), voiced(0.9)])
    cut = pause_cut(audio, 25 * SAMPLE_RATE) / SAMPLE_RATE
    assert 27.5 < cut < 28.0


def test_windowing_keeps_memory_to_one_window() -> None:
    def chunks():
        for _ in range(10 * 60 * 10):  # ten minutes of 0.1 s pieces of noise
            yield (np.random.default_rng(1).standard_normal(1600) * 0.1).astype(np.float32)

    largest = 0
    count = 0
    for window in windows_from_chunks(chunks(), 30.0):
        largest = max(largest, len(window.audio))
        count += 1
    assert largest <= 30 * SAMPLE_RATE
    assert count >= 20


def test_silent_windows_are_recognised_as_silent() -> None:
    assert AudioWindow(0.0, np.zeros(16_000, dtype=np.float32)).silent
    assert not AudioWindow(0.0, np.full(16_000, 0.1, dtype=np.float32)).silent


def test_wav_encoding_round_trips_through_the_decoder(tmp_path: Path) -> None:
    tone = (0.5 * np.sin(np.arange(SAMPLE_RATE) * 2 * math.pi * 440 / SAMPLE_RATE)).astype(np.float32)
    path = tmp_path / "tone.wav"
    path.write_bytes(encode_wav(tone))
    (window,) = list(iter_windows(path, window_seconds=30, max_seconds=10))
    assert len(window.audio) == pytest.approx(SAMPLE_RATE, abs=32)
    assert float(np.max(np.abs(window.audio))) == pytest.approx(0.5, abs=0.01)


def test_media_paths_stay_inside_the_media_directory(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "course").mkdir(parents=True)
    (media / "course" / "intro.wav").write_bytes(b"x")
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"x")
    (media / "escape.wav").symlink_to(secret)
    (media / "inside.wav").symlink_to(media / "course" / "intro.wav")

    assert resolve_media_path(media, "course/intro.wav") == (media / "course" / "intro.wav").resolve()
    assert resolve_media_path(media, "inside.wav") == (media / "course" / "intro.wav").resolve()
    for outside in ("../secret.wav", "course/../../secret.wav", str(secret), "escape.wav", ".", "/etc/passwd"):
        with pytest.raises(PermissionDenied):
            resolve_media_path(media, outside)
    with pytest.raises(PermissionDenied):
        resolve_media_path(None, "course/intro.wav")
    with pytest.raises(NotFound):
        resolve_media_path(media, "course/missing.wav")
    with pytest.raises(InvalidArgument):
        resolve_media_path(media, "course")
    with pytest.raises(InvalidArgument):
        resolve_media_path(media, "")


def test_urls_must_come_from_an_allowed_origin() -> None:
    allowed = ["https://cdn.example.com", "http://127.0.0.1:8123"]
    assert check_url("https://cdn.example.com/a/lecture.mp4", allowed)
    assert check_url("https://CDN.example.com:443/lecture.mp4?x=1", allowed)
    assert check_url("http://127.0.0.1:8123/clip.wav", allowed)
    for denied in (
        "https://cdn.example.com.evil.test/lecture.mp4",
        "http://cdn.example.com/lecture.mp4",
        "https://cdn.example.com:8443/lecture.mp4",
        "http://127.0.0.1:8124/clip.wav",
        "http://localhost:8123/clip.wav",
    ):
        with pytest.raises(PermissionDenied):
            check_url(denied, allowed)
    for malformed in (
        "file:///etc/passwd",
        "ftp://cdn.example.com/x",
        "cdn.example.com/x",
        "https://u:p@cdn.example.com/x",
    ):
        with pytest.raises(InvalidArgument):
            check_url(malformed, allowed)
    assert origin_of("https://[::1]/x") == "https://[::1]:443"


def test_language_tags_and_names() -> None:
    assert whisper_language("") is None
    assert whisper_language("en-US") == "en"
    assert whisper_language("de_DE") == "de"
    assert whisper_language("jv") == "jw"
    with pytest.raises(InvalidArgument):
        whisper_language("xx")
    assert language_code("english") == "en"
    assert language_code("en") == "en"
    assert language_code("klingon") is None


def test_confidence() -> None:
    assert confidence_from_logprob(0.0) == 1.0
    assert confidence_from_logprob(-0.2) == pytest.approx(math.exp(-0.2), abs=1e-4)
    assert confidence_from_logprob(None) is None
    assert confidence_from_probabilities([0.5, 0.5]) == pytest.approx(0.5, abs=1e-4)
    assert confidence_from_probabilities([]) is None
