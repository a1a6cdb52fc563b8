"""What every request passes before a servicer sees it: it decodes, none of its text holds a NUL, and every
enum holds one of its declared values.

- A body that is not the method's message (truncated, garbage, another message's bytes) is not left to
  grpc's deserializer, which would answer UNKNOWN before authentication with a traceback in the log: the
  wrapped deserializer hands the interceptor a `Malformed` marker, which answers INVALID_ARGUMENT
  ("malformed request", reason MALFORMED_REQUEST) through the access log like any refused call.
- PostgreSQL `text` cannot hold U+0000, and nothing a student or an instructor types needs it: a NUL in any
  string field, at any depth (messages, repeated fields, maps), is refused with INVALID_ARGUMENT naming the
  field (`learning_context.video_id`, `events[2].note`), before anything is stored. Bytes fields (uploaded
  media) are not text and are left alone.
- proto3 enums are open: a client can send `view: 9`. An enum value the contract does not declare is refused
  with INVALID_ARGUMENT naming the field and the values it takes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from server.core.errors import InvalidArgument

NUL = "\x00"


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request body the method's deserializer could not read."""

    size: int


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, returning `Malformed` instead of raising on a body it cannot read."""
    if deserializer is None:
        return None

    def read(body: bytes) -> Any:
        try:
            return deserializer(body)
        except (DecodeError, ValueError, TypeError, UnicodeDecodeError):
            return Malformed(len(body))

    return read


def check(request: Any) -> Any:
    """`request`, or InvalidArgument for a malformed request, a NUL in any of its text or an undeclared enum
    value."""
    if isinstance(request, Malformed):
        raise InvalidArgument(
            f"malformed request: {request.size} bytes that are not this method's request message",
            reason="MALFORMED_REQUEST",
        )
    if isinstance(request, Message):
        problem = _problem_in(request, "")
        if problem is not None:
            path, description, reason = problem
            raise InvalidArgument.field(path, description, reason=reason)
    return request


async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A client stream whose every message passed `check`."""
    async for request in requests:
        check(request)
        yield request


_NUL = ("contains a NUL character (U+0000), which no text field accepts", "NUL_CHARACTER")
Problem = tuple[str, str, str]


def _problem_in(message: Message, prefix: str) -> Problem | None:
    """The first field of `message` (a path from `prefix`) with a NUL or an undeclared enum value."""
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            found = _problem_in_messages(field, value, name)
            if found is not None:
                return found
            continue
        items = list(enumerate(value)) if field.is_repeated else [(None, value)]
        for index, item in items:
            where = name if index is None else f"{name}[{index}]"
            if field.type == FieldDescriptor.TYPE_STRING and NUL in item:
                return (where, *_NUL)
            if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
                declared = field.enum_type.values_by_number
                if item not in declared:
                    names = ", ".join(declared[number].name for number in sorted(declared))
                    return (where, f"{item} is not a value of {field.enum_type.name} ({names})", "UNKNOWN_ENUM_VALUE")
    return None


def _problem_in_messages(field: FieldDescriptor, value: Any, name: str) -> Problem | None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return (f"{name}[key]", *_NUL)
            where = f"{name}[{key!s:.40}]"
            if isinstance(item, str):
                if NUL in item:
                    return (where, *_NUL)
            elif isinstance(item, Message):
                found = _problem_in(item, f"{where}.")
                if found is not None:
                    return found
        return None
    if field.is_repeated:
        for index, item in enumerate(value):
            found = _problem_in(item, f"{name}[{index}].")
            if found is not None:
                return found
        return None
    return _problem_in(value, f"{name}.")
