"""Where media may come from: a file inside the media directory, an allow-listed http(s) origin, or an
upload spooled to disk. Every entry point enforces the size limit before or while bytes arrive.

Paths: the requested path is joined to the media directory and resolved (`..` and every symlink followed);
anything that resolves outside the directory is PERMISSION_DENIED, so traversal and symlinks that point out
are refused alike. The job resolves the path again before reading it.

URLs: only `http`/`https` whose origin (scheme, host, port) is on the allow-list; redirects are followed by
hand, at most `MAX_REDIRECTS`, and each hop must be on the allow-list too. A `Content-Length` above the
limit is refused before the body is read, and a body that grows past it is cut off.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx

from server.core.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable

MAX_REDIRECTS = 5
MAX_URL_CHARS = 2048
MAX_PATH_CHARS = 1024
MAX_UPLOAD_CHUNK_BYTES = 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 10.0
DOWNLOAD_BLOCK = 256 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}

ByteProgress = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SpooledMedia:
    path: Path
    size: int
    sha256: str


class _SpoolFile:
    """A file written from async code without blocking the event loop."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._handle: BinaryIO | None = None

    async def __aenter__(self) -> _SpoolFile:
        self._handle = await asyncio.to_thread(self._path.open, "wb")
        return self

    async def write(self, data: bytes) -> None:
        assert self._handle is not None
        await asyncio.to_thread(self._handle.write, data)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._handle is not None:
            await asyncio.to_thread(self._handle.close)


def _too_large(size: int, limit: int, field: str) -> InvalidArgument:
    return InvalidArgument.field(
        field, f"the media is {size} bytes; the limit is {limit} bytes", reason="MEDIA_TOO_LARGE"
    )


# --- media directory -------------------------------------------------------------------------------


def resolve_media_path(media_dir: Path | None, requested: str, *, field: str = "media_path") -> Path:
    """The real path of `requested` inside `media_dir`. PERMISSION_DENIED when it resolves outside (or no
    directory is configured), NOT_FOUND when it does not exist, INVALID_ARGUMENT when it is not a file."""
    if not requested.strip():
        raise InvalidArgument.field(field, "is required")
    if len(requested) > MAX_PATH_CHARS or "\x00" in requested:
        raise InvalidArgument.field(field, f"must be a path of at most {MAX_PATH_CHARS} characters")
    if media_dir is None:
        raise PermissionDenied(
            "this server reads no media files (ASR_MEDIA_DIR is not set)", reason="MEDIA_PATH_NOT_ALLOWED"
        )
    root = Path(os.path.realpath(media_dir))
    resolved = Path(os.path.realpath(root / requested))
    if not resolved.is_relative_to(root) or resolved == root:
        raise PermissionDenied(f"{field} is outside the media directory", reason="MEDIA_PATH_NOT_ALLOWED")
    if not resolved.exists():
        raise NotFound(f"{field} {requested!r} does not exist in the media directory")
    if not resolved.is_file():
        raise InvalidArgument.field(field, "is not a regular file")
    return resolved


# --- URLs ------------------------------------------------------------------------------------------


def origin_of(url: str) -> str | None:
    """`scheme://host:port` with the default port filled in; None when `url` is no absolute http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or DEFAULT_PORTS[scheme]}"


def check_url(url: str, allowed_origins: Sequence[str], *, field: str = "media_url") -> str:
    """`url` when it may be fetched; INVALID_ARGUMENT when malformed, PERMISSION_DENIED when its origin is
    not on the allow-list."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidArgument.field(field, f"must be at most {MAX_URL_CHARS} characters")
    origin = origin_of(url)
    if origin is None:
        raise InvalidArgument.field(field, "must be an absolute http or https URL")
    if urlsplit(url).username is not None:
        raise InvalidArgument.field(field, "must not carry credentials")
    allowed = {origin_of(entry) for entry in allowed_origins}
    if origin not in allowed:
        raise PermissionDenied(f"{field}: {origin} is not an allowed media origin", reason="MEDIA_URL_NOT_ALLOWED")
    return url.strip()


class MediaFetcher:
    """Downloads from allow-listed origins with a size limit; one instance per RPC or job."""

    def __init__(self, allowed_origins: Sequence[str], *, max_bytes: int, timeout_seconds: float) -> None:
        self._allowed = list(allowed_origins)
        self._max_bytes = max_bytes
        self._timeout = httpx.Timeout(timeout_seconds, connect=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds))

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(follow_redirects=False, timeout=self._timeout, trust_env=False)

    async def _final_response(self, client: httpx.AsyncClient, method: str, url: str, field: str) -> httpx.Response:
        """Send `method`, following redirects that stay on the allow-list; the caller closes the response."""
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, self._allowed, field=field)
            try:
                response = await client.send(client.build_request(method, url), stream=True)
            except httpx.HTTPError as error:
                raise Unavailable(f"{field}: the media server could not be reached ({type(error).__name__})") from None
            if response.is_redirect and "location" in response.headers:
                await response.aclose()
                url = urljoin(url, response.headers["location"])
                continue
            if response.status_code >= 500:
                await response.aclose()
                raise Unavailable(f"{field}: the media server answered {response.status_code}")
            if response.status_code >= 400:
                await response.aclose()
                raise InvalidArgument.field(
                    field, f"the media server answered {response.status_code}", reason="MEDIA_URL_UNAVAILABLE"
                )
            return response
        raise InvalidArgument.field(field, f"more than {MAX_REDIRECTS} redirects", reason="MEDIA_URL_UNAVAILABLE")

    def _check_length(self, response: httpx.Response, field: str) -> None:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
            raise _too_large(int(declared), self._max_bytes, field)

    async def check(self, url: str, *, field: str = "media_url") -> None:
        """Quick look before queuing: the URL answers and its stated size is within the limit. Only the
        response head is read (GET rather than HEAD, which some media servers refuse)."""
        async with self._client() as client:
            response = await self._final_response(client, "GET", url, field)
            try:
                self._check_length(response, field)
            finally:
                await response.aclose()

    async def download(
        self, url: str, destination: Path, *, on_progress: ByteProgress | None = None, field: str = "media_url"
    ) -> SpooledMedia:
        async with self._client() as client:
            response = await self._final_response(client, "GET", url, field)
            try:
                self._check_length(response, field)
                declared = int(response.headers.get("content-length", "0") or 0)
                received = 0
                digest = hashlib.sha256()
                async with _SpoolFile(destination) as target:
                    try:
                        async for block in response.aiter_bytes(DOWNLOAD_BLOCK):
                            received += len(block)
                            if received > self._max_bytes:
                                raise _too_large(received, self._max_bytes, field)
                            digest.update(block)
                            await target.write(block)
                            if on_progress is not None:
                                await on_progress(received, max(declared, received))
                    except httpx.HTTPError as error:
                        raise Unavailable(f"{field}: the download broke off ({type(error).__name__})") from None
            finally:
                await response.aclose()
        if received == 0:
            raise InvalidArgument.field(field, "the media is empty", reason="MEDIA_UNDECODABLE")
        return SpooledMedia(destination, received, digest.hexdigest())


# --- uploads ---------------------------------------------------------------------------------------


async def spool_upload(
    chunks: AsyncIterator[bytes], destination: Path, *, declared_bytes: int, max_bytes: int
) -> SpooledMedia:
    """Write an upload to `destination`, checking every chunk's size and the running total against the
    declared size; the caller removes the file when this fails."""
    digest = hashlib.sha256()
    received = 0
    async with _SpoolFile(destination) as target:
        async for chunk in chunks:
            if not chunk:
                raise InvalidArgument.field("chunk", "must not be empty")
            if len(chunk) > MAX_UPLOAD_CHUNK_BYTES:
                raise InvalidArgument.field(
                    "chunk", f"is {len(chunk)} bytes; chunks are at most {MAX_UPLOAD_CHUNK_BYTES} bytes"
                )
            received += len(chunk)
            if received > declared_bytes:
                raise InvalidArgument.field("chunk", f"the chunks exceed the declared total_bytes ({declared_bytes})")
            if received > max_bytes:
                raise _too_large(received, max_bytes, "chunk")
            digest.update(chunk)
            await target.write(chunk)
    if received != declared_bytes:
        raise InvalidArgument.field("total_bytes", f"declared {declared_bytes} bytes but {received} arrived")
    return SpooledMedia(destination, received, digest.hexdigest())
