"""Traces over OTLP: a server process started with OTEL_EXPORTER_OTLP_ENDPOINT exports the span tree of a
StreamChat — the RPC's server span, the turn's stages under it, and SQL statements — to an OTLP/gRPC
collector (a real grpc server implementing the collector's TraceService, on loopback)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from tutorstream.v1 import chat_service_pb2 as chat_pb

from server.config import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.support.clients import connect, token_for
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parent.parent


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[trace_pb2.Span] = []

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    server = grpc.aio.server()
    received = Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(received, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield received, port
    await server.stop(0)


async def serving(target: str, process: asyncio.subprocess.Process) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        async with asyncio.timeout(120):
            while process.returncode is None:
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.2)
    raise AssertionError("the server process exited before serving")


async def test_a_stream_chat_is_exported_as_one_span_tree(
    collector: tuple[Collector, int], fresh_database_url: str, tmp_path: Path
) -> None:
    received, collector_port = collector
    port = free_port()
    environment = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": fresh_database_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "MIGRATE_ON_START": "false",
        "SEED_DEMO_ON_START": "false",
        "RUN_WORKERS_IN_PROCESS": "false",
        "SHUTDOWN_NOTICE_SECONDS": "0",
        "EMBEDDING_PROVIDER": "local",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    for unset in ("REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        environment.pop(unset, None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from server.cli import app; app(['serve'])",
        cwd=REPO,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await serving(f"127.0.0.1:{port}", process)
        settings = Settings(_env_file=None, jwt_secret=TEST_JWT_SECRET)  # type: ignore[call-arg]
        client = connect(f"127.0.0.1:{port}", token_for(settings, "traced"), "traced")
        try:
            session = (await client.chat.CreateSession(chat_pb.CreateSessionRequest())).session.name
            chunks = [c async for c in client.chat.StreamChat(chat_pb.StreamChatRequest(session=session, message="hi"))]
            assert chunks[-1].finish_reason == chat_pb.FINISH_REASON_STOP
        finally:
            await client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await process.wait() == 0

    by_name = {span.name: span for span in received.spans}
    turn = by_name["/tutorstream.v1.ChatService/StreamChat"]
    assert turn.kind == trace_pb2.Span.SPAN_KIND_SERVER
    stages = ["chat.store_question", "chat.moderation", "chat.context", "chat.prompt", "chat.store_answer"]
    for stage in stages:
        assert by_name[stage].trace_id == turn.trace_id, stage
        assert by_name[stage].parent_span_id == turn.span_id, stage
    assert any(event.name == "chat.first_token" for event in turn.events)
    statements = [
        s for s in received.spans if s.trace_id == turn.trace_id and s.kind == trace_pb2.Span.SPAN_KIND_CLIENT
    ]
    assert statements, "the turn's SQL statements are spans of its trace"
