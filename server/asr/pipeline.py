"""Transcribe one media file window by window with any provider.

Decoding runs in a worker thread, and the next window is decoded only after the current one is
recognised, so memory holds one window (plus the recogniser's own state) at any media
length, and progress counts seconds actually recognised. Silent windows (peak below -50 dBFS) are skipped
without calling the recogniser. The first window with speech fixes the language when none was given.
Windows are recognised without the previous window's text as a prompt: with a cut mid-sentence, Whisper
conditioned on that text tends to repeat it instead of transcribing the new audio.

Segment times are shifted by their window's offset, clamped into the window, and made monotonic and
non-overlapping (a segment starting before the previous one ended starts where it ended).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from pathlib import Path

from server.asr.base import AsrProvider, AsrSegment
from server.asr.media import AudioWindow, iter_windows

MIN_SEGMENT_SECONDS = 0.05
# Called after each window with the seconds of media done so far.
SecondsProgress = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MediaTranscript:
    segments: list[AsrSegment]  # times from the start of the media
    language: str | None
    duration_seconds: float
    windows: int
    speech_windows: int


def _next_window(windows: Generator[AudioWindow, None, None]) -> AudioWindow | None:
    return next(windows, None)


def place_segments(placed: list[AsrSegment], window: AudioWindow, segments: list[AsrSegment]) -> None:
    """Append a window's segments to `placed`, shifted to media time and kept monotonic."""
    window_end = window.offset + window.duration
    for segment in segments:
        previous_end = placed[-1].end if placed else 0.0
        start = max(window.offset + segment.start, previous_end)
        end = min(window.offset + segment.end, window_end)
        if end - start < MIN_SEGMENT_SECONDS:
            if placed:
                last = placed[-1]
                placed[-1] = AsrSegment(last.start, last.end, f"{last.text} {segment.text}", last.confidence)
                continue
            end = start + MIN_SEGMENT_SECONDS
        placed.append(AsrSegment(round(start, 3), round(end, 3), segment.text, segment.confidence))


async def transcribe_media(
    path: Path,
    provider: AsrProvider,
    *,
    language: str | None,
    window_seconds: float,
    max_seconds: float,
    on_progress: SecondsProgress | None = None,
) -> MediaTranscript:
    """Recognise the speech in `path`. Raises InvalidArgument (field `media`) for undecodable media or media
    over `max_seconds`."""
    await provider.prepare()
    size = min(window_seconds, provider.max_window_seconds)
    windows = iter_windows(path, window_seconds=size, max_seconds=max_seconds)
    placed: list[AsrSegment] = []
    detected = language
    position = 0.0
    count = speech = 0
    try:
        while (window := await asyncio.to_thread(_next_window, windows)) is not None:
            count += 1
            if not window.silent:
                result = await provider.transcribe(window.audio, language=detected)
                if result.segments:
                    speech += 1
                    detected = detected or result.language
                    place_segments(placed, window, result.segments)
            position = window.offset + window.duration
            if on_progress is not None:
                await on_progress(position)
    finally:
        windows.close()
    return MediaTranscript(placed, detected, round(position, 3), count, speech)
