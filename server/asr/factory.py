"""The configured speech-to-text provider (ASR_PROVIDER): local faster-whisper by default, so a server with
no key and no network can still transcribe."""

from __future__ import annotations

from server.asr.base import AsrProvider
from server.asr.local_whisper import LocalWhisper
from server.asr.openai_asr import OpenAITranscriber
from server.config import Settings

PROVIDERS = ("local", "openai")


def build_asr_provider(settings: Settings) -> AsrProvider:
    choice = settings.asr_provider.strip().lower()
    if choice == "local":
        return LocalWhisper(
            model_dir=settings.asr_model_dir,
            data_dir=settings.data_dir,
            compute_type=settings.asr_compute_type,
            cpu_threads=settings.asr_cpu_threads,
            beam_size=settings.asr_beam_size,
            vad_filter=settings.asr_vad_filter,
            max_concurrent=settings.asr_max_concurrent,
        )
    if choice == "openai":
        if not settings.llm_enabled or settings.openai_api_key is None:
            raise ValueError("ASR_PROVIDER=openai needs OPENAI_API_KEY")
        return OpenAITranscriber(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.asr_openai_base_url or settings.openai_base_url,
            model=settings.asr_openai_model,
            timeout_seconds=settings.llm_timeout_seconds,
            max_retries=settings.llm_max_retries,
        )
    raise ValueError(f"ASR_PROVIDER must be one of {', '.join(PROVIDERS)}, not {settings.asr_provider!r}")
