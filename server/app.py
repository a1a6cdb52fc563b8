"""Build and run the grpc.aio server: interceptors, servicers, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from tutorstream.v1 import (
    agent_service_pb2,
    agent_service_pb2_grpc,
    analytics_service_pb2,
    analytics_service_pb2_grpc,
    chat_service_pb2,
    chat_service_pb2_grpc,
    transcript_service_pb2,
    transcript_service_pb2_grpc,
)

from server.agents.preferences import PreferencesService
from server.agents.servicer import AgentServicer
from server.config import Settings
from server.core.auth import Authenticator
from server.core.db import Database
from server.core.interceptors import ServerInterceptor

log = logging.getLogger("tutorstream.server")

SERVICE_NAMES = (
    chat_service_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name,
    agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    transcript_service_pb2.DESCRIPTOR.services_by_name["TranscriptService"].full_name,
    analytics_service_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name,
)


@dataclass
class Runtime:
    """Long-lived collaborators shared by the servicers of one process. Built once in `start()`;
    whatever needs closing registers a closer in `closers` (closed in reverse order on shutdown)."""

    settings: Settings
    database: Database
    authenticator: Authenticator
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def register_servicers(server: aio.Server, runtime: Runtime) -> None:
    """Each domain's servicer, built from the runtime. Unimplemented RPCs answer UNIMPLEMENTED."""
    chat_service_pb2_grpc.add_ChatServiceServicer_to_server(
        chat_service_pb2_grpc.ChatServiceServicer(),  # type: ignore[abstract]
        server,
    )
    agent_service_pb2_grpc.add_AgentServiceServicer_to_server(
        AgentServicer(PreferencesService(runtime.database)),  # type: ignore[abstract]
        server,
    )
    transcript_service_pb2_grpc.add_TranscriptServiceServicer_to_server(
        transcript_service_pb2_grpc.TranscriptServiceServicer(),  # type: ignore[abstract]
        server,
    )
    analytics_service_pb2_grpc.add_AnalyticsServiceServicer_to_server(
        analytics_service_pb2_grpc.AnalyticsServiceServicer(),  # type: ignore[abstract]
        server,
    )


class TutorstreamServer:
    """One server process: owns the database handle and every long-lived client it opens."""

    def __init__(self, settings: Settings, *, database: Database | None = None) -> None:
        self.settings = settings
        self._database = database
        self._owns_database = database is None
        self._server: aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.port = 0
        self.interceptor: ServerInterceptor | None = None
        self.runtime: Runtime

    @property
    def database(self) -> Database:
        if self._database is None:
            raise RuntimeError("server not started")
        return self._database

    async def start(self) -> int:
        settings = self.settings
        if self._database is None:
            self._database = await Database.from_settings(settings)
        if settings.migrate_on_start:
            await self._database.run_migrations()
        authenticator = Authenticator(settings)
        self.runtime = Runtime(settings=settings, database=self._database, authenticator=authenticator)
        self._closers = self.runtime.closers
        self.interceptor = ServerInterceptor(authenticator)
        server = aio.server(
            interceptors=[self.interceptor],
            options=[
                ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
                ("grpc.max_send_message_length", settings.max_send_message_bytes),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.so_reuseport", 0),
            ],
        )
        register_servicers(server, self.runtime)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        self.port = server.add_insecure_port(f"{settings.host}:{settings.port}")
        if self.port == 0:
            raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
        await server.start()
        self._server = server
        await self._set_serving(health_pb2.HealthCheckResponse.SERVING)
        log.info("tutorstream listening on %s:%d", settings.host, self.port)
        return self.port

    async def _set_serving(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first (load balancers drain), then stop accepting and let in-flight RPCs finish."""
        if self._server is None:
            return
        server, self._server = self._server, None
        await self._set_serving(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.settings.shutdown_notice_seconds > 0:
            await asyncio.sleep(self.settings.shutdown_notice_seconds)
        await server.stop(self.settings.grace_seconds if grace is None else grace)
        for close in reversed(self._closers):
            with contextlib.suppress(Exception):
                await close()
        self._closers.clear()
        if self._owns_database and self._database is not None:
            await self._database.dispose()
            self._database = None
        log.info("tutorstream stopped")

    async def wait_for_termination(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    server = TutorstreamServer(settings)
    await server.start()
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    await stop_requested.wait()
    log.info("shutdown requested: draining for up to %.1fs", settings.grace_seconds)
    await server.stop()
