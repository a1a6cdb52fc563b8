"""The Prometheus endpoint of a real server: scraped over HTTP after real RPCs and parsed with prometheus-client's
own parser. The registry is process-wide, so every assertion compares a scrape before with one after."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc import aio
from prometheus_client.parser import text_string_to_metric_families
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import chat_service_pb2 as chat_pb
from tutorstream.v1 import common_pb2
from tutorstream.v1 import transcript_service_pb2 as transcript_pb

from server.core import metrics
from server.core.metrics import JOB_STATUSES, MAX_MODEL_LABELS
from server.llm.cost import cost_usd
from server.transcripts.jobs import QUEUE as TRANSCRIPT_QUEUE
from tests.agents.conftest import generate_quiz
from tests.conftest import RunningServer, ServerFactory
from tests.progress import conftest as progress
from tests.progress.conftest import VIDEO_ID, ProgressServerFactory, event, new_watch_session, played_through, watch
from tests.support.clients import Client
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.ports import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

CHAT = "/tutorstream.v1.ChatService/"
AGENTS = "/tutorstream.v1.AgentService/"
TRANSCRIPTS = "/tutorstream.v1.TranscriptService/"
SAMPLED_WITHIN_SECONDS = 10.0

# A database holding one ingested video, and servers on it, from the progress tests' fixtures.
progress_embedder = progress.progress_embedder
progress_template = progress.progress_template
progress_database_url = progress.progress_database_url
progress_server_factory = progress.progress_server_factory


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


async def scrape(port: int) -> Samples:
    text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def rpc_count(samples: Samples, method: str, code: str) -> float:
    return value(samples, "tutorstream_rpc_duration_seconds_count", method=method, code=code)


async def scrape_until(port: int, holds: Callable[[Samples], bool]) -> Samples:
    """Gauges are sampled by a task in the server's loop every few seconds: scrape until the sample shows."""
    deadline = asyncio.get_running_loop().time() + SAMPLED_WITHIN_SECONDS
    while not holds(samples := await scrape(port)):
        assert asyncio.get_running_loop().time() < deadline, "the sampled value never showed"
        await asyncio.sleep(0.2)
    return samples


def refused(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def samplers() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "metrics-sampler" and not task.done()]


async def status_of(call: Any) -> grpc.StatusCode:
    try:
        await call
    except aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def ask(client: Client, session: str, message: str) -> chat_pb.StreamChatResponse:
    call = client.chat.StreamChat(chat_pb.StreamChatRequest(session=session, message=message))
    chunks: list[chat_pb.StreamChatResponse] = [chunk async for chunk in call]
    return chunks[-1]


@pytest.fixture
async def metered(start_server: ServerFactory, fake_openai: FakeOpenAI) -> RunningServer:
    """A server with metrics on, the fake OpenAI server as its model, no in-process job worker (queued jobs stay
    queued), one `hint` call per user per ten minutes, and breaks suggested after a minute of playback."""
    return await start_server(
        metrics_port=free_port(),
        openai_api_key=fake_openai.api_key,
        openai_base_url=fake_openai.base_url,
        run_workers_in_process=False,
        rate_period_seconds=600.0,
        tier_limit_overrides={"free": {"hint": 1}},
        watch_break_after_seconds=60.0,
    )


async def test_rpc_durations_count_every_call_by_method_and_status(metered: RunningServer) -> None:
    port = metered.server.metrics_port
    client = metered.client()
    before = await scrape(port)

    session = (await client.chat.CreateSession(chat_pb.CreateSessionRequest())).session.name
    await client.chat.GetSession(chat_pb.GetSessionRequest(name=session))
    missing = await status_of(client.chat.GetSession(chat_pb.GetSessionRequest(name="sessions/does-not-exist")))
    anonymous = await status_of(metered.anonymous().chat.ListSessions(chat_pb.ListSessionsRequest()))
    first_hint = await status_of(client.agents.GetHint(agent_pb.GetHintRequest()))
    second_hint = await status_of(client.agents.GetHint(agent_pb.GetHintRequest()))

    after = await scrape(port)
    assert (missing, anonymous, second_hint) == (
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert first_hint != grpc.StatusCode.RESOURCE_EXHAUSTED
    expected = {
        (CHAT + "CreateSession", "OK"): 1,
        (CHAT + "GetSession", "OK"): 1,
        (CHAT + "GetSession", "NOT_FOUND"): 1,
        (CHAT + "ListSessions", "UNAUTHENTICATED"): 1,
        (AGENTS + "GetHint", first_hint.name): 1,
        (AGENTS + "GetHint", "RESOURCE_EXHAUSTED"): 1,
    }
    for (method, code), calls in expected.items():
        assert rpc_count(after, method, code) - rpc_count(before, method, code) == calls, (method, code)
    # Every observation lands in the +Inf bucket; health checks stay out, like the access log.
    inf = value(after, "tutorstream_rpc_duration_seconds_bucket", method=CHAT + "GetSession", code="OK", le="+Inf")
    assert inf == rpc_count(after, CHAT + "GetSession", "OK")
    assert not any(name.startswith("tutorstream_rpc") and "grpc.health" in str(labels) for name, labels in after)
    rejected = "tutorstream_limiter_rejections_total"
    assert value(after, rejected, limit="rate_hint") - value(before, rejected, limit="rate_hint") == 1


async def test_a_chat_turn_records_first_token_tokens_cost_and_the_response_cache(
    metered: RunningServer, fake_openai: FakeOpenAI
) -> None:
    port = metered.server.metrics_port
    client = metered.client()
    model = metered.settings.chat_model
    before = await scrape(port)

    fake_openai.enqueue_chat(Behavior(content="Padding adds to the width.", prompt_tokens=120, completion_tokens=7))
    session = (await client.chat.CreateSession(chat_pb.CreateSessionRequest())).session.name
    fresh = await ask(client, session, "What does padding do?")
    # The same question in a new session is the same request: answered from the response cache.
    other = (await client.chat.CreateSession(chat_pb.CreateSessionRequest())).session.name
    replayed = await ask(client, other, "What does padding do?")

    after = await scrape(port)
    assert (fresh.cached, replayed.cached) == (False, True)
    assert (fresh.usage.prompt_tokens, fresh.usage.completion_tokens) == (120, 7)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    first_token = "tutorstream_chat_time_to_first_token_seconds_count"
    assert delta(first_token, provider="openai") == 1
    assert delta(first_token, provider="cache") == 1
    assert delta(first_token, provider="offline") == 0
    tokens = "tutorstream_llm_tokens_total"
    assert delta(tokens, model=model, operation="chat", kind="prompt") == 120
    assert delta(tokens, model=model, operation="chat", kind="completion") == 7
    expected_cost = cost_usd(metered.settings, model, 120, 7)
    assert expected_cost > 0
    assert delta("tutorstream_llm_cost_usd_total", model=model, operation="chat") == pytest.approx(expected_cost)
    cache = "tutorstream_cache_requests_total"
    assert delta(cache, cache="llm_response", result="miss") == 1
    assert delta(cache, cache="llm_response", result="hit") == 1
    assert delta("tutorstream_rpc_duration_seconds_count", method=CHAT + "StreamChat", code="OK") == 2


async def test_interventions_count_sent_then_each_answer_once(metered: RunningServer) -> None:
    port = metered.server.metrics_port
    client = metered.client()
    watch_session_id = new_watch_session()
    before = await scrape(port)

    responses = await watch(
        client,
        watch_session_id,
        played_through(0.0, 120.0, 0.0),
        video_id="long-lecture",
        duration=7200.0,
        until=lambda got: any(r.WhichOneof("payload") == "intervention" for r in got),
    )
    (intervention,) = [r.intervention for r in responses if r.WhichOneof("payload") == "intervention"]
    assert intervention.type == common_pb2.INTERVENTION_TYPE_BREAK
    answers = [
        event(
            agent_pb.VIDEO_EVENT_TYPE_INTERVENTION_ACCEPTED, 120.0, 130.0, intervention_id=intervention.intervention_id
        ),
        event(
            agent_pb.VIDEO_EVENT_TYPE_INTERVENTION_ACCEPTED, 120.0, 131.0, intervention_id=intervention.intervention_id
        ),
        event(
            agent_pb.VIDEO_EVENT_TYPE_INTERVENTION_DISMISSED, 120.0, 132.0, intervention_id=intervention.intervention_id
        ),
    ]
    published = await client.agents.PublishVideoEvents(
        agent_pb.PublishVideoEventsRequest(watch_session_id=watch_session_id, video_id="long-lecture", events=answers)
    )
    assert published.accepted_count == 3
    await metered.server.runtime.progress.hub.flush()

    after = await scrape(port)
    name = "tutorstream_interventions_total"
    for outcome, count in (("sent", 1), ("accepted", 1), ("dismissed", 1), ("undelivered", 0), ("stale", 0)):
        moved = value(after, name, type="break", outcome=outcome) - value(before, name, type="break", outcome=outcome)
        assert moved == count, outcome


async def test_quiz_cache_lookups_count_a_miss_then_a_hit(progress_server_factory: ProgressServerFactory) -> None:
    running = await progress_server_factory(metrics_port=free_port())
    port = running.server.metrics_port
    before = await scrape(port)

    first = await generate_quiz(running.client("alice"), VIDEO_ID, 0.0, 120.0)
    second = await generate_quiz(running.client("bob"), VIDEO_ID, 0.0, 120.0)

    after = await scrape(port)
    assert (first.quiz.cached, second.quiz.cached) == (False, True)
    name = "tutorstream_cache_requests_total"
    for result in ("miss", "hit"):
        assert value(after, name, cache="quiz", result=result) - value(before, name, cache="quiz", result=result) == 1


async def test_event_loop_tasks_and_job_queue_depth_are_sampled(metered: RunningServer) -> None:
    port = metered.server.metrics_port
    queues = metered.server.runtime.jobs.queues
    samples = await scrape_until(
        port,
        lambda s: all(
            ("tutorstream_job_queue_depth", frozenset({("queue", q), ("status", "todo")})) in s for q in queues
        ),
    )
    assert {
        (dict(labels)["queue"], dict(labels)["status"])
        for name, labels in samples
        if name == "tutorstream_job_queue_depth"
    } >= {(queue, status) for queue in queues for status in JOB_STATUSES}
    assert value(samples, "tutorstream_asyncio_tasks") >= 1
    assert value(samples, "process_resident_memory_bytes") > 0

    queued = value(samples, "tutorstream_job_queue_depth", queue=TRANSCRIPT_QUEUE, status="todo")
    service = metered.client(role="service")
    await service.transcripts.IngestTranscript(
        transcript_pb.IngestTranscriptRequest(
            request_id=f"metrics-{uuid.uuid4().hex[:8]}",
            video_id="metrics-video",
            course_id="metrics-course",
            title="Metrics",
            format=transcript_pb.TRANSCRIPT_FORMAT_WEBVTT,
            content="WEBVTT\n\n00:00:01.000 --> 00:00:04.000\nA queued transcript.\n",
            language="en",
            duration_seconds=4.0,
        )
    )
    # No worker runs in this process: the job waits in the queue and the next sample counts it.
    await scrape_until(
        port, lambda s: value(s, "tutorstream_job_queue_depth", queue=TRANSCRIPT_QUEUE, status="todo") == queued + 1
    )


async def test_metrics_port_zero_serves_nothing(start_server: ServerFactory) -> None:
    running = await start_server()
    assert running.settings.metrics_port == 0
    assert running.server.metrics_port == 0
    assert not samplers()


async def test_the_endpoint_closes_on_stop_and_its_port_can_be_bound_again(start_server: ServerFactory) -> None:
    port = free_port()
    first = await start_server(metrics_port=port)
    # A second server in the same process shares the collectors instead of registering them twice.
    second = await start_server(metrics_port=free_port())
    assert first.server.metrics_port == port
    assert value(await scrape(second.server.metrics_port), "tutorstream_asyncio_tasks") >= 1

    await first.server.stop(0)
    assert refused(port)
    assert len(samplers()) == 1

    again = await start_server(metrics_port=port)
    assert again.server.metrics_port == port
    assert "tutorstream_asyncio_tasks" in {name for name, _ in await scrape(port)}
    await again.server.stop(0)
    await second.server.stop(0)
    assert refused(port) and refused(second.server.metrics_port)
    assert not samplers()


def test_model_labels_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_models_seen", set())
    labels = [metrics._model_label(f"model-{index}") for index in range(MAX_MODEL_LABELS + 3)]
    assert labels == [f"model-{index}" for index in range(MAX_MODEL_LABELS)] + ["other"] * 3
    assert metrics._model_label("model-0") == "model-0"
