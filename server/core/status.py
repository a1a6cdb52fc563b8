"""The one place where domain errors become gRPC statuses with google.rpc error details.

A status travels in HTTP/2 trailers, which proxies and clients cap (Envoy answers a 100,000-character one
with a protocol error and resets the connection; grpc clients lose the real error past a few kilobytes), and
an error must never echo a huge submitted value back. Every text of a status is therefore capped where it is
built — the message at `MAX_MESSAGE_CHARS`, each detail's texts at `MAX_DETAIL_CHARS`, at most
`MAX_VIOLATIONS` violations — with what was cut said in place: "…(100,095 characters)".
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.core import errors

ERROR_DOMAIN = "tutorstream.dev"
MAX_MESSAGE_CHARS = 400
MAX_DETAIL_CHARS = 200
MAX_VIOLATIONS = 20


def capped(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """`text`, or its first `limit` characters and how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text):,} characters)"


_CODES: list[tuple[type[errors.DomainError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.QuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
]


def code_for(error: errors.DomainError) -> grpc.StatusCode:
    for error_type, code in _CODES:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    whole = int(seconds)
    nanos = round((seconds - whole) * 1e9)
    return error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=whole, nanos=nanos))


def to_status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str,
    request_id: str,
    metadata: dict[str, str] | None = None,
    details: list[object] | None = None,
) -> grpc.Status:
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=capped(message, MAX_MESSAGE_CHARS))
    shown = {capped(key): capped(value) for key, value in (metadata or {}).items()}
    info = error_details_pb2.ErrorInfo(reason=capped(reason), domain=ERROR_DOMAIN, metadata=shown)
    status.details.append(_pack(info))
    for detail in details or []:
        status.details.append(_pack(detail))
    status.details.append(_pack(error_details_pb2.RequestInfo(request_id=request_id)))
    return rpc_status.to_status(status)


def status_for_error(error: errors.DomainError, request_id: str) -> grpc.Status:
    details: list[object] = []
    if isinstance(error, errors.InvalidArgument) and error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=capped(v.field), description=capped(v.description)
                    )
                    for v in error.violations[:MAX_VIOLATIONS]
                ]
            )
        )
    if isinstance(error, errors.QuotaExceeded):
        if error.violations:
            details.append(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=capped(v.subject), description=capped(v.description)
                        )
                        for v in error.violations[:MAX_VIOLATIONS]
                    ]
                )
            )
        if error.retry_after_seconds is not None:
            details.append(_retry_info(error.retry_after_seconds))
    if isinstance(error, errors.Unavailable) and error.retry_after_seconds is not None:
        details.append(_retry_info(error.retry_after_seconds))
    return to_status(
        code_for(error),
        error.message,
        reason=error.reason,
        request_id=request_id,
        metadata=error.metadata,
        details=details,
    )


def internal_status(request_id: str) -> grpc.Status:
    return to_status(
        grpc.StatusCode.INTERNAL,
        f"internal error (request id {request_id})",
        reason="INTERNAL",
        request_id=request_id,
    )


def unimplemented_status(method: str, request_id: str) -> grpc.Status:
    return to_status(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method.lstrip('/')} is not implemented in this version of tutorstream",
        reason="NOT_IMPLEMENTED",
        request_id=request_id,
    )
