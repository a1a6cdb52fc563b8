"""Prometheus metrics of the server process, served on `METRICS_PORT` (0: no endpoint).

The collectors live in prometheus-client's default registry, next to its `process_*` collectors: one process
hosts one server, and module-level collectors are registered exactly once however many servers a process
(a test run) builds. Transport and domain code record through the small functions below and pass plain
strings, so nothing here depends on grpc. Every label takes values from a bounded set: gRPC method names of
registered handlers, status code names, fixed vocabularies, and at most `MAX_MODEL_LABELS` model names.

Gauges of the event loop (its task count) and of the job queue are sampled by a task inside the server's own
loop every `SAMPLE_INTERVAL_SECONDS`: `asyncio.all_tasks()` is only meaningful from the loop, and the scrape
handler runs in the HTTP server's thread, where it must not touch the database pool either.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from server.core.tasks import stop_task

log = logging.getLogger("tutorstream.metrics")

SAMPLE_INTERVAL_SECONDS = 2.0
JOB_STATS_TIMEOUT_SECONDS = 5.0
MAX_MODEL_LABELS = 32
OTHER = "other"
# The per-status counts procrastinate's `list_queues` reports.
JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")

# Streams (chat answers, watch sessions) last far longer than unary calls, hence the long tail.
RPC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)

RPC_DURATION = Histogram(
    "tutorstream_rpc_duration_seconds",
    "Duration of authenticated RPCs (streams: until the stream ends), by full method name and status code.",
    ["method", "code"],
    buckets=RPC_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "tutorstream_chat_time_to_first_token_seconds",
    "StreamChat: from the turn's start to the first answer text, by who answered (openai, offline, cache).",
    ["provider"],
    buckets=FIRST_TOKEN_BUCKETS,
)
LLM_TOKENS = Counter(
    "tutorstream_llm_tokens",
    "Tokens charged for model calls, by model, operation and kind (prompt or completion).",
    ["model", "operation", "kind"],
)
LLM_COST = Counter(
    "tutorstream_llm_cost_usd",
    "USD charged for model calls at the configured prices, by model and operation.",
    ["model", "operation"],
)
CACHE_REQUESTS = Counter(
    "tutorstream_cache_requests",
    "Lookups in the LLM response cache and the generated-quiz cache, by result (hit or miss).",
    ["cache", "result"],
)
INTERVENTIONS = Counter(
    "tutorstream_interventions",
    "Progress interventions by type and outcome: sent, undelivered (no stream listened), stale (the playhead "
    "moved on before the content was ready), accepted, dismissed.",
    ["type", "outcome"],
)
LIMITER_REJECTIONS = Counter(
    "tutorstream_limiter_rejections",
    "Requests refused by a limit: rate_<class>, streams_<kind>, token_budget.",
    ["limit"],
)
MODERATION_FLAGS = Counter(
    "tutorstream_moderation_flags",
    "Texts moderation flagged, by where they were written (chat, hint, reflection; `<operation>_output` for a "
    "model's structured output, replaced by the offline path) and category (self_harm, profanity, ...).",
    ["surface", "category"],
)
UNGROUNDED_ANSWERS = Counter(
    "tutorstream_ungrounded_answers",
    "Model answers that neither cited the lecture excerpts nor said they answer from general knowledge.",
    ["model"],
)
JOB_QUEUE_DEPTH = Gauge(
    "tutorstream_job_queue_depth",
    "Jobs in the background job queue by queue and status (finished jobs are kept for a few days).",
    ["queue", "status"],
)
ASYNCIO_TASKS = Gauge("tutorstream_asyncio_tasks", "Tasks alive in the server's event loop.")

_models_seen: set[str] = set()


def _model_label(model: str) -> str:
    """Model names come from upstream answers (dated snapshots included): the first MAX_MODEL_LABELS distinct
    names keep their own series, later ones share `other`."""
    if model in _models_seen:
        return model
    if len(_models_seen) < MAX_MODEL_LABELS:
        _models_seen.add(model)
        return model
    return OTHER


def observe_rpc(method: str, code: str, seconds: float) -> None:
    RPC_DURATION.labels(method, code).observe(seconds)


def observe_time_to_first_token(provider: str, seconds: float) -> None:
    TIME_TO_FIRST_TOKEN.labels(provider).observe(seconds)


def count_llm_usage(model: str, operation: str, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
    label = _model_label(model)
    LLM_TOKENS.labels(label, operation, "prompt").inc(prompt_tokens)
    LLM_TOKENS.labels(label, operation, "completion").inc(completion_tokens)
    LLM_COST.labels(label, operation).inc(cost_usd)


def count_cache_lookup(cache: str, hit: bool) -> None:
    CACHE_REQUESTS.labels(cache, "hit" if hit else "miss").inc()


def count_intervention(kind: str, outcome: str) -> None:
    INTERVENTIONS.labels(kind, outcome).inc()


def count_limiter_rejection(limit: str) -> None:
    LIMITER_REJECTIONS.labels(limit).inc()


def count_ungrounded_answer(model: str) -> None:
    UNGROUNDED_ANSWERS.labels(_model_label(model)).inc()


def count_moderation_flag(surface: str, category: str) -> None:
    MODERATION_FLAGS.labels(surface, category).inc()


class QueueStats(Protocol):
    """procrastinate's job manager: per-queue job counts by status."""

    async def list_queues_async(self) -> Iterable[dict[str, Any]]: ...


class MetricsEndpoint:
    """The /metrics HTTP listener of one server, plus the sampler task of its event-loop gauges."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        job_stats: QueueStats | None = None,
        queues: Iterable[str] = (),
        interval_seconds: float = SAMPLE_INTERVAL_SECONDS,
    ) -> None:
        # gRPC takes IPv6 hosts in brackets ("[::]"); a socket address does not.
        self._host = host.strip("[]")
        self._port = port
        self._job_stats = job_stats
        self._queues = set(queues)
        self._interval = interval_seconds
        self._http: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._sampler: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> int:
        """Bind the listener (raises OSError when the port is taken) and start sampling; returns the port."""
        await self.sample()
        self._http, self._thread = start_http_server(self._port, addr=self._host)
        self.port = int(self._http.server_port)
        self._sampler = asyncio.get_running_loop().create_task(self._sample_forever(), name="metrics-sampler")
        log.info("metrics on http://%s:%d/metrics", self._host, self.port)
        return self.port

    async def stop(self) -> None:
        sampler, self._sampler = self._sampler, None
        await stop_task(sampler)
        http, self._http = self._http, None
        thread, self._thread = self._thread, None
        if http is not None:
            # shutdown() waits for serve_forever's next poll (up to half a second): not on the event loop.
            await asyncio.to_thread(http.shutdown)
            http.server_close()
        if thread is not None:
            await asyncio.to_thread(thread.join)
        self.port = 0

    async def sample(self) -> None:
        ASYNCIO_TASKS.set(len(asyncio.all_tasks()))
        if self._job_stats is None:
            return
        try:
            async with asyncio.timeout(JOB_STATS_TIMEOUT_SECONDS):
                rows = list(await self._job_stats.list_queues_async())
        except Exception as exc:
            # The gauges keep their last values; the job queue reports its own outages.
            log.debug("job queue depth unavailable: %s", type(exc).__name__)
            return
        found = {str(row["name"]): row for row in rows}
        # A queue whose jobs were all deleted drops out of the result: report it as empty, not stale.
        self._queues.update(found)
        for queue in self._queues:
            row = found.get(queue, {})
            for status in JOB_STATUSES:
                JOB_QUEUE_DEPTH.labels(queue, status).set(int(row.get(status, 0)))

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.sample()
