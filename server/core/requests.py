"""What every request passes before a servicer sees it: it decodes, none of its text holds a NUL, and every
enum holds one of its declared values.

- A body that is not the method's message (truncated, garbage, another message's bytes) is not left to
  grpc's deserializer, which would answer UNKNOWN before authentication with a traceback in the log: the
  wrapped deserializer hands the interceptor a `Malformed` marker, which answers INVALID_ARGUMENT
  ("malformed request", reason MALFORMED_REQUEST) through the access log like any refused call. Messages of
  a client stream are read by the handler, inside the interceptor, so their deserializer checks each one
  itself and raises.
- PostgreSQL `text` cannot hold U+0000, and nothing a student or an instructor types needs it: a NUL in any
  string field, at any depth (messages, repeated fields, maps), is refused with INVALID_ARGUMENT naming the
  field (`learning_context.video_id`, `events[2].note`), before anything is stored. Bytes fields (uploaded
  media) are not text and are left alone.
- proto3 enums are open: a client can send `view: 9`. An enum value the contract does not declare is refused
  with INVALID_ARGUMENT naming the field and the values it takes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
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


def checking(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """For a method whose requests stream in: `deserializer`, with `check` applied to every message it reads.
    The handler reads the stream inside the interceptor (after authentication), so a refusal raised here ends
    the call with its status like any other error, and nothing stands between the handler and grpc's reads."""
    read = tolerant(deserializer)
    if read is None:
        return None

    def read_checked(body: bytes) -> Any:
        return check(read(body))

    return read_checked


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


_NUL = ("contains a NUL character (U+0000), which no text field accepts", "NUL_CHARACTER")
Problem = tuple[str, str, str]


def _problem_in(message: Message, prefix: str) -> Problem | None:
    """The first field of `message` (a path from `prefix`) with a NUL or an undeclared enum value."""
    checked = _checked_fields(cast(Descriptor, message.DESCRIPTOR))
    if not checked:
        return None
    for field, value in message.ListFields():
        if field not in checked:
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            found = _problem_in_messages(field, value, f"{prefix}{field.name}")
            if found is not None:
                return found
            continue
        items = enumerate(value) if field.is_repeated else ((None, value),)
        for index, item in items:
            if field.type == FieldDescriptor.TYPE_STRING and NUL in item:
                return (_path(prefix, field, index), *_NUL)
            if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
                declared = field.enum_type.values_by_number
                if item not in declared:
                    names = ", ".join(declared[number].name for number in sorted(declared))
                    return (
                        _path(prefix, field, index),
                        f"{item} is not a value of {field.enum_type.name} ({names})",
                        "UNKNOWN_ENUM_VALUE",
                    )
    return None


def _path(prefix: str, field: FieldDescriptor, index: int | None) -> str:
    return f"{prefix}{field.name}" if index is None else f"{prefix}{field.name}[{index}]"


@functools.cache
def _checked_fields(descriptor: Descriptor) -> frozenset[FieldDescriptor]:
    """Of a message type, the fields that can hold text or an enum at any depth: only those are read. A message
    of numbers (Timestamp, a time range) is never walked."""
    return frozenset(field for field in descriptor.fields if _may_hold_text_or_enum(field, set()))


def _may_hold_text_or_enum(field: FieldDescriptor, seen: set[Descriptor]) -> bool:
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM):
        return True
    message_type = field.message_type
    if field.type != FieldDescriptor.TYPE_MESSAGE or message_type is None:
        return False
    if message_type.GetOptions().map_entry:
        return True
    if message_type in seen:
        return False
    seen.add(message_type)
    return any(_may_hold_text_or_enum(inner, seen) for inner in message_type.fields)


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
