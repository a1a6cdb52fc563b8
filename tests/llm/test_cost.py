"""Pricing token usage."""

from __future__ import annotations

import pytest

from server.config import Settings
from server.llm.cost import cost_usd, estimate_tokens, resolve_price_model
from server.llm.tokens import counter_for


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_prices_prompt_and_completion_tokens(settings: Settings) -> None:
    # gpt-4o-mini: $0.15 per 1M input tokens, $0.60 per 1M output tokens.
    assert cost_usd(settings, "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd(settings, "gpt-4o-mini", 2_000, 500) == pytest.approx(0.0006)


def test_dated_snapshots_are_priced_as_their_family(settings: Settings) -> None:
    assert cost_usd(settings, "gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(0.15)
    assert cost_usd(settings, "gpt-4o-2024-08-06", 1_000_000, 0) == pytest.approx(2.50)


def test_unpriced_models_cost_nothing(settings: Settings) -> None:
    assert cost_usd(settings, "offline-extractive", 10_000, 10_000) == 0.0
    assert cost_usd(settings, "some-local-model", 10_000, 10_000) == 0.0


def test_configured_prices_override_defaults() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, model_prices={"house-model": {"input_per_million": 1.0, "output_per_million": 2.0}}
    )
    assert cost_usd(settings, "house-model", 500_000, 250_000) == pytest.approx(1.0)


def test_resolves_the_longest_matching_family(settings: Settings) -> None:
    assert resolve_price_model(settings, "gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert resolve_price_model(settings, "gpt-4o") == "gpt-4o"
    assert resolve_price_model(settings, "gpt-4omni") == "gpt-4omni"


def test_estimate_is_generous() -> None:
    text = "The gradient points in the direction of steepest ascent. " * 20
    assert estimate_tokens(text) >= counter_for("gpt-4o-mini").count(text)
    assert estimate_tokens("") == 1
