"""Authenticated grpc.aio stubs for tests: one `Client` per (user, role, tier)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc import aio
from tutorstream.v1 import (
    agent_service_pb2_grpc,
    analytics_service_pb2_grpc,
    chat_service_pb2_grpc,
    transcript_service_pb2_grpc,
)

from server.config import Settings
from server.core.auth import Role, Tier, mint_token


def _with_token(details: Any, token: str | None) -> Any:
    metadata = list(details.metadata or [])
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    return aio.ClientCallDetails(
        method=details.method,
        timeout=details.timeout,
        metadata=aio.Metadata(*metadata),
        credentials=details.credentials,
        wait_for_ready=details.wait_for_ready,
    )


class _Auth:
    def __init__(self, token: str | None) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)

    async def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(_with_token(details, self._token), requests)

    async def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(_with_token(details, self._token), requests)


# grpc.aio files an interceptor under the FIRST interceptor type it is an instance of, so one object
# implementing all four would only ever see unary-unary calls: one instance per call type.
class _UnaryUnaryAuth(_Auth, aio.UnaryUnaryClientInterceptor):
    pass


class _UnaryStreamAuth(_Auth, aio.UnaryStreamClientInterceptor):
    pass


class _StreamUnaryAuth(_Auth, aio.StreamUnaryClientInterceptor):
    pass


class _StreamStreamAuth(_Auth, aio.StreamStreamClientInterceptor):
    pass


def _auth_interceptors(token: str | None) -> list[Any]:
    return [kind(token) for kind in (_UnaryUnaryAuth, _UnaryStreamAuth, _StreamUnaryAuth, _StreamStreamAuth)]


@dataclass
class Client:
    user_id: str
    token: str | None
    channel: aio.Channel
    chat: chat_service_pb2_grpc.ChatServiceStub
    agents: agent_service_pb2_grpc.AgentServiceStub
    transcripts: transcript_service_pb2_grpc.TranscriptServiceStub
    analytics: analytics_service_pb2_grpc.AnalyticsServiceStub

    async def close(self) -> None:
        await self.channel.close()


def connect(target: str, token: str | None, user_id: str = "") -> Client:
    channel = aio.insecure_channel(target, interceptors=_auth_interceptors(token))
    return Client(
        user_id=user_id,
        token=token,
        channel=channel,
        chat=chat_service_pb2_grpc.ChatServiceStub(channel),
        agents=agent_service_pb2_grpc.AgentServiceStub(channel),
        transcripts=transcript_service_pb2_grpc.TranscriptServiceStub(channel),
        analytics=analytics_service_pb2_grpc.AnalyticsServiceStub(channel),
    )


def token_for(
    settings: Settings,
    user_id: str,
    role: str = "student",
    tier: str | None = None,
    courses: list[str] | None = None,
) -> str:
    return mint_token(settings, user_id=user_id, role=Role(role), tier=Tier(tier) if tier else None, courses=courses)


def error_details(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    """Decode google.rpc details from the trailers into {type name: message}."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)  # type: ignore[arg-type]
            found: dict[str, Any] = {}
            for detail in status.details:
                for name in (
                    "ErrorInfo",
                    "BadRequest",
                    "RetryInfo",
                    "QuotaFailure",
                    "RequestInfo",
                    "PreconditionFailure",
                ):
                    message_type = getattr(error_details_pb2, name)
                    if detail.Is(message_type.DESCRIPTOR):
                        message = message_type()
                        detail.Unpack(message)
                        found[name] = message
            return found
    return {}
