"""WatchVideo at scale: memory per stream and intervention latency, side by side with a baseline.

Two `tutorstream-server serve` processes run on one embedded PostgreSQL:

- the baseline server holds N idle grpc.health.v1.Health/Watch streams: what any open grpc.aio
  server-streaming call costs in this process (C-core call, HTTP/2 stream, handler coroutine);
- the measured server holds N WatchVideo streams, each with a loaded watch session (engine, outbox, reader).

Memory per stream = (RSS with N streams - RSS before) / N for each, read from /proc. Then the clients send
HEARTBEAT events at a fixed total rate (round robin over the streams, client event times advancing 30 s per
event, BREAK after 60 s of playback, no cool-down), so every second event triggers a BREAK intervention: the
latency from sending the triggering event to receiving the intervention is the engine path end to end (content
generation excluded: a BREAK's content is fixed). Latency percentiles are reported with the achieved rate.

Both servers are the same program with the same gRPC server options, so the baseline shows what the transport
itself costs per stream and the difference is what the progress layer adds.

A third process, a bare grpc.aio server, answers WatchVideo with the same messages (a rejection for the bad first
event, a BREAK for every second heartbeat, stamped with the event's time) and nothing in between: the same
streams and the same load give the transport's floor for memory per bidirectional stream and CPU per event. What
tutorstream adds to a WatchVideo stream (the progress layer's target) is measured against that floor: Health/Watch
is a server-streaming call, which costs grpc itself less than a bidirectional one.

    .venv/bin/python -m bench.bench_progress                # 10,000 streams, 1,000 events/s, 20 s
    .venv/bin/python -m bench.bench_progress --streams 2000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psycopg
from google.protobuf import timestamp_pb2
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import agent_service_pb2_grpc as pb_grpc
from tutorstream.v1 import common_pb2

from bench.report import Line, at_most, context, percentile, publish
from server.config import Settings
from server.core.auth import Role, mint_token
from server.core.embedded_pg import DEFAULT_DATABASE, EmbeddedPostgres
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"tutorstream listening on [\d.]+:(\d+)")
JWT_SECRET = "bench-secret-" + "x" * 40
STEP_SECONDS = 30.0  # client event time per event: with BREAK after 60 s, every second event triggers one
USERS = 100
T0 = 1_760_000_000.0
MEMORY_TARGET_KIB = 20
LAYER_TARGET_KIB = 3
CPU_TARGET_MICROSECONDS = 100
LATENCY_TARGET_MS = 50


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class ServerProcess:
    def __init__(self, name: str, data_dir: Path, workdir: Path) -> None:
        self.log_path = workdir / f"{name}.log"
        environment = {
            **os.environ,
            "DATA_DIR": str(data_dir),
            "JWT_SECRET": JWT_SECRET,
            "RUN_WORKERS_IN_PROCESS": "false",
            "EMBEDDING_PROVIDER": "local",
            "MAX_WATCH_STREAMS_PER_USER": "0",
            "RATE_DEFAULT_PER_MINUTE": "0",
            "SHUTDOWN_NOTICE_SECONDS": "0",
            "GRACE_SECONDS": "2",
            "DB_POOL_SIZE": "20",
            "WATCH_BREAK_AFTER_SECONDS": "60",
            "WATCH_COOLDOWN_SECONDS": "0",
            "WATCH_QUIZ_INTERVAL_SECONDS": '{"low": 0, "medium": 0, "high": 0}',
        }
        for key in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY"):
            environment.pop(key, None)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "tutorstream-server"), "serve", "--host", "127.0.0.1", "--port", "0"],
            cwd=workdir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.port = 0

    async def wait_listening(self, within: float = 180.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()[-3000:]}")
            await asyncio.sleep(0.2)
        raise RuntimeError("server did not start")

    @property
    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def channels(port: int, count: int) -> list[aio.Channel]:
    # A local subchannel pool per channel: separate TCP connections, as separate browsers/devices would use.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_concurrent_streams", 100_000)]
    return [aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(count)]


async def settle(server: ServerProcess | MinimalProcess, seconds: float = 2.0) -> int:
    await asyncio.sleep(seconds)
    return server.rss_kib


# --- the transport's floor: WatchVideo on a bare grpc.aio server --------------------------------------------


async def minimal_watch(requests: object, context: aio.ServicerContext[Any, Any]) -> None:
    """WatchVideo with nothing between grpc.aio and the wire: the same messages in and out as tutorstream's
    (a rejection for the bad first event, a BREAK for every second heartbeat of a stream, stamped with its
    event time) and no work in between — no token check, engine, database or outbox."""
    heartbeats = 0
    while (request := await context.read()) is not aio.EOF:
        for event in request.events:
            if event.position_seconds < 0:
                rejection = pb.EventRejection(event_id=event.event_id, reason="position_seconds is negative")
                await context.write(pb.WatchVideoResponse(rejection=rejection))
            elif event.type == pb.VIDEO_EVENT_TYPE_HEARTBEAT:
                heartbeats += 1
                if heartbeats % 2 == 0:
                    intervention = pb.Intervention(
                        type=common_pb2.INTERVENTION_TYPE_BREAK, create_time=event.event_time
                    )
                    await context.write(pb.WatchVideoResponse(intervention=intervention))


def serve_minimal(port: int) -> None:
    handler = grpc.stream_stream_rpc_method_handler(
        minimal_watch,
        request_deserializer=pb.WatchVideoRequest.FromString,
        response_serializer=pb.WatchVideoResponse.SerializeToString,
    )
    service = pb.DESCRIPTOR.services_by_name["AgentService"].full_name

    async def run() -> None:
        server = aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"WatchVideo": handler}),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


class MinimalProcess:
    """`serve_minimal` in a process of its own, like the tutorstream servers."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self._log = (workdir / "minimal.log").open("wb")
        command = [sys.executable, "-m", "bench.bench_progress", "--serve-minimal", str(self.port)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    async def wait_listening(self, within: float = 60.0) -> None:
        async with aio.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), within)

    @property
    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


# --- baseline: idle health streams ---------------------------------------------------------------------


async def baseline_streams(server: ServerProcess, count: int, channel_count: int) -> tuple[int, int]:
    pool = channels(server.port, channel_count)
    calls = []
    try:
        before = await settle(server)
        for index in range(count):
            stub = health_pb2_grpc.HealthStub(pool[index % channel_count])
            call = stub.Watch(health_pb2.HealthCheckRequest(service=""))
            calls.append(call)
            if index % 500 == 499:
                await asyncio.gather(*(c.read() for c in calls[-500:]))
        await asyncio.gather(*(c.read() for c in calls[len(calls) - len(calls) % 500 :]))
        after = await settle(server)
        return before, after
    finally:
        for call in calls:
            call.cancel()
        for channel in pool:
            await channel.close()


# --- WatchVideo streams --------------------------------------------------------------------------------


def stamp(seconds: float) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromNanoseconds(int((T0 + seconds) * 1e9))
    return value


@dataclass
class Stream:
    index: int
    queue: asyncio.Queue[pb.WatchVideoRequest | None] = field(default_factory=asyncio.Queue)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    clock: float = 0.0
    pending: dict[int, float] = field(default_factory=dict)  # trigger event time (ns) -> send time
    call: object = None

    async def requests(self) -> AsyncIterator[pb.WatchVideoRequest]:
        while (message := await self.queue.get()) is not None:
            yield message


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    interventions: int = 0
    sent: int = 0


async def read(stream: Stream, call: aio.StreamStreamCall, results: Results) -> None:
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
        async for response in call:
            if response.WhichOneof("payload") == "rejection":
                stream.ready.set()
                continue
            received = time.perf_counter()
            sent = stream.pending.pop(response.intervention.create_time.ToNanoseconds(), None)
            results.interventions += 1
            if sent is not None:
                results.latencies.append(received - sent)


async def open_watch_streams(
    server: ServerProcess | MinimalProcess, count: int, channel_count: int, results: Results
) -> tuple[list[Stream], list[asyncio.Task[None]], list[aio.Channel]]:
    settings = Settings(_env_file=None, jwt_secret=JWT_SECRET)  # type: ignore[call-arg]
    tokens = [mint_token(settings, user_id=f"bench-{i}", role=Role.STUDENT) for i in range(USERS)]
    pool = channels(server.port, channel_count)
    streams = [Stream(i) for i in range(count)]
    readers: list[asyncio.Task[None]] = []
    run = uuid.uuid4().hex[:8]
    for batch_start in range(0, count, 500):
        batch = streams[batch_start : batch_start + 500]
        for stream in batch:
            stub = pb_grpc.AgentServiceStub(pool[stream.index % channel_count])
            token = tokens[stream.index % USERS]
            first = pb.WatchVideoRequest(
                watch_session_id=f"bench-{run}-{stream.index:06d}",
                video_id="bench-lecture",
                duration_seconds=80_000.0,
                events=[
                    pb.VideoEvent(type=pb.VIDEO_EVENT_TYPE_PLAYED, position_seconds=0.0, event_time=stamp(0.0)),
                    # A bad event: its rejection says the session is loaded and the stream is ready.
                    pb.VideoEvent(
                        event_id="ready",
                        type=pb.VIDEO_EVENT_TYPE_HEARTBEAT,
                        position_seconds=-1.0,
                        event_time=stamp(0.0),
                    ),
                ],
            )
            await stream.queue.put(first)
            call = stub.WatchVideo(stream.requests(), metadata=(("authorization", f"Bearer {token}"),))
            stream.call = call
            readers.append(asyncio.create_task(read(stream, call, results)))
        async with asyncio.timeout(120):
            await asyncio.gather(*(stream.ready.wait() for stream in batch))
    return streams, readers, pool


async def drive(streams: list[Stream], rate: float, seconds: float, results: Results) -> float:
    """HEARTBEATs at `rate` events/s in total, round robin; returns the achieved rate."""
    tick = 0.01
    per_tick = rate * tick
    owed = 0.0
    cursor = 0
    started = time.perf_counter()
    next_tick = started
    while time.perf_counter() - started < seconds:
        owed += per_tick
        while owed >= 1.0:
            owed -= 1.0
            stream = streams[cursor % len(streams)]
            cursor += 1
            stream.clock += STEP_SECONDS
            event_time = stamp(stream.clock)
            message = pb.WatchVideoRequest(
                events=[
                    pb.VideoEvent(
                        type=pb.VIDEO_EVENT_TYPE_HEARTBEAT, position_seconds=stream.clock, event_time=event_time
                    )
                ]
            )
            stream.pending[event_time.ToNanoseconds()] = time.perf_counter()
            stream.queue.put_nowait(message)
            results.sent += 1
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    return results.sent / (time.perf_counter() - started)


def stored_events(data_dir: Path) -> int:
    """Progress events the servers have written to their (shared, embedded) database so far. The handle taken
    on the running cluster is released at once; the cluster stays up for the servers holding it."""
    embedded = EmbeddedPostgres(data_dir / "pg")
    embedded.start()
    try:
        with psycopg.connect(embedded.url_for(DEFAULT_DATABASE, driver=None)) as connection:
            row = connection.execute("SELECT count(*) FROM video_events").fetchone()
    finally:
        embedded.stop()
    return int(row[0]) if row is not None else 0


def report(*, base_per_stream: float, ours: Phase, bare: Phase, arguments: argparse.Namespace) -> list[Line]:
    kib = 1024
    count = arguments.streams
    per_stream, results = ours.per_stream, ours.results
    added = per_stream - base_per_stream
    before, after, during = (value / kib for value in ours.rss)
    print()
    print("memory per open stream (server RSS delta / streams)")
    print(f"  baseline  Health/Watch (idle grpc.aio stream): {base_per_stream / kib:7.2f} KiB")
    print(f"  bare grpc.aio WatchVideo (no session):          {bare.per_stream / kib:7.2f} KiB")
    print(f"  WatchVideo (stream + loaded watch session):     {per_stream / kib:7.2f} KiB")
    print(f"  added over bare grpc.aio WatchVideo:            {(per_stream - bare.per_stream) / kib:7.2f} KiB")
    print(f"  added over Health/Watch:                        {added / kib:7.2f} KiB")
    print(f"  (targets: WatchVideo <= {MEMORY_TARGET_KIB} KiB per stream, added over bare <= {LAYER_TARGET_KIB} KiB)")
    print(f"  ratio WatchVideo / baseline:                    {per_stream / base_per_stream:7.2f}x")
    print(f"  server RSS: {before:.0f} MiB idle, {after:.0f} MiB with {count} streams, {during:.0f} MiB after the load")
    print(f"  {count} streams opened in {ours.opening_seconds:.1f} s")
    print()
    print(f"load: {results.sent} events in {arguments.seconds:.0f} s = {ours.achieved:.0f} events/s offered")
    print(f"  {ours.processed:.0f} events/s processed (written to the database over the same time)")
    print(f"  (target {arguments.rate:.0f}); {results.interventions} BREAK interventions received")
    print(f"  server CPU {ours.cpu_per_event * 1e6:.0f} us per event (the load phase, user + system)")
    print(f"  bare grpc.aio WatchVideo, same load: {bare.cpu_per_event * 1e6:.0f} us per event")
    print(f"  ({bare.achieved:.0f} events/s offered, {bare.results.interventions} interventions received)")
    load = f"{ours.achieved:,.0f} events/s over {count:,} streams"
    memory = f"{count:,} streams per server"
    lines = [
        at_most(
            "progress", "memory per WatchVideo stream", per_stream / kib, "KiB", MEMORY_TARGET_KIB, baseline=memory
        ),
        context(
            "progress", "memory per idle grpc.aio stream (Health/Watch)", base_per_stream / kib, "KiB", baseline=memory
        ),
        context(
            "progress",
            "memory per bare grpc.aio WatchVideo stream",
            bare.per_stream / kib,
            "KiB",
            baseline="the same messages, no session, same run",
        ),
        at_most(
            "progress",
            "memory added per WatchVideo stream over bare grpc.aio",
            (per_stream - bare.per_stream) / kib,
            "KiB",
            LAYER_TARGET_KIB,
            baseline="WatchVideo minus the bare server's WatchVideo, same run",
        ),
        context(
            "progress",
            "memory added by the progress layer per stream",
            added / kib,
            "KiB",
            baseline="WatchVideo minus Health/Watch (a server-streaming call)",
        ),
        context(
            "progress",
            "event rate offered by the client",
            ours.achieved,
            "events/s",
            baseline=f"asked {arguments.rate:,.0f}",
        ),
        context(
            "progress", "event rate processed by the server", ours.processed, "events/s", baseline="stored, same time"
        ),
        at_most(
            "progress", "server CPU per event", ours.cpu_per_event * 1e6, "us", CPU_TARGET_MICROSECONDS, baseline=load
        ),
        context(
            "progress",
            "bare grpc.aio WatchVideo: server CPU per event",
            bare.cpu_per_event * 1e6,
            "us",
            baseline="the same messages and load, no work between them, same run",
        ),
        context(
            "progress",
            "server CPU per event vs bare grpc.aio WatchVideo",
            ours.cpu_per_event / bare.cpu_per_event,
            "x",
            baseline="the same messages and load, same run",
        ),
    ]
    if not results.latencies:
        print("no intervention latency samples")
        return [*lines, at_most("progress", "intervention latency p99", math.inf, "ms", LATENCY_TARGET_MS)]
    ms = [value * 1000 for value in results.latencies]
    print(f"intervention latency (event sent -> intervention received), {len(ms)} samples:")
    p50, p90, p99 = (percentile(ms, q) for q in (50, 90, 99))
    print(f"  p50 {p50:6.1f} ms   p90 {p90:6.1f} ms   p99 {p99:6.1f} ms   (target p99 <= {LATENCY_TARGET_MS} ms)")
    print(f"  max {max(ms):6.1f} ms   mean {statistics.fmean(ms):6.1f} ms")
    return [
        *lines,
        context("progress", "intervention latency p50", p50, "ms", baseline=load),
        at_most("progress", "intervention latency p99", p99, "ms", LATENCY_TARGET_MS, baseline=load),
    ]


@dataclass
class Phase:
    """One server's WatchVideo streams: memory per stream, then the event load."""

    per_stream: float  # bytes
    rss: tuple[int, int, int]  # KiB: before the streams, with them, after the load
    opening_seconds: float
    achieved: float
    cpu_per_event: float
    processed: float
    results: Results


async def watch_phase(
    server: ServerProcess | MinimalProcess,
    arguments: argparse.Namespace,
    stored: Callable[[], Awaitable[int]] | None = None,
) -> Phase:
    """Open `arguments.streams` WatchVideo streams on `server`, then drive the event load. `stored` counts the
    events the server has written; without it (the bare server writes nothing) every event counts as processed."""
    count, channel_count = arguments.streams, arguments.channels
    results = Results()
    before = await settle(server)
    opened = time.perf_counter()
    streams, readers, pool = await open_watch_streams(server, count, channel_count, results)
    opening_seconds = time.perf_counter() - opened
    after = await settle(server)
    # The client holds every stream too: move what exists now out of the collector's reach, so a full
    # collection of the client's own heap does not show up as server latency.
    gc.collect()
    gc.freeze()
    cpu_before = cpu_seconds(server.process.pid)
    events_before = await stored() if stored else 0
    achieved = await drive(streams, arguments.rate, arguments.seconds, results)
    await asyncio.sleep(2.0)
    cpu_per_event = (cpu_seconds(server.process.pid) - cpu_before) / max(1, results.sent)
    written = await stored() - events_before if stored else results.sent
    processed = written / (results.sent / achieved) if achieved else 0.0
    rss = (before, after, server.rss_kib)
    for stream in streams:
        stream.queue.put_nowait(None)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    for channel in pool:
        await channel.close()
    return Phase((after - before) * 1024 / count, rss, opening_seconds, achieved, cpu_per_event, processed, results)


async def main(arguments: argparse.Namespace) -> None:
    count, channel_count = arguments.streams, arguments.channels
    with tempfile.TemporaryDirectory(prefix="bench-progress-") as workdir:
        data_dir = Path(workdir) / "data"
        measured = ServerProcess("measured", data_dir, Path(workdir))
        await measured.wait_listening()
        baseline = ServerProcess("baseline", data_dir, Path(workdir))
        minimal: MinimalProcess | None = None
        try:
            await baseline.wait_listening()
            print(f"servers up (pids {baseline.process.pid}, {measured.process.pid}); {count} streams each")
            phase = time.perf_counter()

            base_before, base_after = await baseline_streams(baseline, count, channel_count)
            baseline.stop()
            base_per_stream = (base_after - base_before) * 1024 / count
            print(f"baseline measured in {time.perf_counter() - phase:.0f} s")

            ours = await watch_phase(measured, arguments, lambda: asyncio.to_thread(stored_events, data_dir))
            measured.stop()
            # Started only now, so nothing but the measured server runs during its phase.
            minimal = MinimalProcess(Path(workdir))
            await minimal.wait_listening()
            bare = await watch_phase(minimal, arguments)
            lines = report(base_per_stream=base_per_stream, ours=ours, bare=bare, arguments=arguments)
        finally:
            baseline.stop()
            measured.stop()
            if minimal is not None:
                minimal.stop()
    publish(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=1_000.0, help="events per second, all streams together")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--channels", type=int, default=50, help="client connections")
    parser.add_argument("--serve-minimal", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve_minimal:
        serve_minimal(parsed.serve_minimal)
    else:
        asyncio.run(main(parsed))
