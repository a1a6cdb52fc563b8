"""Resource-name parsing (AIP-122) and ownership checks shared by the servicers."""

from __future__ import annotations

from server.core.auth import Principal, Role
from server.core.errors import InvalidArgument, NotFound
from server.core.ids import ID_PATTERN


def parse_name(name: str, pattern: str, field: str) -> list[str]:
    """Match `name` against a pattern like `sessions/{session}` and return the ids in order."""
    if not name:
        raise InvalidArgument.field(field, f"is required (expected `{pattern}`)")
    literal = pattern.split("/")
    parts = name.split("/")
    if len(parts) != len(literal):
        raise InvalidArgument.field(field, f"`{name}` does not match `{pattern}`")
    ids: list[str] = []
    for expected, actual in zip(literal, parts, strict=True):
        if expected.startswith("{"):
            if not ID_PATTERN.match(actual):
                raise InvalidArgument.field(field, f"`{actual}` is not a valid id in `{pattern}`")
            ids.append(actual)
        elif expected != actual:
            raise InvalidArgument.field(field, f"`{name}` does not match `{pattern}`")
    return ids


def resolve_user(principal: Principal, user_id: str, resource: str) -> str:
    """`me` is the caller. Only services act for other users; for anyone else another user's
    resource answers exactly like a missing one (AIP-211)."""
    if user_id == "me" or user_id == principal.user_id:
        return principal.user_id
    if principal.role is Role.SERVICE:
        return user_id
    raise NotFound(f"{resource} not found")


def require_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not ID_PATTERN.match(value):
        raise InvalidArgument.field(field, "must be 1 to 128 characters of [A-Za-z0-9_.-], starting alphanumeric")
    return value
