"""Decode media with PyAV (FFmpeg) into 16 kHz mono windows, without holding the whole file in memory.

`probe_media` is the quick check done during the RPC: the container opens, has an audio stream, decodes,
and its duration (when the container states one) is within the limit. `iter_windows` then streams the audio
through a resampler and yields windows of at most `window_seconds`, each cut in the longest pause of its
last `CUT_SEARCH_SECONDS`, so a sentence is rarely split between two windows. Memory stays at one window
plus one decoded frame, whatever the media's length. The duration limit is enforced again while decoding,
for containers that state no duration or state a wrong one.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

from server.asr.base import SAMPLE_RATE, Audio
from server.core.errors import InvalidArgument

# A window is cut in the longest pause of its last seconds, judged on 20 ms frames.
CUT_SEARCH_SECONDS = 5.0
CUT_FRAME_SECONDS = 0.02
QUIET_FRAME_RMS = 10 ** (-45 / 20)
# Peak amplitude below which a window counts as silent (-50 dBFS): it is not sent to the recogniser.
SILENCE_PEAK = 10 ** (-50 / 20)
# Trailing audio shorter than this is too short to hold a word.
MIN_WINDOW_SECONDS = 0.1
# The probe decodes at most this much audio to prove the stream decodes.
PROBE_DECODE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class MediaInfo:
    container: str
    codec: str
    duration_seconds: float | None  # None when the container does not say


@dataclass(frozen=True, slots=True)
class AudioWindow:
    offset: float  # seconds from the start of the media
    audio: Audio

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def silent(self) -> bool:
        return len(self.audio) == 0 or float(np.max(np.abs(self.audio))) < SILENCE_PEAK


def _decoder_error(error: Exception, field: str) -> InvalidArgument:
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return InvalidArgument.field(field, f"the media cannot be decoded: {reason}", reason="MEDIA_UNDECODABLE")


def _too_long(seconds: float, limit: float, field: str) -> InvalidArgument:
    return InvalidArgument.field(
        field, f"the media lasts {seconds:.0f} s; the limit is {limit:.0f} s", reason="MEDIA_TOO_LONG"
    )


def _open(path: Path, field: str) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise _decoder_error(error, field) from None


def _audio_stream(container: av.container.InputContainer, field: str) -> av.audio.stream.AudioStream:
    if not container.streams.audio:
        raise InvalidArgument.field(field, "the media has no audio stream", reason="MEDIA_WITHOUT_AUDIO")
    return container.streams.audio[0]


def _duration(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def probe_media(path: Path, *, max_seconds: float, field: str = "media") -> MediaInfo:
    """Check that `path` is decodable audio within the duration limit; InvalidArgument with the decoder's
    reason otherwise."""
    with _open(path, field) as container:
        stream = _audio_stream(container, field)
        duration = _duration(container, stream)
        if duration is not None and duration > max_seconds:
            raise _too_long(duration, max_seconds, field)
        decoded = 0.0
        try:
            for frame in container.decode(stream):
                decoded += frame.samples / (frame.sample_rate or SAMPLE_RATE)
                if decoded >= PROBE_DECODE_SECONDS:
                    break
        except (av.error.FFmpegError, ValueError) as error:
            raise _decoder_error(error, field) from None
        if decoded == 0.0:
            raise InvalidArgument.field(field, "the audio stream holds no audio", reason="MEDIA_UNDECODABLE")
        codec = stream.codec_context.name if stream.codec_context is not None else "unknown"
        return MediaInfo(container=container.format.name, codec=codec, duration_seconds=duration)


def _decoded_chunks(path: Path, max_seconds: float, field: str) -> Generator[Audio, None, None]:
    """16 kHz mono float32 pieces of the whole audio stream, in order."""
    with _open(path, field) as container:
        stream = _audio_stream(container, field)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        produced = 0
        limit = math.ceil(max_seconds * SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    produced += len(chunk)
                    if produced > limit:
                        raise _too_long(produced / SAMPLE_RATE, max_seconds, field)
                    yield chunk
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        except (av.error.FFmpegError, ValueError) as error:
            raise _decoder_error(error, field) from None


def pause_cut(audio: Audio, earliest: int) -> int:
    """Where to cut `audio` at or after sample `earliest`: the middle of the longest pause there (a run of
    20 ms frames quieter than -45 dBFS RMS, or within 6 dB of the quietest frame), so a cut falls between
    sentences rather than between words; the later pause wins a tie, keeping windows long."""
    frame = int(CUT_FRAME_SECONDS * SAMPLE_RATE)
    region = audio[earliest:]
    frames = len(region) // frame
    if frames < 2:
        return len(audio)
    energy = np.square(region[: frames * frame].astype(np.float64)).reshape(frames, frame).mean(axis=1)
    quiet = energy <= max(float(energy.min()) * 4.0, QUIET_FRAME_RMS**2)
    best_start, best_length, run_start = 0, 0, -1
    for index, is_quiet in enumerate([*quiet.tolist(), False]):
        if is_quiet and run_start < 0:
            run_start = index
        elif not is_quiet and run_start >= 0:
            if index - run_start >= best_length:
                best_start, best_length = run_start, index - run_start
            run_start = -1
    middle = best_start + best_length // 2
    return earliest + middle * frame + frame // 2


def windows_from_chunks(chunks: Iterator[Audio], window_seconds: float) -> Iterator[AudioWindow]:
    """Regroup decoded pieces into windows of at most `window_seconds`, cut at quiet moments."""
    window = int(window_seconds * SAMPLE_RATE)
    search = min(int(CUT_SEARCH_SECONDS * SAMPLE_RATE), window // 2)
    pending: list[Audio] = []
    pending_samples = 0
    consumed = 0
    for chunk in chunks:
        pending.append(chunk)
        pending_samples += len(chunk)
        while pending_samples >= window:
            buffer = np.concatenate(pending)
            cut = pause_cut(buffer[:window], window - search)
            yield AudioWindow(offset=consumed / SAMPLE_RATE, audio=buffer[:cut].copy())
            consumed += cut
            rest = buffer[cut:]
            pending, pending_samples = [rest], len(rest)
    if pending_samples >= MIN_WINDOW_SECONDS * SAMPLE_RATE:
        yield AudioWindow(offset=consumed / SAMPLE_RATE, audio=np.concatenate(pending))


def iter_windows(
    path: Path, *, window_seconds: float, max_seconds: float, field: str = "media"
) -> Generator[AudioWindow, None, None]:
    """The media's audio as consecutive windows (16 kHz mono float32) with their offsets; closing the
    generator closes the media."""
    chunks = _decoded_chunks(path, max_seconds, field)
    try:
        yield from windows_from_chunks(chunks, window_seconds)
    finally:
        chunks.close()


def encode_wav(audio: Audio) -> bytes:
    """16-bit PCM WAV of 16 kHz mono samples (what hosted transcription endpoints accept)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    header = b"".join(
        (
            b"RIFF",
            (36 + len(pcm)).to_bytes(4, "little"),
            b"WAVEfmt ",
            (16).to_bytes(4, "little"),
            (1).to_bytes(2, "little"),  # PCM
            (1).to_bytes(2, "little"),  # mono
            SAMPLE_RATE.to_bytes(4, "little"),
            (SAMPLE_RATE * 2).to_bytes(4, "little"),
            (2).to_bytes(2, "little"),
            (16).to_bytes(2, "little"),
            b"data",
            len(pcm).to_bytes(4, "little"),
        )
    )
    return header + pcm
