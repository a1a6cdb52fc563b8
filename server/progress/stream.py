"""AgentService's progress RPCs (WatchVideo, PublishVideoEvents, StreamInterventions) on the transport side:
proto in, checks, the progress service, proto out, and the stream loop of WatchVideo (the client's messages
read in the RPC's task while an outlet writes interventions). `AgentServicer` delegates its three progress RPCs
to a `ProgressStreams` it is given."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from google.protobuf import timestamp_pb2
from grpc import aio
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.core.errors import InvalidArgument
from server.core.request_context import current_principal
from server.progress.domain import Intervention, Mailbox, Outgoing, WatchTarget
from server.progress.engine import InterventionKind
from server.progress.events import EventInput, EventKind, Rejection
from server.progress.service import ProgressService, watch_target

EVENT_KINDS: dict[int, EventKind] = {
    pb.VIDEO_EVENT_TYPE_INITIALIZED: EventKind.INITIALIZED,
    pb.VIDEO_EVENT_TYPE_PLAYED: EventKind.PLAYED,
    pb.VIDEO_EVENT_TYPE_PAUSED: EventKind.PAUSED,
    pb.VIDEO_EVENT_TYPE_SEEKED: EventKind.SEEKED,
    pb.VIDEO_EVENT_TYPE_RATE_CHANGED: EventKind.RATE_CHANGED,
    pb.VIDEO_EVENT_TYPE_HEARTBEAT: EventKind.HEARTBEAT,
    pb.VIDEO_EVENT_TYPE_COMPLETED: EventKind.COMPLETED,
    pb.VIDEO_EVENT_TYPE_TERMINATED: EventKind.TERMINATED,
    pb.VIDEO_EVENT_TYPE_INTERVENTION_ACCEPTED: EventKind.ACCEPTED,
    pb.VIDEO_EVENT_TYPE_INTERVENTION_DISMISSED: EventKind.DISMISSED,
}
INTERVENTION_TYPES = {
    InterventionKind.HINT: common_pb2.INTERVENTION_TYPE_HINT,
    InterventionKind.QUIZ: common_pb2.INTERVENTION_TYPE_QUIZ,
    InterventionKind.REVIEW: common_pb2.INTERVENTION_TYPE_REVIEW,
    InterventionKind.BREAK: common_pb2.INTERVENTION_TYPE_BREAK,
}


def event_inputs(events: Any) -> list[EventInput]:
    """Proto events to engine inputs; unknown types and bad values are left for the engine to reject."""
    converted: list[EventInput] = []
    for index, event in enumerate(events):
        event_time = None
        if event.HasField("event_time"):
            event_time = event.event_time.seconds + event.event_time.nanos / 1e9
        converted.append(
            EventInput(
                kind=EVENT_KINDS.get(event.type),
                position=event.position_seconds,
                label=event.event_id or str(index),
                event_id=event.event_id,
                seek_from=event.seek_from_seconds,
                seek_to=event.seek_to_seconds,
                rate=event.playback_rate,
                intervention_id=event.intervention_id,
                event_time=event_time,
            )
        )
    return converted


def intervention_to_proto(intervention: Intervention) -> pb.Intervention:
    created = timestamp_pb2.Timestamp()
    created.FromNanoseconds(int(intervention.create_time * 1e9))
    message = pb.Intervention(
        intervention_id=intervention.intervention_id,
        type=INTERVENTION_TYPES[intervention.kind],
        reason=intervention.reason,
        reason_text=intervention.reason_text,
        position_seconds=intervention.position,
        range=common_pb2.TimeRange(start_seconds=intervention.start, end_seconds=intervention.end),
        content=intervention.content,
        quiz=intervention.quiz,
        create_time=created,
    )
    citation = intervention.citation
    if citation is not None:
        message.citation.CopyFrom(
            common_pb2.Citation(
                video_id=citation.video_id,
                start_seconds=citation.start_seconds,
                end_seconds=citation.end_seconds,
                chunk_id=citation.chunk_id,
                quoted_text=citation.quoted_text,
            )
        )
    return message


def rejection_to_proto(rejection: Rejection) -> pb.EventRejection:
    return pb.EventRejection(event_id=rejection.event_id, reason=rejection.reason)


def _watch_response(item: Outgoing) -> pb.WatchVideoResponse:
    if isinstance(item, Intervention):
        return pb.WatchVideoResponse(intervention=intervention_to_proto(item))
    return pb.WatchVideoResponse(rejection=rejection_to_proto(item))


async def _stop(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _end_stream(progress: ProgressService, target: WatchTarget, box: Mailbox) -> None:
    try:
        await progress.finish_sending(target)
    finally:
        box.close()


class _Outlet:
    """Writes one WatchVideo stream's outbox while the handler reads the client's messages. The writing task
    exists only while there is something to write, so an idle stream (most streams, most of the time) holds
    its handler and nothing else: no second task, coroutine or future. When the service closes the outbox
    under a reading handler (the session was unloaded, the user's data deleted), the handler is woken from its
    read once what was queued is out, and the stream ends."""

    __slots__ = ("_box", "_context", "_task", "ended", "handler", "reading", "stopped")

    def __init__(self, box: Mailbox, context: aio.ServicerContext[Any, Any]) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._box = box
        self._context = context
        self.handler = handler
        self._task: asyncio.Task[None] | None = None
        self.reading = True
        self.ended = False  # the handler was cancelled here, because the outbox closed under it
        self.stopped = False
        box.listen(self._wake)

    def _wake(self) -> None:
        if self._task is None and not self.stopped:
            self._task = asyncio.create_task(self._write())

    async def _write(self) -> None:
        box = self._box
        while (item := box.take()) is not None:
            await self._context.write(_watch_response(item))
        # Nothing awaits between the empty outbox and here: a later put starts a new task.
        self._task = None
        if box.closed and self.reading:
            self.reading = False
            self.ended = True
            self.handler.cancel()

    async def hand_back(self) -> None:
        """No more writing from a task of its own: the write in progress (and what it finds queued) goes out,
        and what comes later is the handler's to write."""
        self.reading = False
        self.stopped = True
        task, self._task = self._task, None
        if task is not None:
            await task

    async def stop(self) -> None:
        """The stream is ending: stop writing. A write that failed meanwhile failed because the call was
        ending, which the handler already knows."""
        self.stopped = True
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait((task,))
        if not task.cancelled():
            task.exception()


class ProgressStreams:
    def __init__(self, service: ProgressService) -> None:
        self._progress = service

    async def watch_video(self, context: aio.ServicerContext[Any, Any]) -> AsyncGenerator[pb.WatchVideoResponse, None]:
        """Reads the client's messages in the RPC's own task while the stream's outlet writes interventions and
        rejections. When the client is done sending, the handler writes what is left itself, and the stream
        ends once the interventions whose content is still being made are out.

        Messages are read with `context.read()` rather than through grpc's request iterator (the interceptor's
        deserializer has checked them either way): no generator stands between grpc and the handler, and
        nothing of a message is kept while the next one is awaited, which is most of a stream's life."""
        principal = current_principal()
        progress = self._progress
        first = await context.read()
        if first is aio.EOF:
            return
        target = watch_target(first.watch_session_id, first.video_id, first.course_id, first.duration_seconds)
        events = event_inputs(first.events)
        del first  # a stream lives for hours: keep nothing of its first message but what is needed
        box = await progress.attach(principal, target)
        outlet = _Outlet(box, context)
        try:
            for rejection in (await progress.publish_from_stream(principal, target, events)).rejections:
                box.put(rejection)
            del events
            while (request := await context.read()) is not aio.EOF:
                if request.watch_session_id not in ("", target.watch_session_id) or request.video_id not in (
                    "",
                    target.video_id,
                ):
                    raise InvalidArgument.field(
                        "watch_session_id", "a WatchVideo stream carries one watch session and one video"
                    )
                result = await progress.publish_from_stream(principal, target, event_inputs(request.events))
                for rejection in result.rejections:
                    box.put(rejection)
                del request, result
            await outlet.hand_back()
            ending = asyncio.create_task(_end_stream(progress, target, box))
            try:
                while (item := await box.get()) is not None:
                    yield _watch_response(item)
            finally:
                await _stop(ending)
        except asyncio.CancelledError:
            # Cancelled by the outlet alone (and not by the call's end meanwhile): the stream ends normally.
            if not outlet.ended or outlet.handler.uncancel() > 0:
                raise
        finally:
            await outlet.stop()
            await progress.detach(target, box)

    async def publish_video_events(
        self, request: pb.PublishVideoEventsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.PublishVideoEventsResponse:
        principal = current_principal()
        target = watch_target(request.watch_session_id, request.video_id, request.course_id, request.duration_seconds)
        result = await self._progress.publish(principal, target, event_inputs(request.events))
        return pb.PublishVideoEventsResponse(
            accepted_count=result.accepted,
            rejections=[rejection_to_proto(rejection) for rejection in result.rejections],
        )

    async def stream_interventions(
        self, request: pb.StreamInterventionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncGenerator[pb.StreamInterventionsResponse, None]:
        principal = current_principal()
        target = watch_target(request.watch_session_id, request.video_id, request.course_id)
        progress = self._progress
        box = await progress.attach(principal, target)
        try:
            while (item := await box.get()) is not None:
                if isinstance(item, Intervention):
                    yield pb.StreamInterventionsResponse(intervention=intervention_to_proto(item))
        finally:
            await progress.detach(target, box)
