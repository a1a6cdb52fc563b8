"""Python client for tutorstream: `AsyncTutorstreamClient` (grpc.aio), `TutorstreamClient` (blocking) and the
`tutorstream` command line."""

from tutorstream_client.client import DEFAULT_TARGET, AsyncTutorstreamClient, learning_context, tls_credentials
from tutorstream_client.errors import ErrorDetails, TutorstreamError, Violation
from tutorstream_client.sync import TutorstreamClient

__all__ = [
    "DEFAULT_TARGET",
    "AsyncTutorstreamClient",
    "ErrorDetails",
    "TutorstreamClient",
    "TutorstreamError",
    "Violation",
    "learning_context",
    "tls_credentials",
]
