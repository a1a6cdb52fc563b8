"""A minimal grpc-web (binary) client over httpx, for looking at the wire through Envoy: frames, trailers,
trailers-only responses. The browser-side client in the tests is Connect-ES; this one exists to see bytes."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import unquote

import httpx
from google.protobuf.message import Message

CONTENT_TYPE = "application/grpc-web+proto"
TRAILER_FLAG = 0x80


def frame(message: Message) -> bytes:
    payload = message.SerializeToString()
    return struct.pack(">BI", 0, len(payload)) + payload


def _parse_trailers(block: bytes) -> dict[str, str]:
    trailers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, separator, value = line.partition(":")
        if separator:
            trailers[name.strip().lower()] = value.strip()
    return trailers


@dataclass
class GrpcWebReply:
    http_status: int
    headers: httpx.Headers
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)

    @property
    def trailers_only(self) -> bool:
        """The status came in the HTTP headers, with no body at all."""
        return "grpc-status" in self.headers and not self.messages and not self.trailers

    @property
    def grpc_status(self) -> int:
        source = self.trailers if "grpc-status" in self.trailers else self.headers
        return int(source.get("grpc-status", "-1"))

    @property
    def grpc_message(self) -> str:
        source = self.trailers if "grpc-status" in self.trailers else self.headers
        return unquote(source.get("grpc-message", ""))


async def iter_frames(stream: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        while len(buffer) >= 5:
            flags, length = struct.unpack(">BI", buffer[:5])
            if len(buffer) < 5 + length:
                break
            yield flags, buffer[5 : 5 + length]
            buffer = buffer[5 + length :]


def _headers(token: str | None, extra: dict[str, str] | None) -> dict[str, str]:
    sent = {"content-type": CONTENT_TYPE, "x-grpc-web": "1", **(extra or {})}
    if token is not None:
        sent["authorization"] = f"Bearer {token}"
    return sent


async def call(
    client: httpx.AsyncClient,
    base_url: str,
    method: str,
    request: Message,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> GrpcWebReply:
    """One grpc-web call (unary or server-streaming); collects every message and the trailers."""
    sent = _headers(token, headers)
    async with client.stream("POST", f"{base_url}{method}", content=frame(request), headers=sent) as response:
        reply = GrpcWebReply(http_status=response.status_code, headers=response.headers)
        async for flags, payload in iter_frames(response.aiter_bytes()):
            if flags & TRAILER_FLAG:
                reply.trailers = _parse_trailers(payload)
            else:
                reply.messages.append(payload)
    return reply


async def stream(
    client: httpx.AsyncClient, base_url: str, method: str, request: Message, *, token: str | None = None
) -> AsyncIterator[bytes]:
    """The messages of a server-streaming grpc-web call as they arrive; raises on a non-OK status."""
    sent = _headers(token, None)
    async with client.stream("POST", f"{base_url}{method}", content=frame(request), headers=sent) as response:
        status = response.headers.get("grpc-status")
        async for flags, payload in iter_frames(response.aiter_bytes()):
            if flags & TRAILER_FLAG:
                status = _parse_trailers(payload).get("grpc-status", status)
            else:
                yield payload
        if status not in (None, "0"):
            raise RuntimeError(f"{method} ended with grpc-status {status}")
