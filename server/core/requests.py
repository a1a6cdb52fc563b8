"""What every request passes before a servicer sees it: it decodes, and none of its text holds a NUL.

- A body that is not the method's message (truncated, garbage, another message's bytes) is not left to
  grpc's deserializer, which would answer UNKNOWN before authentication with a traceback in the log: the
  wrapped deserializer hands the interceptor a `Malformed` marker, which answers INVALID_ARGUMENT
  ("malformed request", reason MALFORMED_REQUEST) through the access log like any refused call.
- PostgreSQL `text` cannot hold U+0000, and nothing a student or an instructor types needs it: a NUL in any
  string field, at any depth (messages, repeated fields, maps), is refused with INVALID_ARGUMENT naming the
  field (`learning_context.video_id`, `events[2].note`), before anything is stored. Bytes fields (uploaded
  media) are not text and are left alone.
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


def check(request: Any) -> None:
    """Raise InvalidArgument for a malformed request or a NUL in any of its text."""
    if isinstance(request, Malformed):
        raise InvalidArgument(
            f"malformed request: {request.size} bytes that are not this method's request message",
            reason="MALFORMED_REQUEST",
        )
    if isinstance(request, Message):
        path = _nul_in(request, "")
        if path is not None:
            raise InvalidArgument.field(
                path, "contains a NUL character (U+0000), which no text field accepts", reason="NUL_CHARACTER"
            )


async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A client stream whose every message passed `check`."""
    async for request in requests:
        check(request)
        yield request


def _nul_in(message: Message, prefix: str) -> str | None:
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                for index, item in enumerate(value):
                    if NUL in item:
                        return f"{name}[{index}]"
            elif NUL in value:
                return name
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            found = _nul_in_message_field(field, value, name)
            if found is not None:
                return found
    return None


def _nul_in_message_field(field: FieldDescriptor, value: Any, name: str) -> str | None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return f"{name}[key]"
            if isinstance(item, str):
                if NUL in item:
                    return f"{name}[{key!s:.40}]"
            elif isinstance(item, Message):
                found = _nul_in(item, f"{name}[{key!s:.40}].")
                if found is not None:
                    return found
        return None
    if field.is_repeated:
        for index, item in enumerate(value):
            found = _nul_in(item, f"{name}[{index}].")
            if found is not None:
                return found
        return None
    return _nul_in(value, f"{name}.")
