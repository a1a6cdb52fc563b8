"""Repeated client cancellations mid-stream: every upstream stream is closed, every partial answer is stored,
and the server's task count and memory stay flat."""

from __future__ import annotations

import asyncio
import gc

import psutil
from tutorstream.v1 import chat_service_pb2 as pb

from tests.chat.conftest import ChatServerFactory, messages_of, new_session
from tests.support.clients import Client
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.waiting import wait_until

WARM_UP = 20
ROUNDS = 200
ANSWER = " ".join(f"token{i}." for i in range(200))


async def cancel_after_first_chunk(client: Client, session: str) -> None:
    call = client.chat.StreamChat(pb.StreamChatRequest(session=session, message="tell me everything"))
    first = await call.read()
    assert first.text
    call.cancel()


async def settle(fake: FakeOpenAI, expected_disconnects: int, baseline_tasks: int | None) -> int:
    """Wait until every upstream stream is closed and the task count stops falling; returns it."""
    assert await fake.wait_for_async(lambda: fake.stream_disconnects >= expected_disconnects, timeout=60)
    assert await fake.wait_for_async(lambda: fake.active_streams == 0, timeout=30)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    count = len(asyncio.all_tasks())
    while loop.time() < deadline:
        await asyncio.sleep(0.2)
        gc.collect()
        current = len(asyncio.all_tasks())
        if current == count and (baseline_tasks is None or current <= baseline_tasks):
            break
        count = current
    return len(asyncio.all_tasks())


async def test_many_cancels_leave_tasks_and_memory_flat(
    chat_server_factory: ChatServerFactory, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(
        rate_chat_per_minute=100_000,
        max_chat_streams_per_user=50,
        daily_token_budget=100_000_000,
        monthly_token_budget=100_000_000,
    )
    fake_openai.default_chat = Behavior(content=ANSWER, tokens_per_second=40)
    client = server.client()
    process = psutil.Process()
    earlier = fake_openai.stream_disconnects

    sessions = [await new_session(client) for _ in range(WARM_UP)]
    for session in sessions:
        await cancel_after_first_chunk(client, session)
    baseline_tasks = await settle(fake_openai, earlier + WARM_UP, None)
    gc.collect()
    baseline_rss = process.memory_info().rss

    sessions = [await new_session(client) for _ in range(ROUNDS)]
    for session in sessions:
        await cancel_after_first_chunk(client, session)
    tasks = await settle(fake_openai, earlier + WARM_UP + ROUNDS, baseline_tasks)
    gc.collect()
    growth_mb = (process.memory_info().rss - baseline_rss) / 2**20

    assert fake_openai.stream_disconnects - earlier == WARM_UP + ROUNDS
    assert fake_openai.completed_streams == 0
    assert tasks <= baseline_tasks + 2, (baseline_tasks, tasks)
    assert growth_mb < 40, f"RSS grew by {growth_mb:.1f} MiB over {ROUNDS} cancelled streams"
    # Every cancelled turn kept its partial answer.
    for session in sessions[-10:]:

        async def answered(session: str = session) -> bool:
            return len(await messages_of(client, session)) == 2

        assert await wait_until(answered)
        stored = await messages_of(client, session)
        assert [m.role for m in stored] == [pb.MESSAGE_ROLE_USER, pb.MESSAGE_ROLE_ASSISTANT]
        assert stored[1].incomplete and stored[1].content.startswith("token0")
