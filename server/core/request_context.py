"""Per-RPC context (caller, request id) carried in contextvars, set by the interceptor."""

from __future__ import annotations

from contextvars import ContextVar

from server.core.auth import Principal
from server.core.errors import Unauthenticated

_principal: ContextVar[Principal | None] = ContextVar("principal", default=None)
_request_id: ContextVar[str] = ContextVar("request_id", default="-")


def current_principal() -> Principal:
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("this method requires authentication", reason="MISSING_CREDENTIALS")
    return principal


def current_request_id() -> str:
    return _request_id.get()


def bind(principal: Principal | None, request_id: str) -> None:
    _principal.set(principal)
    _request_id.set(request_id)
