"""A student whose remaining tokens cannot hold a turn's upper bound is not refused for it: a cached answer is
replayed at no cost, a real turn is fitted to what is left (fewer excerpts, a shorter answer), and only a turn
that cannot fit even a minimal answer is refused (served by the fake OpenAI server, budgets in PostgreSQL)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc import aio
from tutorstream.v1 import agent_service_pb2 as agent_pb

from server.chat.turn import MIN_ANSWER_TOKENS
from server.core.auth import Principal, Role, Tier
from server.llm.persona import MAX_ANSWER_TOKENS
from tests.chat.conftest import ChatServerFactory, answer_text, ask, learning_context, new_session
from tests.conftest import RunningServer
from tests.support.clients import error_details
from tests.support.fake_openai import Behavior, FakeOpenAI

# Below any turn's upper bound (the excerpt budget alone is 2,500 tokens), above a real turn with a few excerpts.
FREE_DAILY = 1_500
CONTEXT = learning_context("flexbox-layout", 100.0)
QUESTION = "What does justify-content control in a flex container?"


def excerpts(body: dict[str, Any]) -> int:
    return str(body["messages"][0]["content"]).count("<transcript_chunk ")


def answer_limit(body: dict[str, Any]) -> int:
    return int(body.get("max_completion_tokens") or body["max_tokens"])


async def used_today(server: RunningServer, user_id: str) -> int:
    windows = await server.server.runtime.budget.status(user_id, "free")
    return windows[0].tokens_used + windows[0].tokens_reserved


async def spend(server: RunningServer, user_id: str, tokens: int) -> None:
    budget = server.server.runtime.budget
    reservation = await budget.reserve(Principal(user_id, Role.STUDENT, Tier.FREE), tokens, operation="chat")
    await reservation.commit(model="gpt-4o-mini", prompt_tokens=tokens, completion_tokens=0, cost_usd=0.0)


@pytest.fixture
async def server(chat_server_factory: ChatServerFactory, course_database_url: str) -> RunningServer:
    return await chat_server_factory(
        database_url=course_database_url, daily_token_budget=FREE_DAILY, tier_budget_multipliers={"pro": 20.0}
    )


async def test_a_turn_is_fitted_to_a_budget_below_its_upper_bound(
    server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    rich, poor = server.client(tier="pro"), server.client()
    fake_openai.enqueue_chat(Behavior(content="It spreads items along the main axis [c1]."))
    await ask(rich, await new_session(rich, CONTEXT), QUESTION)
    full = fake_openai.chat_requests[-1].body

    fake_openai.enqueue_chat(Behavior(content="Along the main axis [c1]."))
    deltas, final = await ask(poor, await new_session(poor, CONTEXT), f"{QUESTION} Briefly.")

    assert answer_text(deltas) == "Along the main axis [c1]."
    assert not final.cached and final.usage.total_tokens > 0
    fitted = fake_openai.chat_requests[-1].body
    assert 1 <= excerpts(fitted) < excerpts(full), "fewer excerpts, but still some lecture to answer from"
    assert MIN_ANSWER_TOKENS <= answer_limit(fitted) <= answer_limit(full) <= MAX_ANSWER_TOKENS
    assert await used_today(server, poor.user_id) <= FREE_DAILY


async def test_a_cached_answer_is_replayed_to_a_student_with_no_tokens_left(
    server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    rich, broke = server.client(tier="pro"), server.client()
    fake_openai.enqueue_chat(Behavior(content="It spreads items along the main axis [c1]."))
    _, first = await ask(rich, await new_session(rich, CONTEXT), QUESTION)
    await spend(server, broke.user_id, FREE_DAILY - 5)
    calls = len(fake_openai.chat_requests)

    deltas, final = await ask(broke, await new_session(broke, CONTEXT), QUESTION)

    assert answer_text(deltas) == "It spreads items along the main axis [c1]."
    assert final.cached and final.usage.total_tokens == 0 and not first.cached
    assert len(fake_openai.chat_requests) == calls
    assert await used_today(server, broke.user_id) == FREE_DAILY - 5


async def test_a_turn_that_cannot_fit_a_minimal_answer_is_refused_before_the_call(
    server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    broke = server.client()
    await spend(server, broke.user_id, FREE_DAILY - MIN_ANSWER_TOKENS)
    session = await new_session(broke, CONTEXT)
    calls = len(fake_openai.chat_requests)

    with pytest.raises(aio.AioRpcError) as refused:
        await ask(broke, session, "Which value of justify-content leaves equal gaps everywhere?")

    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = error_details(refused.value)
    assert details["ErrorInfo"].reason == "TOKEN_BUDGET_EXHAUSTED"
    assert "daily token budget of 1500 exceeded" in (refused.value.details() or "")
    assert len(fake_openai.chat_requests) == calls
    assert await used_today(server, broke.user_id) == FREE_DAILY - MIN_ANSWER_TOKENS


async def test_a_cheaper_model_answers_once_the_budget_runs_low(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    """BUDGET_FALLBACK_MODEL: chat and agents ask the fallback model once less than BUDGET_FALLBACK_BELOW of a
    budget would be left, the configured model before; the answer is stored and priced as the fallback's."""
    server = await chat_server_factory(
        database_url=course_database_url,
        daily_token_budget=40_000,
        budget_fallback_model="gpt-4.1-nano",
        budget_fallback_below=0.5,
        model_prices={
            "gpt-4o-mini": {"input_per_million": 0.15, "output_per_million": 0.6},
            "gpt-4.1-nano": {"input_per_million": 0.1, "output_per_million": 0.4},
        },
    )
    student = server.client()
    session = await new_session(student, CONTEXT)
    fake_openai.enqueue_chat(Behavior(content="It spreads items along the main axis [c1]."))
    _, plenty = await ask(student, session, QUESTION)
    assert plenty.model == "gpt-4o-mini"
    assert fake_openai.chat_requests[-1].body["model"] == "gpt-4o-mini"

    await spend(server, student.user_id, 20_000)
    fake_openai.enqueue_chat(Behavior(content="Along the main axis [c1]."))
    _, low = await ask(student, session, f"{QUESTION} Again?")
    assert fake_openai.chat_requests[-1].body["model"] == "gpt-4.1-nano"
    assert low.model == "gpt-4.1-nano" and low.usage.total_tokens > 0
    assert low.usage.cost_usd == pytest.approx(
        (low.usage.prompt_tokens * 0.1 + low.usage.completion_tokens * 0.4) / 1_000_000
    )

    # An agent's structured call takes the same turn.
    fake_openai.enqueue_chat(Behavior(content="{not json"), Behavior(content="{not json"))
    await student.agents.GetHint(agent_pb.GetHintRequest(learning_context=CONTEXT))
    assert fake_openai.chat_requests[-1].body["model"] == "gpt-4.1-nano"
