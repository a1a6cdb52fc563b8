"""The browser demo in Debian's Chromium (playwright-core), loaded through Envoy from a seeded server.

The chat model is the fake OpenAI-compatible server pacing its tokens, so the answer visibly streams in; the
rest of the stack is real. A screenshot of the finished flow lands in test-artifacts/.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.embeddings.local import LocalEmbedder
from tests.conftest import RunningServer
from tests.edge.conftest import start_module_server, stop_module_server
from tests.edge.support import ROOT, EnvoyProcess, StaticWebServer, run_node
from tests.support.clients import token_for
from tests.support.fake_openai import Behavior, FakeOpenAI

SCRIPT = ROOT / "tests" / "edge" / "browser" / "demo.mjs"
ARTIFACTS = ROOT / "test-artifacts"
# One limited tier for the rate-limit step; the main flow's free tier keeps the usual limits.
LIMITED_TIER = "pro"
# Short sentences: the server releases a model's answer a moderated sentence at a time, so the page should
# grow a sentence at a time while the model writes.
STREAMED_ANSWER = (
    "To center an item on both axes, use flexbox [c1]. Make the parent a flex container. "
    "Set justify-content: center. That centres the main axis. Set align-items: center. "
    "That centres the cross axis. Both work together. The child needs no margin. Margin auto works too. "
    "It is an older trick. Grid can do it as well. Use place-items: center there."
)


@dataclass
class BrowserStack:
    server: RunningServer
    envoy: EnvoyProcess
    fake: FakeOpenAI

    def token(self, tier: str | None = None) -> str:
        return token_for(self.server.settings, f"browser-{uuid.uuid4().hex[:8]}", "student", tier)


@pytest.fixture(scope="module")
async def browser_stack(
    demo_server: RunningServer,
    demo_database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    edge_embedder: LocalEmbedder,
    static_web: StaticWebServer,
) -> AsyncIterator[BrowserStack]:
    """A second replica on the seeded database, its chat model the fake OpenAI-compatible server."""
    workdir = tmp_path_factory.mktemp("browser")
    with FakeOpenAI() as fake:
        running = await start_module_server(
            workdir,
            demo_database_url,
            edge_embedder,
            openai_api_key=fake.api_key,
            openai_base_url=fake.base_url,
            llm_max_retries=0,
            tier_limit_overrides={LIMITED_TIER: {"chat": 1}},
        )
        envoy = EnvoyProcess(workdir, grpc_port=running.server.port, web_port=static_web.port)
        envoy.start()
        try:
            await envoy.wait_ready()
            yield BrowserStack(server=running, envoy=envoy, fake=fake)
        finally:
            envoy.stop()
            await stop_module_server(running)


async def drive(stack: BrowserStack, tmp_path: Path, *steps: str, token: str, screenshot: str = "") -> dict[str, Any]:
    env = {
        "BASE_URL": stack.envoy.base_url,
        "TOKEN": token,
        "VIDEO_ID": "flexbox-layout",
        "USER_DATA_DIR": str(tmp_path / "chromium-profile"),
        "SCREENSHOT": str(ARTIFACTS / screenshot) if screenshot else "",
    }
    return await run_node(SCRIPT, *steps, env=env, limit_seconds=240)


async def test_sign_in_preferences_and_a_streamed_answer_with_citations(
    browser_stack: BrowserStack, tmp_path: Path
) -> None:
    browser_stack.fake.enqueue_chat(Behavior(content=STREAMED_ANSWER, tokens_per_second=12))
    result = await drive(
        browser_stack,
        tmp_path,
        "open",
        "preferences",
        "chat",
        "cite",
        "asked",
        token=browser_stack.token(),
        screenshot="browser-chat.png",
    )
    opened = result["open"]
    assert opened["who"].startswith("browser-") and "student" in opened["who"]
    assert opened["title"] == "CSS Flexbox Layout"
    assert opened["cues"] > 20
    assert "token" not in opened["hash"]
    assert result["preferences"]["personality"] == "3"

    chat = result["chat"]
    assert chat["text"].startswith("To center an item on both axes")
    assert "justify-content: center" in chat["text"]
    # The text grew a sentence at a time, spread over the time the model took to produce it (12 tokens/s).
    growth = [(at, length) for at, length in chat["growth"] if 0 < length < len(chat["text"])]
    assert len(growth) >= 10, f"the answer did not grow incrementally: {chat['growth']}"
    assert growth[-1][0] - growth[0][0] >= 1000, chat["growth"]
    assert chat["citations"] >= 1
    assert "gpt-4o-mini" in chat["meta"]
    start = chat["citationStart"]
    assert result["cite"]["start"] == start
    assert result["cite"]["time"].startswith(f"{int(start) // 60:02d}:{int(start) % 60:02d} / ")
    # The cited line now carries the question's marker, which opens the question and the answer it got.
    asked = result["asked"]
    assert asked["markers"] == 1
    assert asked["cueStart"] <= start
    assert asked["question"] == "How do I center an item with flexbox?"
    assert asked["answer"] == chat["text"]
    assert asked["citations"] == chat["citations"]
    assert result["consoleErrors"] == []
    assert (ARTIFACTS / "browser-chat.png").stat().st_size > 10_000


async def test_quiz_agents_and_an_intervention_from_seeking_back(browser_stack: BrowserStack, tmp_path: Path) -> None:
    result = await drive(
        browser_stack,
        tmp_path,
        "open",
        "quiz",
        "hint",
        "reflect",
        "path",
        "rewatch",
        token=browser_stack.token(),
        screenshot="browser-demo.png",
    )
    quiz = result["quiz"]
    assert quiz["selection"].startswith("Selected ")
    assert quiz["questions"] >= 1
    assert set(quiz["verdicts"]) <= {"Correct", "Not quite"} and len(quiz["verdicts"]) == quiz["questions"]
    assert quiz["score"].endswith(f"of {quiz['questions']} correct ({quiz['questions']} questions)")
    rungs = result["hint"]["rungs"]
    assert [rung["level"].split(" ·")[0] for rung in rungs] == ["Hint 1 of 3", "Hint 2 of 3", "Hint 3 of 3"]
    assert len({rung["text"] for rung in rungs}) == 3 and all(rung["citations"] == 1 for rung in rungs)
    assert [rung["another"] for rung in rungs] == [1, 1, 0]
    assert "the answer is yours to find" in rungs[2]["level"]
    assert result["reflect"]["prompt"]
    assert result["path"]["recommendations"] >= 1
    rewatch = result["rewatch"]
    assert (rewatch["type"], rewatch["reason"]) == ("hint", "REWATCH")
    assert "You went back over" in rewatch["text"]
    assert rewatch["accepted"] is True
    assert result["consoleErrors"] == []
    assert (ARTIFACTS / "browser-demo.png").stat().st_size > 10_000


async def test_pasted_token_signs_in(browser_stack: BrowserStack, tmp_path: Path) -> None:
    result = await drive(browser_stack, tmp_path, "paste", token=browser_stack.token())
    assert result["paste"]["who"].startswith("browser-")


async def test_rejected_token_shows_decoded_error(browser_stack: BrowserStack, tmp_path: Path) -> None:
    result = await drive(browser_stack, tmp_path, "rejected", token=browser_stack.token())
    assert result["rejected"]["reason"] == "INVALID_SIGNATURE"
    assert "Please sign in again" in result["rejected"]["text"]


async def test_rate_limit_is_explained_with_retry_time(browser_stack: BrowserStack, tmp_path: Path) -> None:
    result = await drive(
        browser_stack,
        tmp_path,
        "open",
        "ratelimit",
        token=browser_stack.token(LIMITED_TIER),
        screenshot="browser-rate-limit.png",
    )
    toast = result["ratelimit"]["text"]
    assert "Slow down a little" in toast
    assert "Try again in" in toast
    assert "RESOURCE_EXHAUSTED" in toast
    assert result["ratelimit"]["reason"]
