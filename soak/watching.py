"""Progress load: simulated players publishing events in batches (PublishVideoEvents) and over WatchVideo
streams (some abandoned by the client midway), answering the interventions they receive.

Event times follow a simulated playhead (5 s of video per heartbeat, pauses, backward seeks that look like
re-watching, rate changes), so the engine sees plausible sessions and now and then steps in.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from random import Random

import grpc
from google.protobuf import timestamp_pb2
from tutorstream.v1 import agent_service_pb2 as pb

from soak.ledger import CLIENT_CANCELLED
from soak.load import COURSE_ID, LECTURE_SECONDS, RPC_TIMEOUT, Worker, lecture_id

HEARTBEAT_SECONDS = 5.0
Kind = pb.VideoEventType


class Playback:
    """One viewer's player: produces the next event of a plausible viewing."""

    def __init__(self, rng: Random, watch_session_id: str, duration: float = LECTURE_SECONDS) -> None:
        self.rng = rng
        self.watch_session_id = watch_session_id
        self.duration = duration
        self.clock = time.time()
        self.position = 0.0
        self.rate = 1.0
        self.playing = False
        self.done = False
        self.count = 0

    def _event(self, kind: pb.VideoEventType.ValueType, **fields: float | str) -> pb.VideoEvent:
        self.count += 1
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(int(self.clock * 1e9))
        return pb.VideoEvent(
            event_id=f"{self.watch_session_id}-{self.count}",
            type=kind,
            position_seconds=self.position,
            event_time=stamp,
            **fields,  # type: ignore[arg-type]
        )

    def next(self) -> pb.VideoEvent:
        if self.count == 0:
            return self._event(Kind.VIDEO_EVENT_TYPE_INITIALIZED)
        if not self.playing:
            self.playing = True
            self.clock += 1.0
            return self._event(Kind.VIDEO_EVENT_TYPE_PLAYED)
        roll = self.rng.random()
        self.clock += 1.0
        if roll < 0.08:
            self.playing = False
            return self._event(Kind.VIDEO_EVENT_TYPE_PAUSED)
        if roll < 0.16 and self.position > 40:
            origin = self.position
            self.position = origin - self.rng.uniform(15, 35)
            return self._event(Kind.VIDEO_EVENT_TYPE_SEEKED, seek_from_seconds=origin, seek_to_seconds=self.position)
        if roll < 0.19:
            self.rate = self.rng.choice((0.75, 1.0, 1.5))
            return self._event(Kind.VIDEO_EVENT_TYPE_RATE_CHANGED, playback_rate=self.rate)
        self.clock += HEARTBEAT_SECONDS
        self.position = min(self.duration, self.position + HEARTBEAT_SECONDS * self.rate)
        if self.position >= self.duration:
            self.done = True
            return self._event(Kind.VIDEO_EVENT_TYPE_COMPLETED)
        return self._event(Kind.VIDEO_EVENT_TYPE_HEARTBEAT)

    def answer(self, intervention_id: str) -> pb.VideoEvent:
        kind = self.rng.choice(
            (Kind.VIDEO_EVENT_TYPE_INTERVENTION_ACCEPTED, Kind.VIDEO_EVENT_TYPE_INTERVENTION_DISMISSED)
        )
        self.clock += 1.0
        return self._event(kind, intervention_id=intervention_id)


class PublishWorker(Worker):
    """A browser that batches its player events: 3 to 10 batches per viewing."""

    async def run(self) -> None:
        while not self.stop.is_set():
            play = Playback(self.rng, f"soak-{uuid.uuid4().hex[:16]}")
            video_id = lecture_id(self.rng.randrange(self.lectures))
            for _ in range(self.rng.randint(3, 10)):
                if play.done or self.stop.is_set():
                    break
                events = [play.next() for _ in range(self.rng.randint(3, 15))]
                reply = await self.ledger.unary(
                    "PublishVideoEvents",
                    self.client.agents.PublishVideoEvents(
                        pb.PublishVideoEventsRequest(
                            watch_session_id=play.watch_session_id,
                            video_id=video_id,
                            course_id=COURSE_ID,
                            duration_seconds=play.duration,
                            events=events,
                        ),
                        timeout=RPC_TIMEOUT,
                    ),
                )
                if reply is not None:
                    rejected = {rejection.event_id for rejection in reply.rejections}
                    accepted = [event.event_id for event in events if event.event_id not in rejected]
                    self.ledger.events[play.watch_session_id].update(accepted)
                    self.ledger.notes["progress events rejected"] += len(rejected)
                    self.ledger.notes["PublishVideoEvents accepted_count mismatches"] += reply.accepted_count != len(
                        accepted
                    )
                await self.pause()


class WatchWorker(Worker):
    """A player on one WatchVideo stream per viewing: events as they happen, interventions answered; one
    viewing in ten is abandoned by the client midway (its events are then not acknowledged)."""

    async def run(self) -> None:
        while not self.stop.is_set():
            await self.watch()
            await self.pause()

    async def watch(self) -> None:
        play = Playback(self.rng, f"soak-{uuid.uuid4().hex[:16]}")
        outgoing: asyncio.Queue[pb.WatchVideoRequest | None] = asyncio.Queue()
        first = pb.WatchVideoRequest(
            watch_session_id=play.watch_session_id,
            video_id=lecture_id(self.rng.randrange(self.lectures)),
            course_id=COURSE_ID,
            duration_seconds=play.duration,
            events=[play.next()],
        )
        sent: list[str] = []  # what the stream carried: an answer queued after the half-close never goes out
        rejected: set[str] = set()

        async def requests() -> AsyncIterator[pb.WatchVideoRequest]:
            request: pb.WatchVideoRequest | None = first
            while request is not None:
                sent.extend(event.event_id for event in request.events)
                yield request
                request = await outgoing.get()

        call = self.client.agents.WatchVideo(requests(), timeout=RPC_TIMEOUT)

        async def read() -> None:
            async for response in call:
                if response.HasField("rejection"):
                    rejected.add(response.rejection.event_id)
                elif response.HasField("intervention"):
                    self.ledger.notes["interventions received"] += 1
                    answer = play.answer(response.intervention.intervention_id)
                    outgoing.put_nowait(pb.WatchVideoRequest(events=[answer]))

        reader = asyncio.ensure_future(read())
        abandon_after = self.rng.randint(3, 30) if self.rng.random() < 0.1 else None
        for index in range(self.rng.randint(10, 50)):
            if play.done or reader.done() or self.stop.is_set():
                break
            if index == abandon_after:
                call.cancel()
                break
            outgoing.put_nowait(pb.WatchVideoRequest(events=[play.next()]))
            await asyncio.sleep(self.rng.uniform(0.02, 0.12))
        outgoing.put_nowait(None)
        try:
            await reader
        except grpc.aio.AioRpcError as error:
            if not (call.cancelled() and error.code() == grpc.StatusCode.CANCELLED):
                self.ledger.error("WatchVideo", error)
                return
        except asyncio.CancelledError:
            if not (call.cancelled() and reader.cancelled()):
                raise
        if call.cancelled():
            self.ledger.status("WatchVideo", CLIENT_CANCELLED)
            return
        self.ledger.status("WatchVideo", "OK")
        self.ledger.events[play.watch_session_id].update(event_id for event_id in sent if event_id not in rejected)
        self.ledger.notes["progress events rejected"] += len(rejected)
