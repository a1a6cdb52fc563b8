"""Pricing token usage in USD (per-model counting lives in `server.llm.tokens`)."""

from __future__ import annotations

from server.config import Settings


def estimate_tokens(text: str) -> int:
    """A deliberately generous estimate (English averages ~4 characters per token) for when no tokenizer is
    available: budgets and request limits then err on the safe side."""
    return len(text) // 3 + 1


def resolve_price_model(settings: Settings, model: str) -> str:
    """Upstreams answer with dated snapshots (`gpt-4o-mini-2024-07-18`); price them as their family."""
    if model in settings.model_prices:
        return model
    families = [name for name in settings.model_prices if model.startswith(name + "-")]
    return max(families, key=len) if families else model


def cost_usd(settings: Settings, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD for one call; 0.0 for models without a configured price."""
    input_per_million, output_per_million = settings.price_for(resolve_price_model(settings, model))
    return (prompt_tokens * input_per_million + completion_tokens * output_per_million) / 1_000_000
