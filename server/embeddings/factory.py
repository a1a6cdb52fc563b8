"""Choose the embedder from settings."""

from __future__ import annotations

from server.config import Settings
from server.embeddings.base import Embedder
from server.embeddings.local import LocalEmbedder
from server.embeddings.openai_embedder import OpenAIEmbedder

PROVIDERS = ("auto", "local", "openai")


def build_embedder(settings: Settings) -> Embedder:
    """`auto` picks OpenAI when an API key is configured and the bundled local model otherwise.

    Construction is cheap: the local model loads on first use (or `warm_up()`), the OpenAI client connects
    on first request.
    """
    provider = settings.embedding_provider.strip().lower()
    if provider not in PROVIDERS:
        raise ValueError(f"EMBEDDING_PROVIDER must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    if provider == "auto":
        provider = "openai" if settings.llm_enabled else "local"
    if provider == "openai":
        if not settings.llm_enabled:
            raise ValueError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY")
        return OpenAIEmbedder(settings)
    return LocalEmbedder(settings.local_embedding_model)
