"""Failed calls as one exception type, with the google.rpc details the server attaches already decoded."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class Violation:
    """A BadRequest field violation (`subject` is the field) or a QuotaFailure violation."""

    subject: str
    description: str


@dataclass(frozen=True)
class ErrorDetails:
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_seconds: float | None = None
    field_violations: tuple[Violation, ...] = ()
    quota_violations: tuple[Violation, ...] = ()
    request_id: str = ""


def decode_details(trailers: grpc.aio.Metadata | tuple[tuple[str, str | bytes], ...] | None) -> ErrorDetails:
    """ErrorInfo, RetryInfo, BadRequest, QuotaFailure and RequestInfo from `grpc-status-details-bin`."""
    raw: bytes | None = None
    for key, value in trailers or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            raw = value
    if raw is None:
        return ErrorDetails()
    status = status_pb2.Status.FromString(raw)
    reason, domain, request_id = "", "", ""
    metadata: dict[str, str] = {}
    retry: float | None = None
    fields: list[Violation] = []
    quotas: list[Violation] = []
    for packed in status.details:
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry_info = error_details_pb2.RetryInfo()
            packed.Unpack(retry_info)
            retry = retry_info.retry_delay.seconds + retry_info.retry_delay.nanos / 1e9
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            packed.Unpack(bad_request)
            fields += [Violation(v.field, v.description) for v in bad_request.field_violations]
        elif packed.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = error_details_pb2.QuotaFailure()
            packed.Unpack(quota)
            quotas += [Violation(v.subject, v.description) for v in quota.violations]
        elif packed.Is(error_details_pb2.RequestInfo.DESCRIPTOR):
            request_info = error_details_pb2.RequestInfo()
            packed.Unpack(request_info)
            request_id = request_info.request_id
    return ErrorDetails(
        reason=reason,
        domain=domain,
        metadata=metadata,
        retry_after_seconds=retry,
        field_violations=tuple(fields),
        quota_violations=tuple(quotas),
        request_id=request_id,
    )


class TutorstreamError(Exception):
    """A call failed. `code` is the gRPC status; `details` what the server said about why."""

    def __init__(self, code: grpc.StatusCode, message: str, details: ErrorDetails | None = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = details or ErrorDetails()

    @classmethod
    def from_rpc_error(cls, error: grpc.aio.AioRpcError) -> TutorstreamError:
        return cls(error.code(), error.details() or "", decode_details(error.trailing_metadata()))

    @property
    def retryable(self) -> bool:
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)

    def explain(self) -> list[str]:
        """Human-readable lines: the message, then what to fix or when to retry."""
        lines = [f"{self.code.name}: {self.message}"]
        lines += [f"  {v.subject}: {v.description}" for v in self.details.field_violations]
        lines += [f"  {v.description or v.subject}" for v in self.details.quota_violations]
        if self.details.retry_after_seconds is not None:
            lines.append(f"  retry in {self.details.retry_after_seconds:.0f}s")
        facts = [
            f for f in (self.details.reason, self.details.request_id and f"request {self.details.request_id}") if f
        ]
        if facts:
            lines.append(f"  ({' · '.join(facts)})")
        return lines
