"""Opaque page tokens (AIP-158) for keyset pagination.

A token is URL-safe base64 of a small JSON object: which listing it belongs to (`scope`, e.g. the session a
message list is for) and the sort key of the last item returned. A token from another listing, or one that
does not decode, is INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from server.core.errors import InvalidArgument


def encode_page_token(scope: str, key: list[Any]) -> str:
    raw = json.dumps({"s": scope, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, scope: str, field: str = "page_token") -> list[Any] | None:
    """The sort key in `token`, or None for an empty token (the first page)."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidArgument.field(field, "is not a page token returned by this method") from None
    if not isinstance(data, dict) or data.get("s") != scope or not isinstance(data.get("k"), list):
        raise InvalidArgument.field(field, "belongs to a different listing; start again without it")
    key: list[Any] = data["k"]
    return key


def page_size(requested: int, *, default: int, maximum: int, field: str = "page_size") -> int:
    if requested < 0:
        raise InvalidArgument.field(field, "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)
