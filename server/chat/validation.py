"""Checks on chat input that need no database (the service runs them after the ownership check)."""

from __future__ import annotations

import math

from server.chat.domain import LearningContext
from server.core.errors import FieldViolation, InvalidArgument
from server.core.ids import ID_PATTERN

MAX_MESSAGE_CHARS = 4000
MAX_TITLE_CHARS = 200
MAX_REFERENCE_SECONDS = 600.0


def validate_message(message: str, field: str = "message") -> str:
    """The message as typed (stored verbatim); whitespace-only is empty."""
    if not message.strip():
        raise InvalidArgument.field(field, "is required: send 1 to 4000 characters")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidArgument.field(
            field, f"is {len(message)} characters; the limit is {MAX_MESSAGE_CHARS}", reason="MESSAGE_TOO_LONG"
        )
    return message


def validate_title(title: str, field: str = "title") -> str:
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidArgument.field(field, f"must be at most {MAX_TITLE_CHARS} characters")
    return title.strip()


def _finite_non_negative(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def validate_range(start: float, end: float, field: str) -> list[FieldViolation]:
    violations: list[FieldViolation] = []
    if not _finite_non_negative(start):
        violations.append(FieldViolation(f"{field}.start_seconds", "must be a number >= 0"))
    if not math.isfinite(end) or end <= start:
        violations.append(FieldViolation(f"{field}.end_seconds", "must be greater than start_seconds"))
    return violations


def validate_context(context: LearningContext, field: str = "learning_context") -> LearningContext:
    violations: list[FieldViolation] = []
    for name, value in (("course_id", context.course_id), ("video_id", context.video_id)):
        if value and not ID_PATTERN.match(value):
            violations.append(FieldViolation(f"{field}.{name}", "must be 1 to 128 characters of [A-Za-z0-9_.-]"))
    if not _finite_non_negative(context.position_seconds):
        violations.append(FieldViolation(f"{field}.position_seconds", "must be a number >= 0"))
    if context.selected_range is not None:
        violations.extend(validate_range(*context.selected_range, f"{field}.selected_range"))
        if not context.video_id:
            violations.append(FieldViolation(f"{field}.video_id", "is required with a selected_range"))
    if violations:
        raise InvalidArgument("; ".join(f"{v.field}: {v.description}" for v in violations), violations=violations)
    return context
