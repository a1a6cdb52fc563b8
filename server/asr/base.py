"""The speech-to-text provider interface.

A provider recognises one *window* of audio at a time: 16 kHz mono float32 samples, at most
`max_window_seconds` long, with times in the segments relative to the window's start. The caller (server.asr
.pipeline) decodes the media, cuts the windows, shifts the segments by each window's offset and reports
progress, so every provider gets bounded memory and real progress for free.

Confidence of a segment, 0 to 1: the geometric mean of its words' probabilities (local Whisper, which
computes word timings for it), or `exp(avg_logprob)`, the geometric mean of its token probabilities, where
a provider reports only that (OpenAI `verbose_json`). None when a provider gives nothing to base it on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class AsrSegment:
    """One recognised stretch of speech; times in seconds from the start of its window."""

    start: float
    end: float
    text: str
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class WindowTranscript:
    segments: list[AsrSegment]
    # ISO 639-1 code of the language recognised (given or detected); None when nothing was recognised.
    language: str | None = None


class AsrProvider(Protocol):
    @property
    def model_id(self) -> str:
        """The model, as stored in a transcript's source: `asr:{model_id}`."""
        ...

    @property
    def max_window_seconds(self) -> float:
        """The longest window `transcribe` accepts."""
        ...

    async def prepare(self) -> None:
        """Make the provider ready (load a model); called before the first window of every job."""
        ...

    async def transcribe(self, audio: Audio, *, language: str | None) -> WindowTranscript:
        """Recognise one window. `language` None: detect it."""
        ...


def confidence_from_logprob(avg_logprob: float | None) -> float | None:
    if avg_logprob is None or not math.isfinite(avg_logprob):
        return None
    return round(min(1.0, max(0.0, math.exp(avg_logprob))), 4)


def confidence_from_probabilities(probabilities: list[float]) -> float | None:
    """Geometric mean of word probabilities."""
    if not probabilities:
        return None
    logs = [math.log(max(probability, 1e-6)) for probability in probabilities]
    return confidence_from_logprob(sum(logs) / len(logs))
