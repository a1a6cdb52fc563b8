"""StreamChat relay overhead: time to first token and token relay rate, through tutorstream vs direct.

    python -m bench.bench_chat [--ttft-runs 200] [--rate-runs 8] [--rate-tokens 400] [--tokens-per-second 400]
        [--moderation-runs 30] [--model-tokens-per-second 50] [--paced-runs 20] [--model-first-token-ms 400]
        [--moderation-ms 200]

Three processes: the OpenAI-compatible test server (tests/support/fake_openai.py) as the upstream, a real
tutorstream server (embedded PostgreSQL, limits, budget, persistence, retrieval: everything on), and this
client. Both paths send the same prompt to the same upstream: the direct path with the official `openai` SDK
(exactly as tutorstream's provider calls it), the tutorstream path as a StreamChat call. Runs alternate, so
drift hits both alike.

Time to first token is split at the moment the upstream receives the chat request (the upstream records it
with the same monotonic clock, which Linux shares between processes):
- before: what tutorstream does before it calls the model (store the question; retrieval, preferences and
  the budget reservation concurrently) — work a direct call does not do, reported on its own;
- after: upstream arrival -> first token at the client. Direct: one hop (upstream -> client) plus the SDK's
  SSE parsing. Through tutorstream: the same hop and parsing into the server, then the relay and the gRPC hop
  to the client. The difference is the TTFT the relay adds (target: <= 1 ms p50, <= 5 ms p99).
The floor of "before": one query embedding (the SDK's `embeddings.create` against the same upstream, as the
server embeds a question) and one database round trip (`SELECT 1` on a pooled connection to the same database),
timed back to back in this process, alternating with the other runs; "before" is reported as a multiple of it
(target <= 1.3x), and the whole TTFT as a multiple of the direct one (target <= 3x).
At a model's pace: the upstream holds its first token back `--model-first-token-ms` and every moderation
answer `--moderation-ms`, as a hosted model and moderation endpoint roughly do; through vs direct then shows
what a student waits beyond the model itself (the question is moderated while the model already answers).
The end of a turn: last token -> end of the stream. Through tutorstream that is the answer and its interaction
stored and the budget settled before the final chunk (which carries their ids); direct, the usage chunk.
Relay rate: tokens per second between the first and the last token while the upstream streams at a fixed
rate (target: >= 0.99x direct). The benchmarked server relays tokens as they come (MODERATE_STREAMED_ANSWERS
off); a third server with it on (the default) answers the same three-sentence answer streamed at a model's pace,
for the time to first token that releasing a moderated sentence at a time adds.

Ends with the published lines (bench.report): the added TTFT p50 and p99 and the rate ratio against their
targets, the absolute TTFTs for context.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from openai import AsyncOpenAI
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tutorstream.v1 import chat_service_pb2 as pb
from tutorstream.v1 import chat_service_pb2_grpc as pb_grpc

from bench.report import Line, at_least, at_most, context, percentile, publish
from server.config import Settings
from server.core.auth import Role, mint_token
from server.core.db import normalize_database_url
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.ports import free_port
from tests.support.postgres import create_migrated_database, start_embedded_for_tests

JWT_SECRET = "bench-secret-" + "x" * 40
EMBEDDING_MODEL = Settings.model_fields["openai_embedding_model"].default
MODERATED_ANSWER = (
    "Flex containers lay out their children along one axis. Items can grow and shrink to fill it. "
    "Wrapping onto more lines is optional."
)
REPO_ROOT = Path(__file__).resolve().parent.parent


# --- the upstream process ---------------------------------------------------------------------------------


class TimedFakeOpenAI(FakeOpenAI):
    """The test server, also noting when each chat request arrived (time.perf_counter)."""

    def __init__(self) -> None:
        self.chat_arrivals: list[float] = []
        super().__init__()

    def _record(self, request: web.Request, body: dict[str, Any]) -> str:
        if request.path.endswith("/chat/completions"):
            self.chat_arrivals.append(time.perf_counter())
        return super()._record(request, body)


def serve_upstream(control_port: int) -> None:
    """Run the test server plus a small control API (behaviour, arrival times) until terminated."""
    fake = TimedFakeOpenAI().start()

    async def info(request: web.Request) -> web.Response:
        return web.json_response({"base_url": fake.base_url, "api_key": fake.api_key})

    async def behave(request: web.Request) -> web.Response:
        fake.default_chat = Behavior(**await request.json())
        return web.json_response({})

    async def moderate(request: web.Request) -> web.Response:
        fake.moderation_delay = float((await request.json())["delay"])
        return web.json_response({})

    async def last_chat(request: web.Request) -> web.Response:
        requests = fake.chat_requests
        return web.json_response(
            {"count": len(fake.chat_arrivals), "arrival": fake.chat_arrivals[-1], "body": requests[-1].body}
        )

    app = web.Application()
    app.router.add_get("/info", info)
    app.router.add_post("/behavior", behave)
    app.router.add_post("/moderation", moderate)
    app.router.add_get("/last-chat", last_chat)
    web.run_app(app, host="127.0.0.1", port=control_port, print=None, access_log=None)


class Upstream:
    """The bench's handle on the upstream process."""

    def __init__(self, control_port: int) -> None:
        self._http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{control_port}", timeout=10)
        self.base_url = ""
        self.api_key = ""

    async def connect(self, process: subprocess.Popen[bytes]) -> None:
        for _ in range(200):
            if process.poll() is not None:
                raise RuntimeError("the upstream process exited")
            with contextlib.suppress(httpx.HTTPError):
                info = (await self._http.get("/info")).json()
                self.base_url, self.api_key = info["base_url"], info["api_key"]
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("the upstream process did not start")

    async def behave(self, **behavior: Any) -> None:
        (await self._http.post("/behavior", json=behavior)).raise_for_status()

    async def moderate(self, delay: float) -> None:
        """Hold every moderation answer back `delay` seconds."""
        (await self._http.post("/moderation", json={"delay": delay})).raise_for_status()

    async def last_chat(self) -> dict[str, Any]:
        data: dict[str, Any] = (await self._http.get("/last-chat")).json()
        return data

    async def aclose(self) -> None:
        await self._http.aclose()


# --- processes --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def child(command: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-4000:]


async def wait_serving(
    target: str, process: subprocess.Popen[bytes], log_path: Path, within_seconds: float = 300.0
) -> None:
    """Wait for SERVING; on a loaded machine the server can take a minute or more to start."""
    deadline = time.monotonic() + within_seconds
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("tutorstream exited:\n" + log_tail(log_path))
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError("tutorstream did not become ready:\n" + log_tail(log_path))


# --- measurements -----------------------------------------------------------------------------------------


@dataclass
class Samples:
    ttft: list[float] = field(default_factory=list)
    before_upstream: list[float] = field(default_factory=list)
    floor: list[float] = field(default_factory=list)
    after_upstream: list[float] = field(default_factory=list)
    # Last token -> end of the stream: through tutorstream, the answer stored and the final chunk sent.
    closing: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    started: float
    first: float
    last: float
    ended: float
    tokens: int


def summary(samples: list[float]) -> str:
    return f"p50 {percentile(samples, 50):8.2f}   p99 {percentile(samples, 99):8.2f}"


class Bench:
    def __init__(
        self, upstream: Upstream, stub: pb_grpc.ChatServiceStub, token: str, database: AsyncEngine | None = None
    ) -> None:
        self.upstream = upstream
        self.database = database
        self.stub = stub
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.sdk = AsyncOpenAI(api_key=upstream.api_key, base_url=upstream.base_url, max_retries=0)
        self.prompt: list[dict[str, Any]] = []
        self.params: dict[str, Any] = {}
        self.counter = 0

    async def through_tutorstream(self) -> tuple[Run, float]:
        """One StreamChat in a fresh session; returns the run and the upstream arrival time."""
        self.counter += 1
        session = await self.stub.CreateSession(pb.CreateSessionRequest(), metadata=self.metadata)
        request = pb.StreamChatRequest(
            session=session.session.name, message=f"What is a flex container? #{self.counter}"
        )
        started = time.perf_counter()
        first = last = 0.0
        tokens = 0
        async for chunk in self.stub.StreamChat(request, metadata=self.metadata):
            if chunk.text:
                last = time.perf_counter()
                if not tokens:
                    first = last
                tokens += 1
        ended = time.perf_counter()
        sent = await self.upstream.last_chat()
        self.prompt = sent["body"]["messages"]
        self.params = {
            "temperature": sent["body"].get("temperature"),
            "max_completion_tokens": sent["body"].get("max_completion_tokens"),
        }
        return Run(started, first, last, ended, tokens), float(sent["arrival"])

    async def floor(self) -> float:
        """Milliseconds of the least a turn must do before the model call: embed the question, one round trip."""
        assert self.database is not None
        started = time.perf_counter()
        await self.sdk.embeddings.create(model=EMBEDDING_MODEL, input=f"What is a flex container? #{self.counter}")
        async with self.database.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    async def direct(self) -> tuple[Run, float]:
        """The same prompt and parameters straight to the upstream with the SDK."""
        started = time.perf_counter()
        first = last = 0.0
        tokens = 0
        stream = await self.sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=self.prompt,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            **self.params,
        )
        try:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    last = time.perf_counter()
                    if not tokens:
                        first = last
                    tokens += 1
        finally:
            await stream.close()
        ended = time.perf_counter()
        sent = await self.upstream.last_chat()
        return Run(started, first, last, ended, tokens), float(sent["arrival"])


async def alternating_ttfts(
    runs: int, first: Callable[[], Awaitable[tuple[Run, float]]], second: Callable[[], Awaitable[tuple[Run, float]]]
) -> tuple[list[float], list[float]]:
    """Milliseconds to the first token of `first` and `second`, `runs` times each, alternating."""
    firsts: list[float] = []
    seconds: list[float] = []
    for _ in range(runs):
        for path, samples in ((first, firsts), (second, seconds)):
            run, _ = await path()
            samples.append((run.first - run.started) * 1000)
    return firsts, seconds


async def measure(bench: Bench, traced: Bench, moderated: Bench, args: argparse.Namespace) -> list[Line]:
    # Time to first token: a short answer, streamed at once.
    await bench.upstream.behave(content="Flex containers lay out their children along one axis.")
    for _ in range(20):  # warm-up: connections, pools, caches
        await bench.through_tutorstream()
        await traced.through_tutorstream()
        await bench.direct()
    via, direct, tracing_on = Samples(), Samples(), Samples()
    for _ in range(args.ttft_runs):
        run, arrival = await bench.through_tutorstream()
        via.ttft.append((run.first - run.started) * 1000)
        via.before_upstream.append((arrival - run.started) * 1000)
        via.after_upstream.append((run.first - arrival) * 1000)
        via.closing.append((run.ended - run.last) * 1000)
        run, _ = await traced.through_tutorstream()
        tracing_on.ttft.append((run.first - run.started) * 1000)
        run, arrival = await bench.direct()
        direct.ttft.append((run.first - run.started) * 1000)
        direct.after_upstream.append((run.first - arrival) * 1000)
        direct.closing.append((run.ended - run.last) * 1000)
        via.floor.append(await bench.floor())

    # Sentence-by-sentence output moderation: the same three-sentence answer at a model's pace, through a server
    # that releases each sentence once moderated vs the benchmarked one, which relays tokens as they come.
    await bench.upstream.behave(content=MODERATED_ANSWER, tokens_per_second=args.model_tokens_per_second)
    relayed, held = await alternating_ttfts(
        args.moderation_runs, bench.through_tutorstream, moderated.through_tutorstream
    )
    first_sentence_ms = len(MODERATED_ANSWER.split(".")[0].split()) / args.model_tokens_per_second * 1000

    # At a real model's pace: the first token takes the model a while, the moderation endpoint answers in between.
    await bench.upstream.behave(
        content="Flex containers lay out their children along one axis.",
        first_token_delay=args.model_first_token_ms / 1000,
    )
    await bench.upstream.moderate(args.moderation_ms / 1000)
    paced_via, paced_direct = await alternating_ttfts(args.paced_runs, bench.through_tutorstream, bench.direct)
    await bench.upstream.moderate(0.0)
    paced = f"model {args.model_first_token_ms:g} ms to its first token, moderation endpoint {args.moderation_ms:g} ms"

    # Relay rate: a long answer at a fixed upstream rate.
    content = " ".join(f"tok{i}" for i in range(args.rate_tokens))
    await bench.upstream.behave(content=content, tokens_per_second=args.tokens_per_second)
    for _ in range(args.rate_runs):
        for path, samples in ((bench.through_tutorstream, via), (bench.direct, direct)):
            run, _ = await path()
            samples.rates.append((run.tokens - 1) / (run.last - run.first))

    added_p50 = percentile(via.after_upstream, 50) - percentile(direct.after_upstream, 50)
    added_p99 = percentile(via.after_upstream, 99) - percentile(direct.after_upstream, 99)
    ratio = statistics.median(via.rates) / statistics.median(direct.rates)
    print(f"StreamChat relay benchmark ({args.ttft_runs} TTFT runs and {args.rate_runs} rate runs per path)")
    print(f"load average before/after: {args.load_before} / {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print("time to first token (ms)")
    print(f"  direct (openai SDK)                           {summary(direct.ttft)}")
    print(f"  through tutorstream                           {summary(via.ttft)}")
    print(f"  through tutorstream, tracing on (OTLP)        {summary(tracing_on.ttft)}")
    print(f"    before the upstream call (context, DB)      {summary(via.before_upstream)}")
    print(f"    its floor (one embedding + one round trip)  {summary(via.floor)}")
    print(f"  upstream arrival -> first token, direct       {summary(direct.after_upstream)}")
    print(f"  upstream arrival -> first token, tutorstream  {summary(via.after_upstream)}")
    print(f"  added by the relay                            p50 {added_p50:8.2f}   p99 {added_p99:8.2f}")
    print("                                                (target: <= 1 ms p50, <= 5 ms p99)")
    print("last token -> end of the stream (ms)")
    print(f"  direct (openai SDK)                           {summary(direct.closing)}")
    print(f"  through tutorstream (answer stored, final)    {summary(via.closing)}")
    print()
    print(f"streamed answer moderated a sentence at a time, model at {args.model_tokens_per_second:g} tokens/s")
    print(f"  TTFT, tokens relayed as they come             {summary(relayed)}")
    print(f"  TTFT, sentences released once moderated       {summary(held)}")
    print(f"    (the first sentence alone takes the model {first_sentence_ms:.0f} ms)")
    print()
    print(f"time to first token at a model's pace: {paced}")
    print(f"  direct (openai SDK)                           {summary(paced_direct)}")
    print(f"  through tutorstream                           {summary(paced_via)}")
    print()
    print(f"relay rate, upstream at {args.tokens_per_second:g} tokens/s ({args.rate_tokens} tokens)")
    print(f"  direct       {statistics.median(direct.rates):8.1f} tokens/s")
    print(f"  tutorstream  {statistics.median(via.rates):8.1f} tokens/s")
    print(f"  ratio        {ratio:8.3f}x   (target >= 0.99x)")
    direct_sdk = "upstream called directly with the openai SDK, same run"
    before_ratio = percentile(via.before_upstream, 50) / percentile(via.floor, 50)
    floor_baseline = "one query embedding (openai SDK, same upstream) + one pooled SELECT 1, back to back, same run"
    return [
        at_most(
            "chat",
            "TTFT through tutorstream vs direct, p50",
            percentile(via.ttft, 50) / percentile(direct.ttft, 50),
            "x",
            3.0,
            baseline=direct_sdk,
        ),
        at_most("chat", "before the upstream call vs its floor, p50", before_ratio, "x", 1.3, baseline=floor_baseline),
        context("chat", "floor of the before-upstream work, p50", percentile(via.floor, 50), "ms"),
        at_most("chat", "TTFT added by the relay, p50", added_p50, "ms", 1, baseline=direct_sdk),
        at_most("chat", "TTFT added by the relay, p99", added_p99, "ms", 5, baseline=direct_sdk),
        at_least("chat", "token relay rate vs direct", ratio, "x", 0.99, baseline=direct_sdk),
        context("chat", "TTFT through tutorstream, p50", percentile(via.ttft, 50), "ms"),
        context("chat", "TTFT through tutorstream, p99", percentile(via.ttft, 99), "ms"),
        context("chat", "of which before the upstream call, p50", percentile(via.before_upstream, 50), "ms"),
        context("chat", "TTFT direct, p50", percentile(direct.ttft, 50), "ms"),
        context("chat", "TTFT direct, p99", percentile(direct.ttft, 99), "ms"),
        context(
            "chat",
            "last token to the end of the stream through tutorstream, p50",
            percentile(via.closing, 50),
            "ms",
            baseline="the answer and its interaction stored and the budget settled before the final chunk; direct "
            f"(the usage chunk and the stream's end): {percentile(direct.closing, 50):.2f} ms, same run",
        ),
        context(
            "chat",
            "TTFT p50 added by sentence-by-sentence output moderation",
            percentile(held, 50) - percentile(relayed, 50),
            "ms",
            baseline=f"same answer relayed token by token, same run; its first sentence takes the model "
            f"{first_sentence_ms:.0f} ms at {args.model_tokens_per_second:g} tokens/s",
        ),
        context(
            "chat",
            "TTFT through tutorstream vs direct at a model's pace, p50",
            percentile(paced_via, 50) / percentile(paced_direct, 50),
            "x",
            baseline=f"{paced}; the same upstream called directly with the openai SDK, same run",
        ),
        context("chat", "TTFT at a model's pace through tutorstream, p50", percentile(paced_via, 50), "ms"),
        context("chat", "TTFT at a model's pace direct, p50", percentile(paced_direct, 50), "ms"),
        context(
            "chat",
            "TTFT p50 with tracing on vs off",
            percentile(tracing_on.ttft, 50) / percentile(via.ttft, 50),
            "x",
            baseline="a second server exporting every span over OTLP, same run",
        ),
    ]


async def run(args: argparse.Namespace) -> None:
    args.load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        control_port = free_port()
        upstream_command = [sys.executable, "-m", "bench.bench_chat", "--serve-upstream", str(control_port)]
        with child(upstream_command, {}, Path(tmp) / "upstream.log") as upstream_process:
            upstream = Upstream(control_port)
            try:
                await upstream.connect(upstream_process)
                embedded = start_embedded_for_tests(Path(tmp))
                try:
                    await run_against(args, upstream, tmp, create_migrated_database(embedded.admin_url, "bench_chat"))
                finally:
                    embedded.stop()
            finally:
                await upstream.aclose()


def server_env(port: int, data_dir: str, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a benchmarked `tutorstream-server serve` on loopback: an already migrated database, no
    demo seeding, no job workers, no shutdown notice, the bench's JWT secret; `settings` add or override."""
    return {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": data_dir,
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "MIGRATE_ON_START": "false",
        "SEED_DEMO_ON_START": "false",
        "RUN_WORKERS_IN_PROCESS": "false",
        "SHUTDOWN_NOTICE_SECONDS": "0",
        **settings,
    }


async def run_against(args: argparse.Namespace, upstream: Upstream, tmp: str, database_url: str) -> None:
    port = free_port()
    env = {
        **server_env(port, tmp, database_url),
        "OPENAI_API_KEY": upstream.api_key,
        "OPENAI_BASE_URL": upstream.base_url,
        "EMBEDDING_PROVIDER": "openai",
        "RESPONSE_CACHE_TTL_SECONDS": "0",  # every turn goes upstream
        "RATE_CHAT_PER_MINUTE": "10000000",
        "RATE_DEFAULT_PER_MINUTE": "10000000",
        "MAX_CHAT_STREAMS_PER_USER": "100",
        "DAILY_TOKEN_BUDGET": "1000000000",
        "MONTHLY_TOKEN_BUDGET": "1000000000",
    }
    token = mint_token(Settings(_env_file=None, jwt_secret=JWT_SECRET), user_id="bench-user", role=Role.STUDENT)  # type: ignore[call-arg]
    log_path, traced_log = Path(tmp) / "tutorstream.log", Path(tmp) / "traced.log"
    collector, collector_port = await start_collector()
    moderated_port = free_port()
    moderated_env = {**env, "PORT": str(moderated_port), "MODERATE_STREAMED_ANSWERS": "true"}
    env["MODERATE_STREAMED_ANSWERS"] = "false"  # the relay itself is measured: tokens relayed as they come
    moderated_log = Path(tmp) / "moderated.log"
    traced_port = free_port()
    traced_env = {
        **env,
        "PORT": str(traced_port),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    server_command = [sys.executable, "-c", "from server.cli import app; app(['serve'])"]
    try:
        with (
            child(server_command, env, log_path) as process,
            child(server_command, traced_env, traced_log) as traced_process,
            child(server_command, moderated_env, moderated_log) as moderated_process,
        ):
            target, traced_target = f"127.0.0.1:{port}", f"127.0.0.1:{traced_port}"
            moderated_target = f"127.0.0.1:{moderated_port}"
            await wait_serving(target, process, log_path)
            await wait_serving(traced_target, traced_process, traced_log)
            await wait_serving(moderated_target, moderated_process, moderated_log)
            database = create_async_engine(normalize_database_url(database_url))
            async with (
                grpc.aio.insecure_channel(target) as channel,
                grpc.aio.insecure_channel(traced_target) as other,
                grpc.aio.insecure_channel(moderated_target) as third,
            ):
                bench = Bench(upstream, pb_grpc.ChatServiceStub(channel), token, database)
                traced = Bench(upstream, pb_grpc.ChatServiceStub(other), token)
                moderated = Bench(upstream, pb_grpc.ChatServiceStub(third), token)
                try:
                    lines = await measure(bench, traced, moderated, args)
                finally:
                    await database.dispose()
                    for each in (bench, traced, moderated):
                        await each.sdk.close()
    finally:
        await collector.stop(0)
    publish(lines)


async def start_collector() -> tuple[grpc.aio.Server, int]:
    """An OTLP/gRPC trace collector on loopback that accepts and drops what it is sent."""

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        async def Export(
            self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext[Any, Any]
        ) -> trace_service_pb2.ExportTraceServiceResponse:
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--ttft-runs", type=int, default=200)
    parser.add_argument("--rate-runs", type=int, default=8)
    parser.add_argument("--rate-tokens", type=int, default=400)
    parser.add_argument("--tokens-per-second", type=float, default=400.0)
    parser.add_argument("--moderation-runs", type=int, default=30)
    parser.add_argument("--model-tokens-per-second", type=float, default=50.0)
    parser.add_argument("--paced-runs", type=int, default=20)
    parser.add_argument("--model-first-token-ms", type=float, default=400.0)
    parser.add_argument("--moderation-ms", type=float, default=200.0)
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
