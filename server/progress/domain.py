"""Values the progress service hands to the transport: what is watched, interventions, publish results, and
the bounded outbox of one stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.core.auth import Principal, Role, Tier
from server.core.values import Citation
from server.progress.engine import InterventionKind
from server.progress.events import EventInput, EventKind, Rejection


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """The watch session an RPC names. `duration` is the client's hint (None: unknown)."""

    watch_session_id: str
    video_id: str
    course_id: str = ""
    duration: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "watch_session_id": self.watch_session_id,
            "video_id": self.video_id,
            "course_id": self.course_id,
            "duration": self.duration,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WatchTarget:
        duration = data.get("duration")
        return cls(
            str(data["watch_session_id"]),
            str(data["video_id"]),
            str(data.get("course_id", "")),
            float(duration) if duration is not None else None,
        )


@dataclass(frozen=True, slots=True)
class Intervention:
    intervention_id: str
    kind: InterventionKind
    reason: str
    reason_text: str
    position: float
    start: float
    end: float
    content: str
    citation: Citation | None
    quiz: str
    create_time: float  # epoch seconds: the event time that triggered it

    def to_json(self) -> dict[str, Any]:
        citation = self.citation
        return {
            "id": self.intervention_id,
            "kind": self.kind.value,
            "reason": self.reason,
            "reason_text": self.reason_text,
            "position": self.position,
            "start": self.start,
            "end": self.end,
            "content": self.content,
            "citation": None if citation is None else citation_to_json(citation),
            "quiz": self.quiz,
            "create_time": self.create_time,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Intervention:
        citation = data.get("citation")
        return cls(
            intervention_id=str(data["id"]),
            kind=InterventionKind(data["kind"]),
            reason=str(data["reason"]),
            reason_text=str(data["reason_text"]),
            position=float(data["position"]),
            start=float(data["start"]),
            end=float(data["end"]),
            content=str(data["content"]),
            citation=None if citation is None else Citation(**citation),
            quiz=str(data["quiz"]),
            create_time=float(data["create_time"]),
        )


def citation_to_json(citation: Citation) -> dict[str, Any]:
    return {
        "video_id": citation.video_id,
        "start_seconds": citation.start_seconds,
        "end_seconds": citation.end_seconds,
        "chunk_id": citation.chunk_id,
        "quoted_text": citation.quoted_text,
    }


@dataclass(frozen=True, slots=True)
class PublishResult:
    accepted: int
    rejections: list[Rejection]

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejections": [[r.event_id, r.reason] for r in self.rejections]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PublishResult:
        return cls(int(data["accepted"]), [Rejection(str(i), str(r)) for i, r in data["rejections"]])


def principal_to_json(principal: Principal) -> dict[str, str]:
    return {"user_id": principal.user_id, "role": principal.role.value, "tier": principal.tier.value}


def principal_from_json(data: dict[str, Any]) -> Principal:
    return Principal(str(data["user_id"]), Role(data["role"]), Tier(data["tier"]))


def event_to_json(event: EventInput) -> dict[str, Any]:
    return {
        "kind": None if event.kind is None else event.kind.value,
        "position": event.position,
        "label": event.label,
        "event_id": event.event_id,
        "seek_from": event.seek_from,
        "seek_to": event.seek_to,
        "rate": event.rate,
        "intervention_id": event.intervention_id,
        "event_time": event.event_time,
    }


def event_from_json(data: dict[str, Any]) -> EventInput:
    kind = data.get("kind")
    event_time = data.get("event_time")
    return EventInput(
        kind=None if kind is None else EventKind(kind),
        position=float(data["position"]),
        label=str(data["label"]),
        event_id=str(data.get("event_id", "")),
        seek_from=float(data.get("seek_from", 0.0)),
        seek_to=float(data.get("seek_to", 0.0)),
        rate=float(data.get("rate", 0.0)),
        intervention_id=str(data.get("intervention_id", "")),
        event_time=None if event_time is None else float(event_time),
    )


Outgoing = Intervention | Rejection


class Mailbox:
    """The outbox of one stream. Bounded: when the client reads slower than messages arrive, the oldest
    queued message is dropped (an intervention is only useful while it is fresh; the newest says most about
    where the student is now), and `dropped` counts them."""

    __slots__ = ("_items", "_listener", "_size", "_waiter", "closed", "dropped")

    def __init__(self, size: int) -> None:
        self._items: list[Outgoing] = []
        self._size = max(1, size)
        self._waiter: asyncio.Future[None] | None = None
        self._listener: Callable[[], None] | None = None
        self.closed = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Outgoing) -> None:
        if self.closed:
            return
        if len(self._items) >= self._size:
            del self._items[0]
            self.dropped += 1
        self._items.append(item)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def listen(self, listener: Callable[[], None]) -> None:
        """Push instead of pull: `listener` runs after every put and on close, and the reader takes messages
        with `take`, so a stream with nothing to send needs no task waiting in `get`."""
        self._listener = listener

    def take(self) -> Outgoing | None:
        """The next message without waiting; None when there is none right now."""
        return self._items.pop(0) if self._items else None

    async def get(self) -> Outgoing | None:
        """The next message; None once the mailbox is closed and empty."""
        while not self._items:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._listener is not None:
            self._listener()
