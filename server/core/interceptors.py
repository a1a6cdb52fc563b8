"""One server interceptor: request id, authentication, the RPC gate hook, error mapping, access log.

It wraps each method's behaviour in a coroutine (unary responses) or an async generator (streamed responses)
once, when the service is registered (`add_service`), rather than being a grpc.aio interceptor: an aio
interceptor is awaited on every call, health checks and reflection included, before the handler is even
found. Health and reflection are registered on the server directly and pass through untouched. Everything runs
in the RPC's own task, so the contextvars set here are visible to the servicer.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

import grpc
from grpc import aio

from server.core import errors, metrics, request_context, requests, status
from server.core.auth import Authenticator, Principal

log = logging.getLogger("tutorstream.access")
errlog = logging.getLogger("tutorstream.errors")

REQUEST_ID_KEY = "x-request-id"
S = TypeVar("S")


class RpcGate(Protocol):
    """Admission hook run after authentication (rate limits, concurrency limits)."""

    def admit(self, principal: Principal, method: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class _OpenGate:
    @contextlib.asynccontextmanager
    async def admit(self, principal: Principal, method: str) -> AsyncIterator[None]:
        yield


def _metadata(context: aio.ServicerContext[Any, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            found[key.lower()] = value
    return found


def _admitted(principal: Principal | None, refused: Exception | None) -> Principal:
    """The call's principal, or why it has none raised."""
    if refused is not None:
        raise refused
    assert principal is not None
    return principal


class _RpcOutcome:
    def __init__(self) -> None:
        self.code = grpc.StatusCode.OK
        self.reason = "-"


class _WrappingRegistry:
    """Stands in for the server while a generated `add_*Servicer_to_server` registers one service. The generated
    code registers every method twice: in a generic handler and as registered method handlers, which grpc
    looks up first and by exact name. Only the registered ones are kept, wrapped, so no call reaches a behaviour
    unwrapped; any other method name is UNIMPLEMENTED."""

    def __init__(self, server: aio.Server, wrap: Callable[[grpc.RpcMethodHandler, str], grpc.RpcMethodHandler]):
        self._server = server
        self._wrap = wrap

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        """The generic copy of the registered handlers below: not needed."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        wrapped = {name: self._wrap(handler, f"/{service}/{name}") for name, handler in handlers.items()}
        self._server.add_registered_method_handlers(service, wrapped)


class ServerInterceptor:
    def __init__(self, authenticator: Authenticator, gate: RpcGate | None = None) -> None:
        self._authenticator = authenticator
        self.gate: RpcGate = gate or _OpenGate()

    def add_service(self, server: aio.Server, add: Callable[[S, aio.Server], None], servicer: S) -> None:
        """Register `servicer` on `server` with its generated `add` function, every method wrapped."""
        # The generated functions call only the two registration methods `_WrappingRegistry` has.
        add(servicer, cast(aio.Server, _WrappingRegistry(server, self._wrap)))

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        reader = requests.tolerant(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method, streamed=False),
                request_deserializer=reader,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(handler.stream_unary, method, streamed=True),
                request_deserializer=requests.checking(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method, streamed=False),
                request_deserializer=reader,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(handler.stream_stream, method, streamed=True),
            request_deserializer=requests.checking(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    def _start(self, context: aio.ServicerContext[Any, Any]) -> tuple[str, Principal | None, Exception | None]:
        """The call's request id (the client's, when sane), its principal, or why it has none."""
        metadata = _metadata(context)
        request_id = metadata.get(REQUEST_ID_KEY, "")
        if not request_id or len(request_id) > 64 or not request_id.isprintable():
            request_id = uuid.uuid4().hex
        try:
            principal = self._authenticator.authenticate(metadata.get("authorization"))
        except Exception as exc:
            request_context.bind(None, request_id)
            return request_id, None, exc
        request_context.bind(principal, request_id)
        return request_id, principal, None

    async def _fail(
        self,
        context: aio.ServicerContext[Any, Any],
        method: str,
        request_id: str,
        exc: Exception,
        outcome: _RpcOutcome,
    ) -> None:
        if isinstance(exc, errors.DomainError):
            mapped = status.status_for_error(exc, request_id)
            outcome.reason = exc.reason
        elif isinstance(exc, NotImplementedError):
            mapped = status.unimplemented_status(method, request_id)
        else:
            errlog.exception("unexpected error in %s (request id %s)", method, request_id)
            mapped = status.internal_status(request_id)
        outcome.code = mapped.code
        await context.abort(mapped.code, mapped.details, mapped.trailing_metadata)

    def _log(
        self, method: str, outcome: _RpcOutcome, started: float, request_id: str, principal: Principal | None
    ) -> None:
        elapsed = time.perf_counter() - started
        metrics.observe_rpc(method, outcome.code.name, elapsed)
        log.info(
            "rpc method=%s status=%s reason=%s duration_ms=%.1f request_id=%s user=%s",
            method,
            outcome.code.name,
            outcome.reason,
            elapsed * 1000,
            request_id,
            principal.user_id if principal else "-",
        )

    def _wrap_unary(self, behavior: Callable[..., Any], method: str, *, streamed: bool) -> Callable[..., Any]:
        async def wrapper(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            outcome = _RpcOutcome()
            request_id, principal, refused = self._start(context)
            try:
                principal = _admitted(principal, refused)
                if not streamed:
                    request = requests.check(request)
                async with self.gate.admit(principal, method):
                    result = behavior(request, context)
                    return await result if inspect.isawaitable(result) else result
            except aio.AbortError:
                outcome.code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:
                await self._fail(context, method, request_id, exc, outcome)
            except BaseException:
                outcome.code = grpc.StatusCode.CANCELLED
                raise
            finally:
                self._log(method, outcome, started, request_id, principal)

        return wrapper

    def _wrap_stream(self, behavior: Callable[..., Any], method: str, *, streamed: bool) -> Callable[..., Any]:
        async def wrapper(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started = time.perf_counter()
            outcome = _RpcOutcome()
            request_id, principal, refused = self._start(context)
            try:
                principal = _admitted(principal, refused)
                if not streamed:
                    request = requests.check(request)
                async with self.gate.admit(principal, method):
                    result = behavior(request, context)
                    if inspect.isasyncgen(result):
                        try:
                            async for item in result:
                                yield item
                        finally:
                            await result.aclose()
                    elif inspect.isawaitable(result):
                        await result
            except aio.AbortError:
                outcome.code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception as exc:
                await self._fail(context, method, request_id, exc, outcome)
            except BaseException:
                outcome.code = grpc.StatusCode.CANCELLED
                raise
            finally:
                self._log(method, outcome, started, request_id, principal)

        return wrapper
