"""Typed domain errors. Domain code raises these; `server.core.status` maps them to gRPC (one place).

Domain modules never import grpc: they describe *what* went wrong, the transport decides how to say it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """Base class. `reason` is the UPPER_SNAKE ErrorInfo reason; `metadata` goes into ErrorInfo."""

    reason: str = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        *,
        violations: list[FieldViolation] | None = None,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ):
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations: list[FieldViolation] = list(violations or [])

    @classmethod
    def field(cls, field_path: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        return cls(
            f"{field_path}: {description}",
            violations=[FieldViolation(field_path, description)],
            reason=reason,
        )


class NotFound(DomainError):
    reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    reason = "ALREADY_EXISTS"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"


class FailedPrecondition(DomainError):
    reason = "FAILED_PRECONDITION"


class Unavailable(DomainError):
    reason = "UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float | None = None,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ):
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after_seconds = retry_after_seconds


class DeadlineExceeded(DomainError):
    reason = "DEADLINE_EXCEEDED"


class Aborted(DomainError):
    reason = "ABORTED"


@dataclass(frozen=True)
class QuotaViolation:
    subject: str
    description: str


@dataclass
class QuotaExceeded(DomainError):
    """RESOURCE_EXHAUSTED: a rate limit, a concurrency limit or a token budget."""

    message: str
    retry_after_seconds: float | None = None
    violations: list[QuotaViolation] = field(default_factory=list)
    reason: str = "RATE_LIMITED"
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)
