"""Pricing token usage in USD (per-model counting lives in `server.llm.tokens`)."""

from __future__ import annotations

from dataclasses import dataclass

from server.config import Settings


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of one answer (or of several, added up)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_usd + other.cost_usd,
        )


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
