"""Limiter check latency (Redis on loopback vs in-process) and its share of a unary RPC.

    python -m bench.bench_limiter [--checks 5000] [--rpcs 2000]

Starts its own redis-server and embedded PostgreSQL in a temporary directory. Part 1 times one rate
limit check (one EVALSHA round trip, or the in-process GCRA) and a whole gate admission. Part 2 runs
one real grpc.aio server and times GetPreferences (a unary read) with the gate swapped between open
(no limits), in-process and Redis, interleaving the three in rounds so drift hits them alike.

Published (bench.report): the Redis check's p50 against its target (<= 0.3 ms); the in-process check, the
p99s and the gate's share of the RPC for context.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis
from tutorstream.v1 import agent_service_pb2

from bench.report import at_most, context, percentile, publish
from server.app import TutorstreamServer
from server.core.auth import Principal, Role, Tier
from server.limits.gate import LimitsGate
from server.limits.gcra import Cell, LocalLimiter
from server.limits.policy import LimitPolicy, RateLimit, RpcClass
from server.limits.redis_limiter import RedisLimiter
from tests.conftest import make_settings
from tests.support.clients import connect, token_for
from tests.support.postgres import create_migrated_database, start_embedded_for_tests
from tests.support.redis_server import RedisServer

HINT = "/tutorstream.v1.AgentService/GetHint"
GENEROUS = 1_000_000_000  # nobody is refused: the benchmark times the check, not the refusal


class _OpenGate:
    @contextlib.asynccontextmanager
    async def admit(self, principal: Principal, method: str) -> AsyncIterator[None]:
        yield


REDIS_CHECK = "rate check, Redis (EVALSHA)"
LOCAL_CHECK = "rate check, in-process"


def percentiles(samples: list[float]) -> tuple[float, float]:
    return percentile(samples, 50), percentile(samples, 99)


async def timed(count: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(min(200, count)):
        await call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def row(name: str, samples: list[float]) -> str:
    p50, p99 = percentiles(samples)
    return f"  {name:<40} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms"


async def limiter_checks(redis_url: str, checks: int) -> dict[str, list[float]]:
    cell = Cell.of(RateLimit(RpcClass.HINT, GENEROUS, 60.0))
    settings = make_settings(Path(tempfile.gettempdir()), "postgresql://unused/unused", rate_hint_per_minute=GENEROUS)
    policy = LimitPolicy(settings)
    principal = Principal(f"bench-{uuid.uuid4().hex[:8]}", Role.STUDENT, Tier.FREE)
    client = Redis.from_url(redis_url)
    shared = RedisLimiter(client, lease_seconds=30.0)
    local = LocalLimiter()
    redis_gate = LimitsGate(policy, redis=client)
    local_gate = LimitsGate(policy)

    async def through(gate: LimitsGate) -> None:
        async with gate.admit(principal, HINT):
            pass

    try:
        return {
            REDIS_CHECK: await timed(checks, lambda: shared.admit("bench:rate", cell, "", 0, "")),
            LOCAL_CHECK: await timed(checks, lambda: local.admit("bench:rate", cell, "", 0, "")),
            "gate admission, Redis": await timed(checks, lambda: through(redis_gate)),
            "gate admission, in-process": await timed(checks, lambda: through(local_gate)),
            "Redis PING (round-trip floor)": await timed(checks, client.ping),
        }
    finally:
        await redis_gate.close()
        await shared.close()
        await client.aclose()


async def rpc_share(redis_url: str, database_url: str, data_dir: Path, rpcs: int) -> dict[str, list[float]]:
    settings = make_settings(
        data_dir,
        database_url,
        redis_url=redis_url,
        rate_default_per_minute=GENEROUS,
    )
    server = TutorstreamServer(settings)
    await server.start()
    interceptor = server.interceptor
    assert interceptor is not None
    redis_gate = server.runtime.limits
    local_gate = LimitsGate(LimitPolicy(settings))
    gates: dict[str, object] = {
        "GetPreferences, no gate": _OpenGate(),
        "GetPreferences, in-process gate": local_gate,
        "GetPreferences, Redis gate": redis_gate,
    }
    user = f"bench-{uuid.uuid4().hex[:8]}"
    client = connect(f"127.0.0.1:{server.port}", token_for(settings, user), user)
    request = agent_service_pb2.GetPreferencesRequest(name="users/me/preferences")
    samples: dict[str, list[float]] = {name: [] for name in gates}
    rounds = 10
    try:
        for _ in range(rounds):
            for name, gate in gates.items():
                interceptor.gate = gate  # type: ignore[assignment]
                samples[name] += await timed(rpcs // rounds, lambda: client.agents.GetPreferences(request))
    finally:
        interceptor.gate = redis_gate
        await client.close()
        await server.stop(0)
    return samples


async def main(checks: int, rpcs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-limiter-") as scratch, RedisServer() as redis_server:
        embedded = start_embedded_for_tests(Path(scratch))
        try:
            database_url = create_migrated_database(embedded.admin_url, "bench")
            checks_taken = await limiter_checks(redis_server.url, checks)
            rpc_samples = await rpc_share(redis_server.url, database_url, Path(scratch), rpcs)
        finally:
            embedded.stop()

    print(f"Limiter check latency ({checks} sequential checks each, loopback redis-server)")
    for name, taken in checks_taken.items():
        print(row(name, taken))
    print(f"\nUnary RPC latency, gate swapped on one server ({rpcs} calls each, interleaved in rounds)")
    for name, taken in rpc_samples.items():
        print(row(name, taken))
    open_p50 = percentiles(rpc_samples["GetPreferences, no gate"])[0]
    shares = [context("limiter", "GetPreferences p50, gate off", open_p50, "ms")]
    for kind in ("in-process", "Redis"):
        gated_p50 = percentiles(rpc_samples[f"GetPreferences, {kind} gate"])[0]
        added = gated_p50 - open_p50
        share = max(0.0, added) / gated_p50 * 100
        print(f"  gate share of the RPC's p50, {kind:<10} {share:5.1f} %  ({added:+.3f} ms)")
        shares.append(
            context(
                "limiter",
                f"{kind} gate's share of the GetPreferences p50",
                share,
                "%",
                baseline="same server, gate off, interleaved",
            )
        )

    redis_p50, redis_p99 = percentiles(checks_taken[REDIS_CHECK])
    local_p50, local_p99 = percentiles(checks_taken[LOCAL_CHECK])
    publish(
        [
            at_most("limiter", "rate check with Redis, p50", redis_p50, "ms", 0.3),
            context("limiter", "rate check with Redis, p99", redis_p99, "ms"),
            context("limiter", "rate check in-process, p50", local_p50, "ms"),
            context("limiter", "rate check in-process, p99", local_p99, "ms"),
            *shares,
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=5000, help="limiter checks per variant")
    parser.add_argument("--rpcs", type=int, default=2000, help="unary RPCs per variant")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.checks, arguments.rpcs))
