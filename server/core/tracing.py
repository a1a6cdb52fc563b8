"""OpenTelemetry traces: every RPC (the grpc instrumentation's server interceptor), its SQL statements and
Redis commands (the SQLAlchemy and Redis instrumentations), and the stages of a chat turn and of an ingest job
(spans named `chat.*` and `ingest.*`, see `span`).

Off by default and free when off: with no `OTEL_EXPORTER_OTLP_ENDPOINT` in the environment nothing is
installed and the stage spans go to OpenTelemetry's no-op tracer. With it set, `start` installs a tracer
provider (service name from `OTEL_SERVICE_NAME`, default `tutorstream`) exporting in batches over OTLP/gRPC —
the exporter reads the standard `OTEL_EXPORTER_OTLP_*` variables (headers, certificates, timeout) itself.
An application embedding the server may install its own SDK tracer provider first; the server then
instruments itself for that provider and exports nothing of its own.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
_tracer = trace.get_tracer("tutorstream")


def span(name: str, **attributes: str | int | float | bool) -> AbstractContextManager[trace.Span]:
    """A stage of the current request as a child span (a no-op span while tracing is off)."""
    return _tracer.start_as_current_span(name, attributes=attributes)


def start() -> Callable[[], Awaitable[None]] | None:
    """Install the OTLP exporter when the environment asks for one; returns its closer (flushes what is
    buffered), or None when there is nothing to close."""
    if not os.environ.get(ENDPOINT_ENV) or enabled():
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "tutorstream")})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)

    async def close() -> None:
        provider.shutdown()

    return close


def enabled() -> bool:
    """Whether an SDK tracer provider is installed (by `start` or by an embedding application)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def server_interceptors() -> list[Any]:
    """The grpc instrumentation's server interceptor when tracing is on, to run before the server's own."""
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]  # type: ignore[no-untyped-call]


def instrument_clients(sync_engine: Any) -> None:
    """SQL statements of `sync_engine` (an AsyncEngine's `.sync_engine`) and every Redis command become spans."""
    if not enabled():
        return
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The instrumentation declares SQLAlchemy < 2.1; the engine events it hooks are unchanged in 2.1
    # (tests/test_tracing.py checks that statements become spans).
    SQLAlchemyInstrumentor().instrument(engine=sync_engine, enable_commenter=False, skip_dep_check=True)
    redis = RedisInstrumentor()
    if not redis.is_instrumented_by_opentelemetry:
        redis.instrument()
