"""Hosted speech to text through the OpenAI SDK's `audio.transcriptions` (`verbose_json` with segments),
against any OpenAI-compatible base URL (OpenAI itself, or a self-hosted Whisper server).

Each window is sent as a 16-bit 16 kHz mono WAV (600 s is 19.2 MB, under the API's 25 MB limit). The SDK
retries 429 and 5xx itself; what still fails is raised as a plain error, so the job is retried later, except
answers that no retry can change (bad key, unknown model, rejected audio), which fail the job with the
upstream's message. The model must return segments (`whisper-1` does).
"""

from __future__ import annotations

from typing import Any

import openai
from openai import AsyncOpenAI

from server.asr.base import SAMPLE_RATE, AsrSegment, Audio, WindowTranscript, confidence_from_logprob
from server.asr.languages import language_code
from server.asr.media import encode_wav
from server.core.errors import FailedPrecondition

MAX_WINDOW_SECONDS = 600.0
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 413, 415, 422})


class OpenAITranscriber:
    def __init__(
        self, *, api_key: str, base_url: str | None, model: str, timeout_seconds: float, max_retries: int
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._model = model
        self._timeout = timeout_seconds
        self._max_retries = max_retries

    @property
    def model_id(self) -> str:
        return self._model

    @property
    def max_window_seconds(self) -> float:
        return MAX_WINDOW_SECONDS

    async def prepare(self) -> None:
        return None

    async def transcribe(self, audio: Audio, *, language: str | None) -> WindowTranscript:
        options: dict[str, Any] = {}
        if language:
            options["language"] = language
        async with AsyncOpenAI(
            api_key=self._api_key, base_url=self._base_url, timeout=self._timeout, max_retries=self._max_retries
        ) as client:
            try:
                result = await client.audio.transcriptions.create(
                    file=("window.wav", encode_wav(audio), "audio/wav"),
                    model=self._model,
                    response_format="verbose_json",
                    timestamp_granularities=["segment"],
                    **options,
                )
            except openai.APIStatusError as error:
                if error.status_code in PERMANENT_STATUSES:
                    raise FailedPrecondition(
                        f"the transcription service refused the audio ({error.status_code}): {error.message}",
                        reason="ASR_UPSTREAM_REFUSED",
                    ) from None
                raise
        window = len(audio) / SAMPLE_RATE
        segments = [
            AsrSegment(
                start=max(0.0, float(segment.start)),
                end=min(window, float(segment.end)),
                text=segment.text.strip(),
                confidence=confidence_from_logprob(segment.avg_logprob),
            )
            for segment in result.segments or []
        ]
        if result.segments is None and result.text.strip():
            raise FailedPrecondition(
                f"the transcription model {self._model!r} returned no segments; use a model with verbose_json "
                "segments such as whisper-1",
                reason="ASR_NO_SEGMENTS",
            )
        segments = [segment for segment in segments if segment.text and segment.end > segment.start]
        return WindowTranscript(segments, language=language_code(result.language) or language)
