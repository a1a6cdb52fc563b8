"""The progress service: request checks, then the hub. Built once per process (`runtime.progress`).

Watch sessions are created on first use by any of the three RPCs, because a browser may open
StreamInterventions before it publishes its first events. A watch session id belongs to the user who used
it first: for anyone else it answers NOT_FOUND (AIP-211), exactly like an id that was never used; naming it
with another video is INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from server.agents.preferences import PreferencesService
from server.config import Settings
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import InvalidArgument
from server.core.names import require_id
from server.progress.content import ContentProducer, InterventionAgents
from server.progress.domain import Mailbox, PublishResult, WatchTarget
from server.progress.events import EventInput
from server.progress.hub import WatchHub
from server.progress.persistence import EventWriter
from server.progress.relay import WatchRelay

if TYPE_CHECKING:
    from server.transcripts.search import TranscriptSearch

WATCH_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_EVENTS_PER_BATCH = 500
MAX_DURATION_SECONDS = 24 * 3600.0


def watch_target(
    watch_session_id: str, video_id: str, course_id: str = "", duration_seconds: float = 0.0
) -> WatchTarget:
    """Check the identifying fields of a progress request."""
    if not watch_session_id:
        raise InvalidArgument.field("watch_session_id", "is required")
    if not WATCH_SESSION_ID.match(watch_session_id):
        raise InvalidArgument.field("watch_session_id", "must be 8 to 64 characters of [A-Za-z0-9_-]")
    require_id(video_id, "video_id")
    if course_id:
        require_id(course_id, "course_id")
    if not math.isfinite(duration_seconds) or not 0 <= duration_seconds <= MAX_DURATION_SECONDS:
        raise InvalidArgument.field("duration_seconds", f"must be between 0 and {MAX_DURATION_SECONDS:g}")
    return WatchTarget(watch_session_id, video_id, course_id, duration_seconds or None)


class ProgressService:
    def __init__(self, hub: WatchHub, settings: Settings) -> None:
        self.hub = hub
        self._settings = settings

    async def publish(self, principal: Principal, target: WatchTarget, events: list[EventInput]) -> PublishResult:
        """A browser's batch (1 to 500 events)."""
        if not events:
            raise InvalidArgument.field("events", "at least one event is required")
        if len(events) > MAX_EVENTS_PER_BATCH:
            raise InvalidArgument.field("events", f"at most {MAX_EVENTS_PER_BATCH} events per request")
        return await self.hub.publish(principal, target, events)

    async def publish_from_stream(
        self, principal: Principal, target: WatchTarget, events: list[EventInput]
    ) -> PublishResult:
        """Events of one WatchVideo message (any number, including none)."""
        if not events:
            return PublishResult(0, [])
        return await self.hub.publish(principal, target, events)

    async def attach(self, principal: Principal, target: WatchTarget) -> Mailbox:
        """A stream's outbox, attached to the watch session until `detach`."""
        box = Mailbox(self._settings.watch_outbox_size)
        await self.hub.attach(principal, target, box)
        return box

    async def finish_sending(self, target: WatchTarget) -> None:
        """The client of a WatchVideo stream is done sending: deliver what is still being made, then end."""
        await self.hub.settle(target.watch_session_id)

    async def detach(self, target: WatchTarget, box: Mailbox) -> None:
        """The stream ended, however it ended: stop delivering to it and write the buffered events."""
        await self.hub.detach(target.watch_session_id, box)
        await self.hub.flush()

    async def close(self) -> None:
        await self.hub.close()


async def build_progress(
    settings: Settings,
    database: Database,
    search: TranscriptSearch | None,
    preferences: PreferencesService,
    *,
    redis: Redis | None = None,
    agents: InterventionAgents | None = None,
) -> ProgressService:
    """The process's progress service, started. `redis` (the process's command client) enables the
    cross-replica relay; its pub/sub connection is opened here and closed with the service."""
    writer = EventWriter(
        database,
        flush_interval=settings.watch_flush_interval_seconds,
        batch_size=settings.watch_flush_batch,
        max_pending=settings.watch_writer_max_pending,
    )
    relay = None
    if redis is not None and settings.redis_url:
        relay = WatchRelay(
            redis,
            Redis.from_url(settings.redis_url, health_check_interval=30),
            lease_seconds=settings.watch_owner_lease_seconds,
            forward_timeout=settings.watch_forward_timeout_seconds,
        )
    content = ContentProducer(search, agents, quiz_questions=settings.watch_quiz_questions)
    hub = WatchHub(settings, database, writer, content, preferences, search, relay=relay)
    await hub.start()
    return ProgressService(hub, settings)
