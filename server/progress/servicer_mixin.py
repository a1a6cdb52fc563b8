"""AgentService's progress RPCs (WatchVideo, PublishVideoEvents, StreamInterventions): proto in, checks,
the progress service, proto out. AgentServicer inherits this mixin; `use_progress` hands it the service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import timestamp_pb2
from grpc import aio
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.core.auth import Principal
from server.core.errors import InvalidArgument, Unavailable
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
    InterventionKind.HINT: pb.INTERVENTION_TYPE_HINT,
    InterventionKind.QUIZ: pb.INTERVENTION_TYPE_QUIZ,
    InterventionKind.REVIEW: pb.INTERVENTION_TYPE_REVIEW,
    InterventionKind.BREAK: pb.INTERVENTION_TYPE_BREAK,
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


class ProgressServicerMixin:
    """Mixed into AgentServicer. Until `use_progress` is called the RPCs answer UNAVAILABLE."""

    _progress_service: ProgressService | None = None

    def use_progress(self, service: ProgressService) -> None:
        self._progress_service = service

    @property
    def _progress(self) -> ProgressService:
        if self._progress_service is None:
            raise Unavailable("video progress is not available on this server")
        return self._progress_service

    async def WatchVideo(
        self,
        request_iterator: AsyncIterator[pb.WatchVideoRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[pb.WatchVideoResponse]:
        principal = current_principal()
        progress = self._progress
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        target = watch_target(first.watch_session_id, first.video_id, first.course_id, first.duration_seconds)
        events = event_inputs(first.events)
        del first  # a stream lives for hours: keep nothing of its first message but what is needed
        box = await progress.attach(principal, target)
        try:
            reader = asyncio.create_task(self._read_watch(progress, principal, target, events, request_iterator, box))
            del events
            try:
                while (item := await box.get()) is not None:
                    yield _watch_response(item)
            finally:
                await _stop(reader)
        finally:
            await progress.detach(target, box)
        failure = None if reader.cancelled() else reader.exception()
        if failure is not None:
            raise failure

    async def _read_watch(
        self,
        progress: ProgressService,
        principal: Principal,
        target: WatchTarget,
        first_events: list[EventInput],
        requests: AsyncIterator[pb.WatchVideoRequest],
        box: Mailbox,
    ) -> None:
        """Reads the client's messages while the handler writes. When the client is done sending, the stream ends
        once the interventions whose content is still being made are out."""
        try:
            for rejection in (await progress.publish_from_stream(principal, target, first_events)).rejections:
                box.put(rejection)
            del first_events
            async for request in requests:
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
            await progress.finish_sending(target)
        finally:
            box.close()

    async def PublishVideoEvents(
        self, request: pb.PublishVideoEventsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.PublishVideoEventsResponse:
        principal = current_principal()
        target = watch_target(request.watch_session_id, request.video_id, request.course_id, request.duration_seconds)
        result = await self._progress.publish(principal, target, event_inputs(request.events))
        return pb.PublishVideoEventsResponse(
            accepted_count=result.accepted,
            rejections=[rejection_to_proto(rejection) for rejection in result.rejections],
        )

    async def StreamInterventions(
        self, request: pb.StreamInterventionsRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamInterventionsResponse]:
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
