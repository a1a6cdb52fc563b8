"""Local speech to text: Whisper in CTranslate2 format run by faster-whisper on the CPU, no network.

The model is loaded once per process (every provider with the same model directory and options shares it)
and runs in a worker thread; CTranslate2 releases the GIL, so the event loop keeps serving. A semaphore
caps concurrent transcriptions (ASR_MAX_CONCURRENT), since each one already uses `cpu_threads` cores.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from pathlib import Path

from faster_whisper import WhisperModel

from server.asr.base import (
    SAMPLE_RATE,
    AsrSegment,
    Audio,
    WindowTranscript,
    confidence_from_logprob,
    confidence_from_probabilities,
)
from server.asr.model_assembly import resolve_model

logger = logging.getLogger(__name__)

# Whisper's own input window; longer windows gain nothing locally.
WHISPER_WINDOW_SECONDS = 30.0
DEFAULT_MAX_THREADS = 4
_load_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _load_model(directory: str, compute_type: str, cpu_threads: int) -> WhisperModel:
    logger.info("loading the Whisper model from %s (%s, %d threads)", directory, compute_type, cpu_threads)
    return WhisperModel(directory, device="cpu", compute_type=compute_type, cpu_threads=cpu_threads)


def default_threads() -> int:
    return max(1, min(DEFAULT_MAX_THREADS, os.cpu_count() or 1))


class LocalWhisper:
    def __init__(
        self,
        *,
        model_dir: Path | None,
        data_dir: Path,
        compute_type: str = "int8",
        cpu_threads: int = 0,
        beam_size: int = 1,
        vad_filter: bool = True,
        max_concurrent: int = 1,
    ) -> None:
        self._configured_dir = model_dir
        self._data_dir = data_dir
        self._compute_type = compute_type
        self._cpu_threads = cpu_threads or default_threads()
        self._beam_size = beam_size
        self._vad_filter = vad_filter
        self._slots = asyncio.Semaphore(max_concurrent)
        self._model: WhisperModel | None = None
        self._model_id = "whisper"

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def max_window_seconds(self) -> float:
        return WHISPER_WINDOW_SECONDS

    def _ensure_model(self) -> WhisperModel:
        if self._model is None:
            with _load_lock:
                directory, self._model_id = resolve_model(self._configured_dir, self._data_dir)
                self._model = _load_model(str(directory), self._compute_type, self._cpu_threads)
        return self._model

    async def prepare(self) -> None:
        if self._model is None:
            await asyncio.to_thread(self._ensure_model)

    def _transcribe_sync(self, audio: Audio, language: str | None) -> WindowTranscript:
        model = self._ensure_model()
        segments, info = model.transcribe(
            audio,
            language=language,
            beam_size=self._beam_size,
            vad_filter=self._vad_filter,
            condition_on_previous_text=True,
            # Word timings give each segment its own confidence (faster-whisper's avg_logprob is shared by
            # every segment of one decoding pass) and tighter segment edges.
            word_timestamps=True,
        )
        window = len(audio) / SAMPLE_RATE
        recognised = [
            AsrSegment(
                start=max(0.0, float(segment.start)),
                end=min(window, float(segment.end)),
                text=segment.text.strip(),
                confidence=confidence_from_probabilities([word.probability for word in segment.words or []])
                or confidence_from_logprob(segment.avg_logprob),
            )
            for segment in segments
        ]
        recognised = [segment for segment in recognised if segment.text]
        return WindowTranscript(recognised, language=info.language if recognised else language)

    async def transcribe(self, audio: Audio, *, language: str | None) -> WindowTranscript:
        async with self._slots:
            return await asyncio.to_thread(self._transcribe_sync, audio, language)
