"""Interventions from decision to student: content made in a task of its own (events keep flowing), dropped
when stale, put in every attached stream's outbox, published to other replicas' streams, and recorded."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from redis.exceptions import RedisError

from server.config import Settings
from server.core import metrics
from server.core.auth import Principal
from server.progress.content import Content, ContentProducer, break_content
from server.progress.directory import SessionRecord
from server.progress.domain import Intervention, Mailbox, citation_to_json
from server.progress.engine import Decision, InterventionKind, ProgressEngine
from server.progress.persistence import EventWriter, InterventionRecord
from server.progress.relay import WatchRelay

log = logging.getLogger("tutorstream.progress")


class LoadedSession:
    """A watch session held by this process: its engine, the streams attached here, content in the making."""

    __slots__ = ("boxes", "engine", "last_active", "loaded", "principal", "record", "target_id", "tasks")

    def __init__(self, target_id: str, record: SessionRecord, principal: Principal, engine: ProgressEngine) -> None:
        self.target_id = target_id
        self.record = record
        self.principal = principal
        self.engine = engine
        self.boxes: list[Mailbox] = []
        self.tasks: set[asyncio.Task[None]] | None = None
        self.last_active = time.monotonic()
        self.loaded = True

    def spawn(self, task: asyncio.Task[None]) -> None:
        if self.tasks is None:
            self.tasks = set()
        self.tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        if self.tasks is not None:
            self.tasks.discard(task)
            if not self.tasks:
                self.tasks = None

    def cancel_tasks(self) -> None:
        for task in list(self.tasks or ()):
            task.cancel()


class InterventionDelivery:
    def __init__(
        self, settings: Settings, writer: EventWriter, content: ContentProducer, relay: WatchRelay | None
    ) -> None:
        self._settings = settings
        self._writer = writer
        self.content = content
        self._relay = relay
        self._background: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        for task in list(self._background):
            task.cancel()

    def intervene(self, session: LoadedSession, decision: Decision) -> None:
        intervention_id = uuid.uuid4().hex
        if decision.kind is InterventionKind.BREAK:
            self._deliver(session, decision, intervention_id, break_content())
            return
        session.spawn(asyncio.create_task(self._produce(session, decision, intervention_id)))

    async def _produce(self, session: LoadedSession, decision: Decision, intervention_id: str) -> None:
        record = session.record
        try:
            content = await self.content.produce(session.principal, record.video_id, record.course_id, decision)
        except Exception:
            log.exception("intervention content failed; sending the bare intervention")
            content = Content(text=decision.reason_text)
        if session.loaded:
            self._deliver(session, decision, intervention_id, content)

    def _is_stale(self, session: LoadedSession, decision: Decision) -> bool:
        if decision.kind is InterventionKind.BREAK:
            return False
        engine = session.engine
        if engine.terminated:
            return True
        margin = self._settings.watch_stale_margin_seconds
        return not (decision.start - margin <= engine.position <= decision.end + margin)

    def _deliver(self, session: LoadedSession, decision: Decision, intervention_id: str, content: Content) -> None:
        intervention = Intervention(
            intervention_id=intervention_id,
            kind=decision.kind,
            reason=decision.reason,
            reason_text=decision.reason_text,
            position=decision.position,
            start=decision.start,
            end=decision.end,
            content=content.text,
            citation=content.citation,
            quiz=content.quiz,
            create_time=decision.time,
        )
        if self._is_stale(session, decision):
            self._record(session, intervention, content, "stale")
            return
        session.engine.remember_intervention(intervention_id)
        for box in session.boxes:
            box.put(intervention)
        if self._relay is None:
            self._record(session, intervention, content, "delivered" if session.boxes else "undelivered")
            return
        task = asyncio.create_task(self._fan_out(session, intervention, content, local=bool(session.boxes)))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fan_out(self, session: LoadedSession, intervention: Intervention, content: Content, local: bool) -> None:
        assert self._relay is not None
        receivers = 0
        try:
            receivers = await self._relay.publish_intervention(session.target_id, intervention.to_json())
        except (RedisError, OSError) as error:
            log.warning("watch relay: publishing an intervention failed (%s)", type(error).__name__)
        self._record(session, intervention, content, "delivered" if local or receivers else "undelivered")

    def _record(self, session: LoadedSession, intervention: Intervention, content: Content, status: str) -> None:
        record = session.record
        metrics.count_intervention(intervention.kind.value, "sent" if status == "delivered" else status)
        self._writer.add_intervention(
            InterventionRecord(
                id=intervention.intervention_id,
                watch_session_id=session.target_id,
                user_id=record.user_id,
                video_id=record.video_id,
                course_id=record.course_id,
                type=intervention.kind.value,
                reason=intervention.reason,
                reason_text=intervention.reason_text,
                position=intervention.position,
                start=intervention.start,
                end=intervention.end,
                content=intervention.content,
                citation=None if content.citation is None else json.dumps(citation_to_json(content.citation)),
                quiz=intervention.quiz,
                interaction_id=content.interaction_id,
                status=status,
                trigger_time=intervention.create_time,
            )
        )
