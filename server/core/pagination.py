"""Opaque page tokens (AIP-158) for keyset pagination, and the page of a statement newest first.

A token is URL-safe base64 of a small JSON object: which listing it belongs to (`scope`, e.g. the session a
message list is for) and the sort key of the last item returned. A token from another listing, one that does
not decode, or one whose key is not of the listing's shape (a forged `{"k": [5, null]}`) is INVALID_ARGUMENT.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, func
from sqlalchemy.orm import InstrumentedAttribute

from server.core.errors import InvalidArgument

_Statement = TypeVar("_Statement", bound=Select[Any])


def encode_page_token(scope: str, key: list[Any]) -> str:
    """A token for the page after the item whose sort key is `key` (datetimes are written in ISO 8601)."""
    written = [value.isoformat() if isinstance(value, datetime) else value for value in key]
    raw = json.dumps({"s": scope, "k": written}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(
    token: str, scope: str, shape: tuple[type, ...], field: str = "page_token"
) -> tuple[Any, ...] | None:
    """The sort key in `token`, one value of each type of `shape` (str, int or datetime), or None for an
    empty token (the first page)."""
    if not token:
        return None
    not_ours = InvalidArgument.field(field, "is not a page token returned by this method")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        raise not_ours from None
    if not isinstance(data, dict) or not isinstance(data.get("k"), list):
        raise not_ours
    if data.get("s") != scope:
        raise InvalidArgument.field(field, "belongs to a different listing; start again without it")
    key: list[Any] = data["k"]
    if len(key) != len(shape):
        raise not_ours
    values: list[Any] = []
    for value, kind in zip(key, shape, strict=True):
        if kind is datetime:
            try:
                values.append(datetime.fromisoformat(value))
            except (TypeError, ValueError):
                raise not_ours from None
        elif type(value) is kind:
            values.append(value)
        else:
            raise not_ours
    return tuple(values)


def page_size(requested: int, *, default: int, maximum: int, field: str = "page_size") -> int:
    if requested < 0:
        raise InvalidArgument.field(field, "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def newest_first(
    statement: _Statement,
    created: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[str],
    *,
    after: tuple[Any, ...] | None,
    limit: int,
) -> _Statement:
    """At most `limit` rows of `statement`, newest first by (`created`, `key`); with `after`, the (created, key)
    of the previous page's last row, only the rows that follow it."""
    statement = statement.order_by(created.desc(), key.desc()).limit(limit)
    if after is not None:
        statement = statement.where(func.row(created, key) < func.row(after[0], after[1]))
    return statement
