"""Analytics tests reuse the progress fixtures: a database with the flexbox demo video ingested, and servers
with the fake-OpenAI embedder. `run_student` drives one student through WatchVideo like a real player."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tutorstream.v1 import agent_service_pb2 as pb

from tests.progress.conftest import (  # noqa: F401 - fixtures used by the analytics tests
    COURSE_ID,
    T0,
    VIDEO_ID,
    event,
    progress_database_url,
    progress_embedder,
    progress_server,
    progress_server_factory,
    progress_template,
)
from tests.support.clients import Client


async def run_student(
    client: Client, watch_session_id: str, events: list[pb.VideoEvent], *, answer: int | None = None
) -> list[pb.Intervention]:
    """Sends `events` on a WatchVideo stream. With `answer` (a VideoEventType) the stream waits for one
    intervention and acknowledges it that way. Then a marker event (rejected: its rejection says everything
    before it is in) and the player closes the stream, reading it to its end."""
    outgoing: asyncio.Queue[pb.WatchVideoRequest | None] = asyncio.Queue()
    await outgoing.put(pb.WatchVideoRequest(watch_session_id=watch_session_id, video_id=VIDEO_ID, course_id=COURSE_ID))
    for item in events:
        await outgoing.put(pb.WatchVideoRequest(events=[item]))
    last_time = events[-1].event_time.ToNanoseconds() / 1e9 - T0 if events else 0.0

    async def requests() -> AsyncIterator[pb.WatchVideoRequest]:
        while (message := await outgoing.get()) is not None:
            yield message

    async def finish() -> None:
        marker = event(pb.VIDEO_EVENT_TYPE_HEARTBEAT, -1.0, last_time + 10, event_id="end")
        await outgoing.put(pb.WatchVideoRequest(events=[marker]))

    received: list[pb.Intervention] = []
    if answer is None:
        await finish()
    async with asyncio.timeout(30):
        async for response in client.agents.WatchVideo(requests()):
            if response.WhichOneof("payload") == "intervention":
                received.append(response.intervention)
                if answer is not None and len(received) == 1:
                    ack = event(answer, response.intervention.position_seconds, last_time + 1)
                    ack.intervention_id = response.intervention.intervention_id
                    await outgoing.put(pb.WatchVideoRequest(events=[ack]))
                    await finish()
            elif response.rejection.event_id == "end":
                await outgoing.put(None)
    return received
