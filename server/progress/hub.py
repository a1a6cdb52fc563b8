"""The registry of watch sessions loaded in this process: one engine per watch session, fed by WatchVideo and
by PublishVideoEvents alike, whose interventions go to every stream attached to it (WatchVideo and
StreamInterventions). With Redis (see relay.py) a session lives on one replica and the others forward to it.

Memory is bounded per session and per stream: the engine keeps a few fixed-size windows, each stream has a
`watch_outbox_size` outbox that drops its oldest message when the client does not keep up, intake waits for
the event writer when the database falls behind, and sessions without streams or events for
`watch_session_idle_seconds` are unloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError

from server.agents.preferences import PreferencesService, PreferenceValues
from server.config import Settings
from server.core.auth import Principal
from server.core.db import Database
from server.core.errors import Unavailable
from server.core.tasks import stop_task
from server.experiments.assignment import HOLDOUT, Assignments, Lever
from server.progress.content import CONTENT_TIMEOUT_SECONDS, ContentProducer
from server.progress.delivery import InterventionDelivery, LoadedSession
from server.progress.directory import SessionDirectory, SessionRecord
from server.progress.domain import (
    Intervention,
    Mailbox,
    PublishResult,
    WatchTarget,
    event_from_json,
    event_to_json,
    principal_from_json,
    principal_to_json,
)
from server.progress.engine import Decision, EngineConfig, LearnerPreferences, ProgressEngine
from server.progress.events import EventInput, EventKind, Rejection
from server.progress.persistence import AckRow, EventRow, EventWriter
from server.progress.relay import OwnerGone, WatchRelay
from server.transcripts.search import TranscriptSearch

log = logging.getLogger("tutorstream.progress")

STREAM_END_FLUSH_SECONDS = 5.0


def _learner(values: PreferenceValues) -> LearnerPreferences:
    return LearnerPreferences(values.auto_hints_enabled, values.quiz_frequency)


class WatchHub:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        writer: EventWriter,
        content: ContentProducer,
        preferences: PreferencesService,
        search: TranscriptSearch | None,
        *,
        relay: WatchRelay | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._db = database
        self.writer = writer
        self.delivery = InterventionDelivery(settings, writer, content, relay)
        self._preferences = preferences
        self._assignments = Assignments(database)
        self._relay = relay
        self._clock = clock
        self._config = EngineConfig.from_settings(settings)
        self._sessions: dict[str, LoadedSession] = {}
        self._loading: dict[str, asyncio.Future[LoadedSession]] = {}
        self._remote_boxes: dict[str, list[Mailbox]] = {}
        self.directory = SessionDirectory(database, search)
        self._janitor: asyncio.Task[None] | None = None

    @property
    def loaded_sessions(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        self.writer.start()
        if self._relay is not None:
            self._relay.on_request = self._answer_forwarded
            self._relay.on_intervention = self._deliver_remote
            await self._relay.start()
        self._janitor = asyncio.create_task(self._sweep_forever(), name="progress-janitor")

    async def close(self) -> None:
        """Shutdown: end every stream, stop content work, write everything buffered, give up the leases."""
        janitor, self._janitor = self._janitor, None
        await stop_task(janitor)
        for session in self._sessions.values():
            session.cancel_tasks()
            self._note_progress(session)
            for box in session.boxes:
                box.close()
        for boxes in self._remote_boxes.values():
            for box in boxes:
                box.close()
        self.delivery.close()
        await self.writer.close()
        if self._relay is not None:
            for watch_session_id in list(self._sessions):
                with contextlib.suppress(RedisError, OSError):
                    await self._relay.release(watch_session_id)
            await self._relay.close()
        self._sessions.clear()

    # --- the two ways in ---------------------------------------------------------------------------

    async def publish(self, principal: Principal, target: WatchTarget, events: list[EventInput]) -> PublishResult:
        """Feed `events` to the session's engine (wherever it lives) and persist the accepted ones."""
        record, preferences = await self.directory.authorize(principal, target)
        owner = await self._owner(target.watch_session_id)
        if owner is not None:
            return await self._publish_remote(owner, principal, target, events)
        return await self._publish_local(principal, target, record, events, preferences)

    async def attach(self, principal: Principal, target: WatchTarget, box: Mailbox) -> None:
        """Deliver the session's interventions to `box` until `detach`."""
        record, preferences = await self.directory.authorize(principal, target)
        if await self._owner(target.watch_session_id) is None:
            fresh = target.watch_session_id not in self._sessions
            session = await self._load(principal, target, record, preferences)
            session.boxes.append(box)
            session.last_active = time.monotonic()
            if not fresh:
                # A player (re)opening is when changed preferences take effect.
                session.engine.update_preferences(
                    preferences or _learner(await self._preferences.get(principal.user_id))
                )
            return
        assert self._relay is not None
        self._remote_boxes.setdefault(target.watch_session_id, []).append(box)
        await self._relay.watch(target.watch_session_id)

    async def detach(self, watch_session_id: str, box: Mailbox) -> None:
        box.close()
        session = self._sessions.get(watch_session_id)
        if session is not None and box in session.boxes:
            session.boxes.remove(box)
            session.last_active = time.monotonic()
        remote = self._remote_boxes.get(watch_session_id)
        if remote is not None and box in remote:
            remote.remove(box)
            if not remote:
                del self._remote_boxes[watch_session_id]
                if self._relay is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._relay.unwatch(watch_session_id)

    async def settle(self, watch_session_id: str) -> None:
        """Wait for the content still being made for this session's interventions (a player that is done
        sending still gets them); bounded by the content timeout."""
        session = self._sessions.get(watch_session_id)
        if session is not None and session.tasks:
            await asyncio.wait(set(session.tasks), timeout=CONTENT_TIMEOUT_SECONDS + 1.0)

    async def flush(self) -> None:
        """Write buffered events now (a stream ended); bounded wait, the writer keeps retrying anyway."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.writer.flush()), STREAM_END_FLUSH_SECONDS)

    # --- authorization -----------------------------------------------------------------------------

    def forget_user(self, user_id: str) -> None:
        """The user's data was deleted: unload their sessions (streams end) without writing anything more."""
        for watch_session_id, session in list(self._sessions.items()):
            if session.record.user_id == user_id:
                session.loaded = False
                session.cancel_tasks()
                for box in session.boxes:
                    box.close()
                del self._sessions[watch_session_id]
        self.directory.forget_user(user_id)

    # --- local sessions ----------------------------------------------------------------------------

    async def _load(
        self,
        principal: Principal,
        target: WatchTarget,
        record: SessionRecord,
        preferences: LearnerPreferences | None = None,
    ) -> LoadedSession:
        watch_session_id = target.watch_session_id
        loaded = self._sessions.get(watch_session_id)
        if loaded is not None:
            return loaded
        pending = self._loading.get(watch_session_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[LoadedSession] = asyncio.get_running_loop().create_future()
        self._loading[watch_session_id] = future
        try:
            if preferences is None:
                preferences = _learner(await self._preferences.get(principal.user_id))
            duration = target.duration or record.duration or await self.directory.video_duration(target.video_id)
            engine = ProgressEngine(self._config, preferences, duration=duration, clock=self._clock)
            exposure = await self._assignments.expose(principal, record.course_id, Lever.INTERVENTIONS)
            engine.proactive = exposure is None or exposure.arm != HOLDOUT
            # A session loaded again (after an idle unload or a lease hand-over) goes on from its total so far.
            stored = await self.directory.watched_seconds(watch_session_id)
            engine.watched_seconds = max(stored, self.writer.pending_watched_seconds(watch_session_id) or 0.0)
            session = LoadedSession(watch_session_id, record, principal, engine)
            adopted = self._remote_boxes.pop(watch_session_id, None)
            if adopted:
                session.boxes.extend(adopted)
                if self._relay is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._relay.unwatch(watch_session_id)
            self._sessions[watch_session_id] = session
            future.set_result(session)
            return session
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so waiters alone decide whether it is logged
            raise
        finally:
            del self._loading[watch_session_id]

    async def _publish_local(
        self,
        principal: Principal,
        target: WatchTarget,
        record: SessionRecord,
        events: list[EventInput],
        preferences: LearnerPreferences | None = None,
    ) -> PublishResult:
        session = await self._load(principal, target, record, preferences)
        await self.writer.wait_for_room()
        # From here to the return nothing awaits: the engine's state and the buffered rows move together.
        session.principal = principal
        session.last_active = time.monotonic()
        engine = session.engine
        rows: list[EventRow] = []
        rejections: list[Rejection] = []
        decisions: list[Decision] = []
        for event in events:
            step = engine.step(event)
            if step.rejection is not None:
                rejections.append(step.rejection)
                continue
            accepted = step.event
            if accepted is None:
                continue
            seek = accepted.kind is EventKind.SEEKED
            rows.append(
                EventRow(
                    watch_session_id=session.target_id,
                    user_id=record.user_id,
                    video_id=record.video_id,
                    event_id=accepted.event_id,
                    type=accepted.kind.value,
                    position=accepted.position,
                    seek_from=accepted.seek_from if seek else None,
                    seek_to=accepted.seek_to if seek else None,
                    rate=accepted.rate if accepted.kind is EventKind.RATE_CHANGED else None,
                    intervention_id=accepted.intervention_id,
                    event_time=accepted.time,
                    client_time=accepted.client_time,
                    receive_time=accepted.received,
                )
            )
            if accepted.kind in (EventKind.ACCEPTED, EventKind.DISMISSED):
                self.writer.add_acknowledgement(
                    AckRow(
                        intervention_id=accepted.intervention_id,
                        watch_session_id=session.target_id,
                        user_id=record.user_id,
                        action="accepted" if accepted.kind is EventKind.ACCEPTED else "dismissed",
                        event_time=accepted.time,
                    )
                )
            if step.decision is not None:
                decisions.append(step.decision)
        self.writer.add_events(rows)
        if rows:
            self._note_progress(session)
        for decision in decisions:
            self.delivery.intervene(session, decision)
        return PublishResult(len(rows), rejections)

    def _note_progress(self, session: LoadedSession) -> None:
        engine = session.engine
        self.writer.note_progress(session.target_id, engine.watched_seconds, engine.position)

    # --- interventions -----------------------------------------------------------------------------

    # --- other replicas ----------------------------------------------------------------------------

    async def _owner(self, watch_session_id: str) -> str | None:
        """The replica that holds the session when it is another one; None when it is this one."""
        if self._relay is None or watch_session_id in self._sessions:
            return None
        try:
            owner = await self._relay.claim(watch_session_id)
        except (RedisError, OSError) as error:
            log.warning("watch relay: Redis unavailable (%s); serving the session here", type(error).__name__)
            return None
        return None if owner == self._relay.replica_id else owner

    async def _publish_remote(
        self, owner: str, principal: Principal, target: WatchTarget, events: list[EventInput]
    ) -> PublishResult:
        assert self._relay is not None
        payload = {
            "principal": principal_to_json(principal),
            "target": target.to_json(),
            "events": [event_to_json(event) for event in events],
        }
        try:
            answer = await self._relay.forward(owner, payload)
        except OwnerGone:
            new_owner = await self._relay.take_over(target.watch_session_id, owner)
            if new_owner != self._relay.replica_id:
                answer = await self._relay.forward(new_owner, payload)
            else:
                log.info("watch relay: replica %s did not answer; took over %s", owner, target.watch_session_id)
                record, preferences = await self.directory.authorize(principal, target)
                return await self._publish_local(principal, target, record, events, preferences)
        if "error" in answer:
            raise Unavailable("the replica serving this watch session failed; retry", retry_after_seconds=1.0)
        return PublishResult.from_json(answer)

    async def _answer_forwarded(self, body: dict[str, Any]) -> dict[str, Any]:
        principal = principal_from_json(body["principal"])
        target = WatchTarget.from_json(body["target"])
        events = [event_from_json(event) for event in body["events"]]
        record, preferences = await self.directory.authorize(principal, target)
        if self._relay is not None and target.watch_session_id not in self._sessions:
            with contextlib.suppress(RedisError, OSError):
                await self._relay.claim(target.watch_session_id)
        return (await self._publish_local(principal, target, record, events, preferences)).to_json()

    def _deliver_remote(self, watch_session_id: str, body: dict[str, Any]) -> None:
        boxes = self._remote_boxes.get(watch_session_id)
        if not boxes:
            return
        intervention = Intervention.from_json(body)
        for box in boxes:
            box.put(intervention)

    # --- housekeeping ------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        period = min(30.0, self._settings.watch_session_idle_seconds / 4, self._settings.watch_owner_lease_seconds / 3)
        while True:
            await asyncio.sleep(period)
            try:
                await self.sweep()
            except Exception:
                log.exception("watch session sweep failed")

    async def sweep(self) -> None:
        """Unload idle sessions; renew the leases of the others (and let go of those another replica took)."""
        idle = self._settings.watch_session_idle_seconds
        now = time.monotonic()
        for watch_session_id, session in list(self._sessions.items()):
            if not session.boxes and not session.tasks and now - session.last_active > idle:
                await self._unload(watch_session_id, release=True)
        if self._relay is None or not self._sessions:
            return
        try:
            lost = await self._relay.renew(list(self._sessions))
        except (RedisError, OSError) as error:
            log.warning("watch relay: lease renewal failed (%s)", type(error).__name__)
            return
        for watch_session_id in lost:
            held = self._sessions.get(watch_session_id)
            if held is None:
                continue
            log.warning("watch relay: lost the lease of %s; following its new owner", watch_session_id)
            boxes = list(held.boxes)
            await self._unload(watch_session_id, release=False)
            if boxes:
                self._remote_boxes.setdefault(watch_session_id, []).extend(boxes)
                with contextlib.suppress(RedisError, OSError):
                    await self._relay.watch(watch_session_id)

    async def _unload(self, watch_session_id: str, *, release: bool) -> None:
        session = self._sessions.pop(watch_session_id, None)
        if session is None:
            return
        session.loaded = False
        session.cancel_tasks()
        self._note_progress(session)
        if release and self._relay is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._relay.release(watch_session_id)
