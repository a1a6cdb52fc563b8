"""Events are never lost: written when a client cancels, when the server shuts down, after the database
comes back; intake waits (bounded memory) while the database is slow; a slow client's outbox stays bounded."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from tutorstream.v1 import agent_service_pb2 as pb

from server.core.auth import Principal, Role, Tier
from server.core.db import Database
from server.core.embedded_pg import EmbeddedPostgres
from server.progress.domain import Mailbox, WatchTarget
from server.progress.events import Rejection
from server.progress.persistence import AckRow, EventRow, EventWriter, InterventionRecord
from tests.progress.conftest import (
    VIDEO_ID,
    ProgressServerFactory,
    event,
    new_watch_session,
    played_through,
    watch,
    with_ids,
)
from tests.support.postgres import create_fresh_database, database_url
from tests.support.waiting import wait_until

SLOW_FLUSH = {"watch_flush_interval_seconds": 60.0}


async def count_events(url: str, watch_session_id: str) -> int:
    database = Database(url, pool_size=1)
    try:
        async with database.session() as session:
            statement = text("SELECT count(*) FROM video_events WHERE watch_session_id = :id")
            return int((await session.execute(statement, {"id": watch_session_id})).scalar_one())
    finally:
        await database.dispose()


def marker(at: float) -> pb.VideoEvent:
    """A bad event: its rejection tells the client every event before it has been taken in."""
    return event(pb.VIDEO_EVENT_TYPE_HEARTBEAT, -1.0, at, event_id="marker")


async def test_events_are_stored_when_the_client_cancels(
    progress_server_factory: ProgressServerFactory, progress_database_url: str
) -> None:
    running = await progress_server_factory(**SLOW_FLUSH)
    watch_session_id = new_watch_session()
    sent = with_ids(played_through(0.0, 300.0, 0.0, beat=5.0), "e")
    responses = await watch(
        running.client(),
        watch_session_id,
        [*sent, marker(301.0)],
        until=lambda got: any(r.rejection.event_id == "marker" for r in got),
        cancel=True,
    )
    assert responses  # the call was cancelled right after the marker's rejection arrived

    async def all_stored() -> bool:
        return await count_events(progress_database_url, watch_session_id) == len(sent)

    assert await wait_until(all_stored)


async def test_events_are_stored_when_the_server_shuts_down(
    progress_server_factory: ProgressServerFactory, progress_database_url: str
) -> None:
    running = await progress_server_factory(**SLOW_FLUSH)
    client = running.client()
    native, browser = new_watch_session(), new_watch_session()
    native_events = with_ids(played_through(0.0, 200.0, 0.0, beat=5.0), "n")
    browser_events = with_ids(played_through(0.0, 400.0, 0.0, beat=2.0), "b")

    outgoing: asyncio.Queue[pb.WatchVideoRequest] = asyncio.Queue()
    await outgoing.put(pb.WatchVideoRequest(watch_session_id=native, video_id=VIDEO_ID, events=native_events))
    await outgoing.put(pb.WatchVideoRequest(events=[marker(201.0)]))

    async def requests():  # type: ignore[no-untyped-def]
        while True:
            yield await outgoing.get()

    call = client.agents.WatchVideo(requests())
    async with asyncio.timeout(20):
        async for response in call:
            if response.rejection.event_id == "marker":
                break
    accepted = 0
    for start in range(0, len(browser_events), 50):
        reply = await client.agents.PublishVideoEvents(
            pb.PublishVideoEventsRequest(
                watch_session_id=browser, video_id=VIDEO_ID, events=browser_events[start : start + 50]
            )
        )
        accepted += reply.accepted_count
    assert accepted == len(browser_events)

    await running.server.stop(0)  # the WatchVideo stream is still open
    with pytest.raises(grpc.aio.AioRpcError):
        async with asyncio.timeout(10):
            async for _ in call:
                pass
    assert await count_events(progress_database_url, native) == len(native_events)
    assert await count_events(progress_database_url, browser) == len(browser_events)


def _rows(watch_session_id: str, user_id: str, count: int, offset: int = 0) -> list[EventRow]:
    now = time.time()
    return [
        EventRow(
            watch_session_id=watch_session_id,
            user_id=user_id,
            video_id=VIDEO_ID,
            event_id=f"r{offset + index}",
            type="heartbeat",
            position=float(index),
            seek_from=None,
            seek_to=None,
            rate=None,
            intervention_id="",
            event_time=now + index,
            client_time=None,
            receive_time=now,
        )
        for index in range(count)
    ]


async def _create_session(database: Database, watch_session_id: str, user_id: str) -> None:
    async with database.transaction() as session:
        await session.execute(text("INSERT INTO users (id) VALUES (:u) ON CONFLICT DO NOTHING"), {"u": user_id})
        await session.execute(
            text("INSERT INTO watch_sessions (id, user_id, video_id) VALUES (:id, :u, :v)"),
            {"id": watch_session_id, "u": user_id, "v": VIDEO_ID},
        )


async def test_intake_waits_while_the_database_is_slow(progress_database_url: str) -> None:
    database = Database(progress_database_url, pool_size=2)
    blocker = Database(progress_database_url, pool_size=1)
    writer = EventWriter(database, flush_interval=0.05, batch_size=5, max_pending=10)
    watch_session_id = new_watch_session()
    try:
        await _create_session(database, watch_session_id, "slow-db-student")
        writer.start()
        async with blocker.transaction() as session:
            await session.execute(text("LOCK TABLE video_events IN ACCESS EXCLUSIVE MODE"))
            writer.add_events(_rows(watch_session_id, "slow-db-student", 10))
            waiting = asyncio.create_task(writer.wait_for_room())
            done, _ = await asyncio.wait({waiting}, timeout=1.0)
            assert not done, "intake must wait while the buffer is full and the database does not take it"
            assert writer.pending <= 10
        async with asyncio.timeout(10):
            await waiting
        writer.add_events(_rows(watch_session_id, "slow-db-student", 3, offset=10))
        await writer.flush()
        assert await count_events(progress_database_url, watch_session_id) == 13
    finally:
        await writer.close()
        await database.dispose()
        await blocker.dispose()


async def test_rows_survive_a_database_outage(embedded_pg: EmbeddedPostgres, progress_template: str) -> None:
    """The writer keeps its rows and retries while the database cannot be reached."""
    missing = f"progress_outage_{int(time.time() * 1000) % 10**9}"
    url = database_url(embedded_pg.admin_url, missing)
    database = Database(url, pool_size=1)
    writer = EventWriter(database, flush_interval=0.05, batch_size=100, max_pending=1000)
    watch_session_id = new_watch_session()
    try:
        writer.start()
        writer.add_events(_rows(watch_session_id, "outage-student", 7))
        await asyncio.sleep(0.5)
        assert writer.pending == 7  # every attempt so far failed: the database does not exist yet
        created = create_fresh_database(embedded_pg.admin_url, "outage", template=progress_template)
        database_name = make_url(created).database
        assert database_name is not None
        # Point the writer's database at the new one by renaming it to the name the writer uses.
        admin = Database(embedded_pg.admin_url, pool_size=1)
        try:
            async with admin.engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text(f'ALTER DATABASE "{database_name}" RENAME TO "{missing}"'))
        finally:
            await admin.dispose()
        await _create_session(Database(url, pool_size=1), watch_session_id, "outage-student")

        async def written() -> bool:
            return await count_events(url, watch_session_id) == 7

        assert await wait_until(written, within=20.0)
        assert writer.pending == 0
    finally:
        await writer.close()
        await database.dispose()


async def test_a_slow_client_outbox_drops_its_oldest_messages() -> None:
    box = Mailbox(3)
    for index in range(5):
        box.put(Rejection(str(index), "r"))
    assert len(box) == 3 and box.dropped == 2
    assert [(await box.get()).event_id for _ in range(3)] == ["2", "3", "4"]  # type: ignore[union-attr]
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    box.put(Rejection("5", "r"))
    assert (await getter) == Rejection("5", "r")
    box.close()
    assert await box.get() is None


async def test_a_stream_that_stops_reading_keeps_a_bounded_outbox(
    progress_server_factory: ProgressServerFactory,
) -> None:
    """A stream whose client reads nothing: of 30 interventions only the newest `watch_outbox_size` wait."""
    running = await progress_server_factory(
        watch_break_after_seconds=60.0, watch_cooldown_seconds=0.0, watch_outbox_size=4
    )
    client = running.client()
    watch_session_id = new_watch_session()
    hub = running.server.runtime.progress.hub
    box = Mailbox(running.settings.watch_outbox_size)
    principal = Principal(client.user_id, Role.STUDENT, Tier.FREE)
    target = WatchTarget(watch_session_id, "long-lecture", duration=7200.0)
    await hub.attach(principal, target, box)
    try:
        reply = await client.agents.PublishVideoEvents(
            pb.PublishVideoEventsRequest(
                watch_session_id=watch_session_id,
                video_id="long-lecture",
                duration_seconds=7200.0,
                events=played_through(0.0, 30 * 61.0, 0.0, beat=61.0),
            )
        )
        assert reply.accepted_count == 31
        assert len(box) == 4 and box.dropped == 26
        newest = [await box.get() for _ in range(4)]
        assert [item.create_time for item in newest] == sorted(item.create_time for item in newest)  # type: ignore[union-attr]
    finally:
        await hub.detach(watch_session_id, box)


async def test_every_column_of_each_row_type_is_stored_where_it_belongs(progress_database_url: str) -> None:
    """Rows travel as JSON arrays in their dataclass's field order: each value lands in its own column."""
    database = Database(progress_database_url, pool_size=2)
    writer = EventWriter(database, flush_interval=60.0, batch_size=100, max_pending=1000)
    watch_session_id = new_watch_session()
    try:
        await _create_session(database, watch_session_id, "columns-student")
        writer.add_events(
            [
                EventRow(
                    watch_session_id=watch_session_id,
                    user_id="columns-student",
                    video_id=VIDEO_ID,
                    event_id="e-1",
                    type="seeked",
                    position=12.5,
                    seek_from=3.25,
                    seek_to=12.5,
                    rate=1.5,
                    intervention_id="i-ref",
                    event_time=1_760_000_010.0,
                    client_time=1_760_000_011.0,
                    receive_time=1_760_000_012.0,
                )
            ]
        )
        writer.add_intervention(
            InterventionRecord(
                id="i-1",
                watch_session_id=watch_session_id,
                user_id="columns-student",
                video_id=VIDEO_ID,
                course_id="course-c",
                type="review",
                reason="rewatch",
                reason_text="You went back twice",
                position=40.0,
                start=30.0,
                end=45.0,
                content="Review the part on flex-grow",
                citation='{"chunk_id": "c-9"}',
                quiz="",
                interaction_id="",
                status="delivered",
                trigger_time=1_760_000_020.0,
            )
        )
        writer.add_acknowledgement(
            AckRow(
                intervention_id="i-1",
                watch_session_id=watch_session_id,
                user_id="columns-student",
                action="accepted",
                event_time=1_760_000_030.0,
            )
        )
        await writer.flush()
        async with database.transaction() as session:
            stored_event = (
                await session.execute(
                    text(
                        "SELECT watch_session_id, user_id, video_id, event_id, type, position_seconds,"
                        " seek_from_seconds, seek_to_seconds, playback_rate, intervention_id,"
                        " extract(epoch FROM event_time), extract(epoch FROM client_time),"
                        " extract(epoch FROM receive_time) FROM video_events WHERE watch_session_id = :id"
                    ),
                    {"id": watch_session_id},
                )
            ).one()
            stored_intervention = (
                await session.execute(
                    text(
                        "SELECT id, watch_session_id, user_id, video_id, course_id, type, reason, reason_text,"
                        " position_seconds, start_seconds, end_seconds, content, citation, quiz, interaction_id,"
                        " status, extract(epoch FROM trigger_time) FROM interventions WHERE id = 'i-1'"
                    )
                )
            ).one()
            stored_ack = (
                await session.execute(
                    text(
                        "SELECT intervention_id, watch_session_id, user_id, action, extract(epoch FROM event_time)"
                        " FROM intervention_acks WHERE intervention_id = 'i-1'"
                    )
                )
            ).one()
        assert tuple(stored_event) == (
            watch_session_id,
            "columns-student",
            VIDEO_ID,
            "e-1",
            "seeked",
            12.5,
            3.25,
            12.5,
            1.5,
            "i-ref",
            1_760_000_010,
            1_760_000_011,
            1_760_000_012,
        )
        assert tuple(stored_intervention) == (
            "i-1",
            watch_session_id,
            "columns-student",
            VIDEO_ID,
            "course-c",
            "review",
            "rewatch",
            "You went back twice",
            40.0,
            30.0,
            45.0,
            "Review the part on flex-grow",
            {"chunk_id": "c-9"},
            "",
            "",
            "delivered",
            1_760_000_020,
        )
        assert tuple(stored_ack) == ("i-1", watch_session_id, "columns-student", "accepted", 1_760_000_030)
    finally:
        await writer.close()
        await database.dispose()
