"""Unary RPS of a simple RPC vs a minimal grpc.aio server in the same run.

    python -m bench.bench_unary [--seconds 4] [--rounds 6] [--concurrency 32] [--channels 4]

Two servers, each in its own process (the client's event loop never runs server code), on one embedded
PostgreSQL:

- tutorstream (`tutorstream-server serve`, limits on with the in-process limiter, generous enough that nobody
  is refused) answering AgentService.GetPreferences: bearer token check (verified once, then remembered until
  it expires), the interceptor (request id, access log, error mapping), the limiter gate and the preferences,
  from the replica's cache after the first call;
- the same server with the preferences cache off (`PREFERENCES_CACHE_SECONDS=0`): a primary-key read of the
  preferences row on every call;
- a minimal grpc.aio server (the same Python and grpcio, no interceptor) answering grpc.health.v1.Health/Check,
  the smallest real unary method there is.

A third target is tutorstream's own Health/Check (public: no token, no gate, no database), which separates what
the server framework costs from what the layer adds. Closed-loop clients keep `--concurrency` calls in flight
over `--channels` connections; targets take turns in rounds, the order reversed every other round (A, B, C, C, B,
A, ...), so drift hits all alike and no target always follows the same one.
Next to RPS and latency the bench reads each server process's CPU time per call from /proc: the client shares
the machine's cores, so the CPU cost per call is the comparison that does not depend on who saturates first.

Targets: tutorstream's own Health/Check at least 0.9x the minimal server's RPS (health checks are registered
outside the interceptor, which wraps only tutorstream's own methods), and GetPreferences at most 3.5x the
minimal server's CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tutorstream.v1 import agent_service_pb2, agent_service_pb2_grpc

from bench.bench_chat import JWT_SECRET, child, server_env, wait_serving
from bench.report import Line, at_least, at_most, context, percentile, publish
from server.config import Settings
from server.core.auth import Role, mint_token
from tests.support.ports import free_port
from tests.support.postgres import create_migrated_database, start_embedded_for_tests

GENEROUS = "1000000000"  # the gate runs on every call, and never refuses one
PREFERENCES = "tutorstream GetPreferences"
UNCACHED = "tutorstream GetPreferences, cache off"
OWN_HEALTH = "tutorstream Health/Check"
MINIMAL = "minimal grpc.aio Health/Check"
BASELINE = "minimal grpc.aio server, same run"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Tally:
    calls: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.calls / self.seconds

    @property
    def cpu_ms_per_call(self) -> float:
        return self.cpu_seconds / self.calls * 1000


@dataclass(frozen=True)
class Target:
    name: str
    pid: int
    calls: list[Callable[[], Awaitable[object]]]  # one per channel


async def closed_loop(target: Target, concurrency: int, seconds: float, tally: Tally | None) -> None:
    """`concurrency` callers, each issuing its next call as soon as the previous one returns, for `seconds`.
    With `tally` None it is a warm-up and nothing is recorded."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def caller(call: Callable[[], Awaitable[object]]) -> None:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    cpu_before = cpu_seconds(target.pid)
    started = time.perf_counter()
    await asyncio.gather(*(caller(target.calls[index % len(target.calls)]) for index in range(concurrency)))
    elapsed = time.perf_counter() - started
    if tally is not None:
        tally.calls += len(latencies)
        tally.seconds += elapsed
        tally.cpu_seconds += cpu_seconds(target.pid) - cpu_before
        tally.latencies += latencies


def serve_minimal(port: int) -> None:
    """The baseline process: a grpc.aio server with the standard health service and nothing else."""

    async def run() -> None:
        server = aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


def channels(port: int, count: int) -> list[aio.Channel]:
    # A subchannel pool per channel: separate TCP connections, as separate client processes would have.
    return [
        aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(count)
    ]


@dataclass(frozen=True)
class Process:
    pid: int
    port: int


async def measure(
    args: argparse.Namespace, tutorstream: Process, uncached: Process, minimal: Process
) -> dict[str, Tally]:
    token = mint_token(Settings(_env_file=None, jwt_secret=JWT_SECRET), user_id="bench-user", role=Role.STUDENT)
    metadata = (("authorization", f"Bearer {token}"),)
    preferences = agent_service_pb2.GetPreferencesRequest(name="users/me/preferences")
    check = health_pb2.HealthCheckRequest()
    ours, plain = channels(tutorstream.port, args.channels), channels(uncached.port, args.channels)
    theirs = channels(minimal.port, args.channels)
    try:
        agents = [agent_service_pb2_grpc.AgentServiceStub(channel) for channel in ours]
        plain_agents = [agent_service_pb2_grpc.AgentServiceStub(channel) for channel in plain]
        own_health = [health_pb2_grpc.HealthStub(channel) for channel in ours]
        minimal_health = [health_pb2_grpc.HealthStub(channel) for channel in theirs]
        targets = [
            Target(
                PREFERENCES,
                tutorstream.pid,
                [partial(stub.GetPreferences, preferences, metadata=metadata) for stub in agents],
            ),
            Target(MINIMAL, minimal.pid, [partial(stub.Check, check) for stub in minimal_health]),
            Target(OWN_HEALTH, tutorstream.pid, [partial(stub.Check, check) for stub in own_health]),
            Target(
                UNCACHED,
                uncached.pid,
                [partial(stub.GetPreferences, preferences, metadata=metadata) for stub in plain_agents],
            ),
        ]
        for target in targets:  # connections, pools, caches
            await closed_loop(target, args.concurrency, args.warmup, None)
        tallies = {target.name: Tally() for target in targets}
        for round_number in range(args.rounds):
            # The order reverses every round: no target always follows the same one (a server left busy by the
            # previous turn, its garbage, the host's clock) while drift still hits all alike.
            for target in targets if round_number % 2 == 0 else targets[::-1]:
                await closed_loop(target, args.concurrency, args.seconds, tallies[target.name])
            print(f"round {round_number + 1}/{args.rounds} done", flush=True)
        return tallies
    finally:
        for channel in (*ours, *plain, *theirs):
            await channel.close()


async def run(args: argparse.Namespace) -> dict[str, Tally]:
    with tempfile.TemporaryDirectory(prefix="bench-unary-") as tmp:
        workdir = Path(tmp)
        embedded = start_embedded_for_tests(workdir)
        try:
            database_url = create_migrated_database(embedded.admin_url, "bench_unary")
            tutorstream_port, uncached_port, minimal_port = free_port(), free_port(), free_port()
            env = server_env(
                tutorstream_port, tmp, database_url, EMBEDDING_PROVIDER="local", RATE_DEFAULT_PER_MINUTE=GENEROUS
            )
            # The in-process limiter, whatever this shell points at (bench_limiter compares it with Redis).
            os.environ.pop("REDIS_URL", None)
            tutorstream_log, minimal_log = workdir / "tutorstream.log", workdir / "minimal.log"
            uncached_log = workdir / "uncached.log"
            uncached_env = {**env, "PORT": str(uncached_port), "PREFERENCES_CACHE_SECONDS": "0"}
            tutorstream_command = [sys.executable, "-c", "from server.cli import app; app(['serve'])"]
            minimal_command = [sys.executable, "-m", "bench.bench_unary", "--serve-minimal", str(minimal_port)]
            with (
                child(tutorstream_command, env, tutorstream_log) as tutorstream,
                child(tutorstream_command, uncached_env, uncached_log) as uncached,
                child(minimal_command, {}, minimal_log) as minimal,
            ):
                await wait_serving(f"127.0.0.1:{tutorstream_port}", tutorstream, tutorstream_log)
                await wait_serving(f"127.0.0.1:{uncached_port}", uncached, uncached_log)
                await wait_serving(f"127.0.0.1:{minimal_port}", minimal, minimal_log)
                return await measure(
                    args,
                    Process(tutorstream.pid, tutorstream_port),
                    Process(uncached.pid, uncached_port),
                    Process(minimal.pid, minimal_port),
                )
        finally:
            embedded.stop()


def report(args: argparse.Namespace, tallies: dict[str, Tally]) -> list[Line]:
    print(
        f"\nUnary RPCs, closed loop: {args.concurrency} in flight over {args.channels} connections, "
        f"{args.rounds} rounds of {args.seconds:g} s per target"
    )
    print(f"  {'target':<32} {'calls':>7} {'RPS':>8} {'p50 ms':>8} {'p99 ms':>8} {'server CPU ms/call':>19}")
    for name, tally in tallies.items():
        print(
            f"  {name:<32} {tally.calls:>7} {tally.rps:>8.0f} {percentile(tally.latencies, 50):>8.2f} "
            f"{percentile(tally.latencies, 99):>8.2f} {tally.cpu_ms_per_call:>19.3f}"
        )
    ours, own_health, minimal = tallies[PREFERENCES], tallies[OWN_HEALTH], tallies[MINIMAL]
    uncached = tallies[UNCACHED]
    lines = [
        context("unary", "GetPreferences RPS vs minimal Health/Check", ours.rps / minimal.rps, "x", baseline=BASELINE),
        at_least(
            "unary",
            "own Health/Check RPS vs minimal Health/Check",
            own_health.rps / minimal.rps,
            "x",
            0.9,
            baseline=BASELINE,
        ),
        at_most(
            "unary",
            "GetPreferences server CPU per call vs minimal",
            ours.cpu_ms_per_call / minimal.cpu_ms_per_call,
            "x",
            3.5,
            baseline=BASELINE,
        ),
        context(
            "unary",
            "GetPreferences, cache off: server CPU per call vs minimal",
            uncached.cpu_ms_per_call / minimal.cpu_ms_per_call,
            "x",
            baseline=BASELINE,
        ),
    ]
    for name, tally in tallies.items():
        lines += [
            context("unary", f"{name}, RPS", tally.rps, "RPS"),
            context("unary", f"{name}, p50", percentile(tally.latencies, 50), "ms"),
            context("unary", f"{name}, p99", percentile(tally.latencies, 99), "ms"),
        ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one target's turn in a round")
    parser.add_argument("--rounds", type=int, default=6, help="an even number balances the two orders")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per target")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    parser.add_argument("--channels", type=int, default=4, help="client connections per server")
    parser.add_argument("--serve-minimal", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_minimal:
        serve_minimal(args.serve_minimal)
        return
    publish(report(args, asyncio.run(run(args))))


if __name__ == "__main__":
    main()
