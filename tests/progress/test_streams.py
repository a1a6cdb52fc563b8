"""The progress RPCs end to end: WatchVideo (native) and PublishVideoEvents + StreamInterventions (browsers)
drive one engine per watch session; bad events are rejected one by one; sessions belong to their user."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.core.db import Database
from tests.conftest import RunningServer
from tests.progress.conftest import (
    COURSE_ID,
    T0,
    VIDEO_ID,
    ProgressServerFactory,
    event,
    new_watch_session,
    played_through,
    rewatch_script,
    seeked,
    watch,
    with_ids,
)
from tests.support.clients import Client, error_details
from tests.support.waiting import wait_until


def interventions_of(responses: list[pb.WatchVideoResponse]) -> list[pb.Intervention]:
    return [r.intervention for r in responses if r.WhichOneof("payload") == "intervention"]


def rejections_of(responses: list[pb.WatchVideoResponse]) -> list[pb.EventRejection]:
    return [r.rejection for r in responses if r.WhichOneof("payload") == "rejection"]


def comparable(intervention: pb.Intervention) -> tuple[object, ...]:
    citation = intervention.citation
    return (
        intervention.type,
        intervention.reason,
        intervention.reason_text,
        intervention.position_seconds,
        intervention.range.start_seconds,
        intervention.range.end_seconds,
        intervention.content,
        (citation.video_id, citation.chunk_id, citation.start_seconds, citation.end_seconds),
        intervention.create_time.ToNanoseconds(),
    )


async def stored_count(server: RunningServer, sql: str, **params: object) -> int:
    async with server.server.database.session() as session:
        return int((await session.execute(text(sql), params)).scalar_one())


async def browser_session(
    client: Client, watch_session_id: str, batches: list[list[pb.VideoEvent]], *, expect: int
) -> tuple[list[pb.Intervention], list[pb.PublishVideoEventsResponse]]:
    """Opens StreamInterventions first (as a browser may), then publishes the batches."""
    call = client.agents.StreamInterventions(
        pb.StreamInterventionsRequest(watch_session_id=watch_session_id, video_id=VIDEO_ID, course_id=COURSE_ID)
    )
    received: list[pb.Intervention] = []

    async def read() -> None:
        async for response in call:
            received.append(response.intervention)
            if len(received) >= expect:
                return

    reader = asyncio.create_task(read())
    try:
        responses = []
        for batch in batches:
            # The stream may not be attached yet when the first batch lands: the session is created by
            # whichever call comes first, and the interventions wait for the stream's outbox.
            responses.append(
                await client.agents.PublishVideoEvents(
                    pb.PublishVideoEventsRequest(
                        watch_session_id=watch_session_id, video_id=VIDEO_ID, course_id=COURSE_ID, events=batch
                    )
                )
            )
        async with asyncio.timeout(20):
            await reader
    finally:
        call.cancel()
        reader.cancel()
    return received, responses


async def test_scripted_rewatch_over_watch_video_yields_a_hint_with_a_citation(progress_server: RunningServer) -> None:
    client = progress_server.client()
    responses = await watch(
        client, new_watch_session(), rewatch_script(), until=lambda got: bool(interventions_of(got))
    )
    (hint,) = interventions_of(responses)
    assert hint.type == common_pb2.INTERVENTION_TYPE_HINT
    assert hint.reason == "REWATCH"
    assert (hint.range.start_seconds, hint.range.end_seconds) == (95.0, 135.0)
    assert hint.intervention_id and hint.content
    assert hint.citation.video_id == VIDEO_ID
    assert hint.citation.quoted_text
    assert hint.citation.start_seconds < 135.0 and hint.citation.end_seconds > 95.0
    assert rejections_of(responses) == []


async def test_watch_video_and_the_browser_pair_produce_the_same_interventions(
    progress_server: RunningServer,
) -> None:
    client = progress_server.client()
    script = rewatch_script()
    native = interventions_of(
        await watch(client, new_watch_session(), script, until=lambda got: bool(interventions_of(got)))
    )
    batches = [script[:5], script[5:17], script[17:]]
    browser, responses = await browser_session(client, new_watch_session(), batches, expect=1)
    assert [comparable(i) for i in browser] == [comparable(i) for i in native]
    assert sum(r.accepted_count for r in responses) == len(script)
    assert all(not r.rejections for r in responses)


async def test_the_stream_may_open_after_the_events_arrived(progress_server: RunningServer) -> None:
    client = progress_server.client()
    watch_session_id = new_watch_session()
    script = rewatch_script()
    await client.agents.PublishVideoEvents(
        pb.PublishVideoEventsRequest(watch_session_id=watch_session_id, video_id=VIDEO_ID, events=script[:-1])
    )
    received, _ = await browser_session(client, watch_session_id, [script[-1:]], expect=1)
    assert [(i.type, i.reason) for i in received] == [(common_pb2.INTERVENTION_TYPE_HINT, "REWATCH")]


async def test_bad_events_are_rejected_without_ending_the_stream(progress_server: RunningServer) -> None:
    client = progress_server.client()
    script = rewatch_script()
    bad = [
        event(pb.VIDEO_EVENT_TYPE_HEARTBEAT, -5.0, 20.0, event_id="negative"),
        event(pb.VIDEO_EVENT_TYPE_HEARTBEAT, 9_999.0, 21.0, event_id="too-far"),
        event(pb.VIDEO_EVENT_TYPE_HEARTBEAT, 20.0, 1.0, event_id="late"),
        pb.VideoEvent(event_id="no-type", position_seconds=20.0),
    ]
    mixed = script[:3] + bad + script[3:]
    responses = await watch(client, new_watch_session(), mixed, until=lambda got: bool(interventions_of(got)))
    rejected = {r.event_id: r.reason for r in rejections_of(responses)}
    assert set(rejected) == {"negative", "too-far", "late", "no-type"}
    assert "negative" in rejected["negative"]
    assert "duration" in rejected["too-far"]
    assert "out of order" in rejected["late"]
    assert [i.reason for i in interventions_of(responses)] == ["REWATCH"]


async def test_publish_reports_rejections_and_ignores_repeated_ids(progress_server: RunningServer) -> None:
    client = progress_server.client()
    watch_session_id = new_watch_session()
    events = with_ids(played_through(0.0, 30.0, 0.0), "a")
    events.append(event(pb.VIDEO_EVENT_TYPE_RATE_CHANGED, 30.0, 31.0, playback_rate=10.0))
    events.append(seeked(30.0, 600.0, 32.0))  # the video is 494 s long
    response = await client.agents.PublishVideoEvents(
        pb.PublishVideoEventsRequest(watch_session_id=watch_session_id, video_id=VIDEO_ID, events=events)
    )
    assert response.accepted_count == 4
    assert [(r.event_id, "playback_rate" in r.reason) for r in response.rejections] == [("4", True), ("5", False)]
    again = await client.agents.PublishVideoEvents(
        pb.PublishVideoEventsRequest(watch_session_id=watch_session_id, video_id=VIDEO_ID, events=events[:4])
    )
    assert again.accepted_count == 0 and not again.rejections
    await progress_server.server.runtime.progress.hub.flush()
    stored = await stored_count(
        progress_server, "SELECT count(*) FROM video_events WHERE watch_session_id = :id", id=watch_session_id
    )
    assert stored == 4


async def test_a_watch_session_belongs_to_its_user(progress_server: RunningServer) -> None:
    owner, other = progress_server.client(), progress_server.client()
    watch_session_id = new_watch_session()
    request = pb.PublishVideoEventsRequest(
        watch_session_id=watch_session_id, video_id=VIDEO_ID, events=played_through(0.0, 10.0, 0.0)
    )
    assert (await owner.agents.PublishVideoEvents(request)).accepted_count == 2
    with pytest.raises(grpc.aio.AioRpcError) as publish_error:
        await other.agents.PublishVideoEvents(request)
    assert publish_error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as stream_error:
        async for _ in other.agents.StreamInterventions(
            pb.StreamInterventionsRequest(watch_session_id=watch_session_id, video_id=VIDEO_ID)
        ):
            pass
    assert stream_error.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as video_error:
        await owner.agents.PublishVideoEvents(
            pb.PublishVideoEventsRequest(
                watch_session_id=watch_session_id, video_id="another-video", events=request.events
            )
        )
    assert video_error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(video_error.value)["BadRequest"].field_violations[0].field == "video_id"


@pytest.mark.parametrize(
    ("watch_session_id", "events", "field"),
    [
        ("short", 1, "watch_session_id"),
        ("has spaces in it", 1, "watch_session_id"),
        ("ws-valid-id-0001", 0, "events"),
        ("ws-valid-id-0002", 501, "events"),
    ],
)
async def test_bad_publish_requests(
    progress_server: RunningServer, watch_session_id: str, events: int, field: str
) -> None:
    client = progress_server.client()
    batch = [event(pb.VIDEO_EVENT_TYPE_HEARTBEAT, 1.0, float(i)) for i in range(events)]
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.agents.PublishVideoEvents(
            pb.PublishVideoEventsRequest(watch_session_id=watch_session_id, video_id=VIDEO_ID, events=batch)
        )
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(error.value)["BadRequest"].field_violations[0].field == field


async def test_auto_hints_off_means_no_hint_interventions(progress_server: RunningServer) -> None:
    client = progress_server.client()
    await client.agents.UpdatePreferences(
        pb.UpdatePreferencesRequest(
            preferences=pb.Preferences(name="users/me/preferences", auto_hints_enabled=False),
            update_mask=field_mask_pb2.FieldMask(paths=["auto_hints_enabled"]),
        )
    )
    watch_session_id = new_watch_session()
    # The re-watch, then 26 minutes of playback on a long video: only the break may come.
    script = rewatch_script() + played_through(100.0, 26 * 60.0, 180.0, beat=60.0)
    responses = await watch(
        client,
        watch_session_id,
        script,
        video_id="long-lecture",
        duration=7200.0,
        until=lambda got: any(i.type == common_pb2.INTERVENTION_TYPE_BREAK for i in interventions_of(got)),
    )
    kinds = [i.type for i in interventions_of(responses)]
    assert common_pb2.INTERVENTION_TYPE_BREAK in kinds
    assert common_pb2.INTERVENTION_TYPE_HINT not in kinds and common_pb2.INTERVENTION_TYPE_REVIEW not in kinds
    await progress_server.server.runtime.progress.hub.flush()
    hints = await stored_count(
        progress_server,
        "SELECT count(*) FROM interventions WHERE watch_session_id = :id AND type IN ('hint', 'review')",
        id=watch_session_id,
    )
    assert hints == 0


async def test_checkpoint_quiz_follows_the_quiz_frequency(progress_server: RunningServer) -> None:
    client = progress_server.client()
    await client.agents.UpdatePreferences(
        pb.UpdatePreferencesRequest(
            preferences=pb.Preferences(name="users/me/preferences", quiz_frequency=pb.QUIZ_FREQUENCY_HIGH),
            update_mask=field_mask_pb2.FieldMask(paths=["quiz_frequency"]),
        )
    )
    responses = await watch(
        client,
        new_watch_session(),
        played_through(0.0, 200.0, 0.0),
        until=lambda got: bool(interventions_of(got)),
    )
    (quiz,) = interventions_of(responses)
    assert (quiz.type, quiz.reason) == (common_pb2.INTERVENTION_TYPE_QUIZ, "CHECKPOINT")
    assert (quiz.range.start_seconds, quiz.range.end_seconds) == (0.0, 180.0)


async def test_acknowledgements_are_recorded(progress_server: RunningServer) -> None:
    client = progress_server.client()
    watch_session_id = new_watch_session()
    received, _ = await browser_session(client, watch_session_id, [rewatch_script()], expect=1)
    (hint,) = received
    response = await client.agents.PublishVideoEvents(
        pb.PublishVideoEventsRequest(
            watch_session_id=watch_session_id,
            video_id=VIDEO_ID,
            events=[
                event(pb.VIDEO_EVENT_TYPE_INTERVENTION_ACCEPTED, 100.0, 180.0, intervention_id=hint.intervention_id),
                event(pb.VIDEO_EVENT_TYPE_INTERVENTION_DISMISSED, 100.0, 181.0, intervention_id="not-one-of-ours"),
            ],
        )
    )
    assert response.accepted_count == 1
    assert [r.event_id for r in response.rejections] == ["1"]
    await progress_server.server.runtime.progress.hub.flush()
    acks = await stored_count(
        progress_server,
        "SELECT count(*) FROM intervention_acks WHERE intervention_id = :id AND action = 'accepted'",
        id=hint.intervention_id,
    )
    assert acks == 1


async def test_content_is_made_without_blocking_events_and_dropped_when_stale(
    progress_server: RunningServer,
) -> None:
    """While a hint's content is being made, events keep flowing; the student jumps far away meanwhile, so
    the finished content is not sent (it is recorded as stale)."""
    client = progress_server.client()
    watch_session_id = new_watch_session()
    hub = progress_server.server.runtime.progress.hub
    # The hint's content reads the transcript; holding its table keeps the content from finishing.
    blocker = Database(progress_server.server.database.url, pool_size=1)

    async def publish(events: list[pb.VideoEvent]) -> int:
        response = await client.agents.PublishVideoEvents(
            pb.PublishVideoEventsRequest(watch_session_id=watch_session_id, video_id=VIDEO_ID, events=events)
        )
        return response.accepted_count

    async def stale_recorded() -> bool:
        await hub.flush()
        count = await stored_count(
            progress_server,
            "SELECT count(*) FROM interventions WHERE watch_session_id = :id AND status = 'stale'",
            id=watch_session_id,
        )
        return count == 1

    try:
        async with blocker.transaction() as session:
            await session.execute(text("LOCK TABLE transcript_chunks IN ACCESS EXCLUSIVE MODE"))
            assert await publish(rewatch_script()) == len(rewatch_script())
            assert await publish([seeked(100.0, 450.0, 174.0), event(pb.VIDEO_EVENT_TYPE_PLAYED, 450.0, 175.0)]) == 2
            assert not await stale_recorded()
        assert await wait_until(stale_recorded)
    finally:
        await blocker.dispose()


async def stored_watched(server: RunningServer, watch_session_id: str) -> float:
    await server.server.runtime.progress.hub.flush()
    async with server.server.database.session() as session:
        statement = text("SELECT watched_seconds FROM watch_sessions WHERE id = :id")
        return float((await session.execute(statement, {"id": watch_session_id})).scalar_one())


async def test_a_session_loaded_again_goes_on_from_its_watched_total(
    progress_server_factory: ProgressServerFactory,
) -> None:
    server = await progress_server_factory(watch_session_idle_seconds=0.01)
    client = server.client()
    hub = server.server.runtime.progress.hub
    watch_session_id = new_watch_session()

    async def publish(events: list[pb.VideoEvent]) -> None:
        reply = await client.agents.PublishVideoEvents(
            pb.PublishVideoEventsRequest(watch_session_id=watch_session_id, video_id=VIDEO_ID, events=events)
        )
        assert reply.accepted_count == len(events)

    await publish(with_ids(played_through(0.0, 60.0, 1000.0), "first"))
    assert await stored_watched(server, watch_session_id) == pytest.approx(60.0)
    await asyncio.sleep(0.05)
    await hub.sweep()  # idle: unloaded, its engine gone
    assert hub.loaded_sessions == 0
    await publish(with_ids(played_through(60.0, 30.0, 1100.0), "second"))
    assert await stored_watched(server, watch_session_id) == pytest.approx(90.0)


async def test_the_watch_stream_ends_ok_when_the_service_closes_its_outbox(progress_server: RunningServer) -> None:
    client = progress_server.client("outbox-closed")
    call = client.agents.WatchVideo()
    played = event(pb.VIDEO_EVENT_TYPE_PLAYED, 0.0, T0)
    await call.write(pb.WatchVideoRequest(watch_session_id=new_watch_session(), video_id=VIDEO_ID, events=[played]))
    hub = progress_server.server.runtime.progress.hub

    async def attached() -> bool:
        return hub.loaded_sessions == 1

    assert await wait_until(attached)
    hub.forget_user("outbox-closed")
    async with asyncio.timeout(10):
        responses = [response async for response in call]
    assert await call.code() == grpc.StatusCode.OK
    assert not interventions_of(responses)
