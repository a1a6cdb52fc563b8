"""The edge's price: unary and streaming latency through Envoy (grpc-web and native gRPC) vs direct gRPC.

    python -m bench.bench_edge [--count 300] [--rounds 5]

Starts embedded PostgreSQL, one grpc.aio server (limits off, the offline answer engine, the demo course
seeded) and Envoy from envoy/envoy.yaml.in, all on loopback, in a temporary directory. Paths, interleaved in
rounds so drift hits them alike:

    native          grpc.aio stub -> server
    native+envoy    grpc.aio stub -> Envoy (HTTP/2) -> server
    web+envoy (py)  grpc-web over HTTP/1.1 (httpx) -> Envoy grpc_web filter -> server
    web+envoy (es)  Connect-ES grpc-web (the browser's client library, Node fetch) -> Envoy -> server

Unary: AgentService.GetPreferences (one indexed read). Streaming: ChatService.StreamChat answered by the
offline engine: time to the first text chunk and to the end of the stream. Prints median and p95 per path
and each path's median relative to native, then publishes (bench.report) the browser path's price for
context: Connect-ES through Envoy relative to native, unary p50 and whole-StreamChat p50, with both absolute
p50s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from grpc import aio
from tutorstream.v1 import agent_service_pb2, agent_service_pb2_grpc, chat_service_pb2, chat_service_pb2_grpc

from bench.report import Line, context, percentile, publish
from server.app import TutorstreamServer
from server.embeddings.local import LocalEmbedder
from server.seed import seed_demo_course
from tests.conftest import make_settings
from tests.edge import grpcweb
from tests.edge.support import ESBUILD, NODE, ROOT, EnvoyProcess, build_web
from tests.support.clients import token_for
from tests.support.postgres import create_migrated_database, start_embedded_for_tests

QUESTION = "How do I center an item with flexbox?"
PREFERENCES = "/tutorstream.v1.AgentService/GetPreferences"
STREAM_CHAT = "/tutorstream.v1.ChatService/StreamChat"
PATHS = ("native", "native+envoy", "web+envoy (py)", "web+envoy (es)")
BROWSER = "web+envoy (es)"
NATIVE_BASELINE = "native grpc.aio stub, same run"


def summary(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 50), percentile(samples, 95)


async def timed(count: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def stream_timings(count: int, chunks: Callable[[], object]) -> tuple[list[float], list[float]]:
    """Time to the first message and to the end, for `count` streams from `chunks()` (an async iterator)."""
    first: list[float] = []
    total: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        seen = False
        async for _chunk in chunks():  # type: ignore[attr-defined]
            if not seen:
                first.append((time.perf_counter() - started) * 1000)
                seen = True
        total.append((time.perf_counter() - started) * 1000)
    return first, total


def bundle_node_client(out_dir: Path) -> Path:
    out = out_dir / "edge_client.mjs"
    subprocess.run(
        [
            str(ESBUILD),
            str(ROOT / "bench" / "edge_client.ts"),
            "--bundle",
            "--platform=node",
            "--format=esm",
            "--log-level=warning",
            f"--outfile={out}",
        ],
        check=True,
        cwd=ROOT,
    )
    return out


async def node_batch(script: Path, base_url: str, token: str, session: str, count: int) -> dict[str, list[float]]:
    env = {
        **os.environ,
        "BASE_URL": base_url,
        "TOKEN": token,
        "SESSION": session,
        "QUESTION": QUESTION,
        "COUNT": str(count),
        "WARMUP": "20",
    }
    process = await asyncio.create_subprocess_exec(NODE, str(script), env=env, stdout=asyncio.subprocess.PIPE)
    stdout, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError("the Connect-ES client failed")
    result: dict[str, list[float]] = json.loads(stdout)
    return result


async def run(count: int, rounds: int) -> list[Line]:
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        workdir = Path(tmp)
        embedded = start_embedded_for_tests(workdir)
        try:
            database_url = create_migrated_database(embedded.admin_url, "bench_edge")
            embedder = LocalEmbedder()
            await embedder.warm_up()
            settings = make_settings(
                workdir,
                database_url,
                rate_chat_per_minute=0,
                rate_default_per_minute=0,
                rate_agent_per_minute=0,
                max_chat_streams_per_user=0,
                ingest_watch_poll_seconds=0.05,
                job_poll_seconds=0.5,
            )
            server = TutorstreamServer(settings, embedder=embedder)
            await server.start()
            envoy = EnvoyProcess(workdir, grpc_port=server.port)
            envoy.start()
            try:
                await seed_demo_course(server.runtime.transcripts, wait=True)
                await envoy.wait_ready()
                build_web()
                script = bundle_node_client(workdir)
                return await measure(server, envoy, script, count, rounds)
            finally:
                envoy.stop()
                await server.stop(0)
        finally:
            embedded.stop()


async def measure(server: TutorstreamServer, envoy: EnvoyProcess, script: Path, count: int, rounds: int) -> list[Line]:
    token = token_for(server.settings, "bench-edge")
    metadata = (("authorization", f"Bearer {token}"),)
    direct = aio.insecure_channel(f"127.0.0.1:{server.port}")
    via_envoy = aio.insecure_channel(f"127.0.0.1:{envoy.port}")
    web = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_keepalive_connections=4))
    unary: dict[str, list[float]] = {path: [] for path in PATHS}
    first: dict[str, list[float]] = {path: [] for path in PATHS}
    total: dict[str, list[float]] = {path: [] for path in PATHS}
    stream_count = max(1, count // 5)
    request = agent_service_pb2.GetPreferencesRequest(name="users/me/preferences")
    try:
        chat_direct = chat_service_pb2_grpc.ChatServiceStub(direct)

        async def new_session() -> str:
            created = await chat_direct.CreateSession(
                chat_service_pb2.CreateSessionRequest(title="bench"), metadata=metadata
            )
            return str(created.session.name)

        for round_number in range(rounds):
            for path, channel in (("native", direct), ("native+envoy", via_envoy)):
                stub = agent_service_pb2_grpc.AgentServiceStub(channel)
                chat = chat_service_pb2_grpc.ChatServiceStub(channel)
                await timed(20, lambda stub=stub: stub.GetPreferences(request, metadata=metadata))
                unary[path] += await timed(count, lambda stub=stub: stub.GetPreferences(request, metadata=metadata))
                session = await new_session()
                chat_request = chat_service_pb2.StreamChatRequest(session=session, message=QUESTION)
                f, t = await stream_timings(
                    stream_count, lambda chat=chat, r=chat_request: chat.StreamChat(r, metadata=metadata)
                )
                first[path] += f
                total[path] += t

            path = "web+envoy (py)"

            def body() -> Awaitable[object]:
                return grpcweb.call(web, envoy.base_url, PREFERENCES, request, token=token)

            await timed(20, body)
            unary[path] += await timed(count, body)
            session = await new_session()
            chat_request = chat_service_pb2.StreamChatRequest(session=session, message=QUESTION)
            f, t = await stream_timings(
                stream_count,
                lambda r=chat_request: grpcweb.stream(web, envoy.base_url, STREAM_CHAT, r, token=token),
            )
            first[path] += f
            total[path] += t

            path = "web+envoy (es)"
            result = await node_batch(script, envoy.base_url, token, await new_session(), count)
            unary[path] += result["unary"]
            first[path] += result["first"]
            total[path] += result["total"]
            print(f"round {round_number + 1}/{rounds} done", flush=True)
    finally:
        await direct.close()
        await via_envoy.close()
        await web.aclose()
    report("unary GetPreferences", unary)
    report("StreamChat: first text chunk", first)
    report("StreamChat: whole stream", total)
    return published(unary, total)


def published(unary: dict[str, list[float]], total: dict[str, list[float]]) -> list[Line]:
    lines: list[Line] = []
    for what, samples in (("unary GetPreferences", unary), ("whole StreamChat", total)):
        native, browser = percentile(samples["native"], 50), percentile(samples[BROWSER], 50)
        lines += [
            context(
                "edge",
                f"grpc-web (Connect-ES) via Envoy vs native, {what} p50",
                browser / native,
                "x",
                baseline=NATIVE_BASELINE,
            ),
            context("edge", f"{what} p50, grpc-web (Connect-ES) via Envoy", browser, "ms"),
            context("edge", f"{what} p50, native", native, "ms"),
        ]
    return lines


def report(title: str, samples: dict[str, list[float]]) -> None:
    baseline = percentile(samples["native"], 50)
    print(f"\n{title} (ms)")
    print(f"  {'path':<16} {'n':>5} {'median':>8} {'p95':>8} {'x native':>9}")
    for path in PATHS:
        median, p95 = summary(samples[path])
        print(f"  {path:<16} {len(samples[path]):>5} {median:>8.2f} {p95:>8.2f} {median / baseline:>9.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="unary calls per path per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    publish(asyncio.run(run(args.count, args.rounds)))


if __name__ == "__main__":
    main()
