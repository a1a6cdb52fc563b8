"""Proto conversions every servicer shares (transport side: domain code never imports this)."""

from __future__ import annotations

from datetime import datetime
from typing import overload

from google.protobuf import timestamp_pb2
from tutorstream.v1 import common_pb2

from server.core.values import Citation, Usage


@overload
def timestamp(value: datetime) -> timestamp_pb2.Timestamp: ...
@overload
def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None: ...
def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def citation_to_proto(citation: Citation) -> common_pb2.Citation:
    return common_pb2.Citation(
        video_id=citation.video_id,
        start_seconds=citation.start_seconds,
        end_seconds=citation.end_seconds,
        chunk_id=citation.chunk_id,
        quoted_text=citation.quoted_text,
    )


def usage_to_proto(usage: Usage) -> common_pb2.TokenUsage:
    return common_pb2.TokenUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        cost_usd=usage.cost_usd,
    )
