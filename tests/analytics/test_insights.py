"""Insights: computed by a background job from the learner's data, listed newest first with pages, dismissed
for good; worded by the model when one is configured."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import analytics_service_pb2 as pb

from tests.analytics.conftest import run_student
from tests.conftest import RunningServer
from tests.progress.conftest import ProgressServerFactory, event, new_watch_session, played_through, seeked
from tests.support.clients import Client
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.waiting import wait_until


async def set_preferences(client: Client, **values: object) -> None:
    await client.agents.UpdatePreferences(
        agent_pb.UpdatePreferencesRequest(
            preferences=agent_pb.Preferences(name="users/me/preferences", **values),  # type: ignore[arg-type]
            update_mask=field_mask_pb2.FieldMask(paths=list(values)),
        )
    )


async def add_mastery(server: RunningServer, user_id: str, rows: list[tuple[str, float, int, int]]) -> None:
    async with server.server.database.transaction() as session:
        for concept, probability, attempts, correct in rows:
            await session.execute(
                text(
                    "INSERT INTO concept_mastery (user_id, concept, probability, attempts, correct) "
                    "VALUES (:u, :c, :p, :a, :k)"
                ),
                {"u": user_id, "c": concept, "p": probability, "a": attempts, "k": correct},
            )


async def insights_of(client: Client, **request: object) -> list[pb.Insight]:
    found: list[pb.Insight] = []
    token = ""
    while True:
        page = await client.analytics.ListInsights(pb.ListInsightsRequest(page_token=token, **request))  # type: ignore[arg-type]
        found.extend(page.insights)
        token = page.next_page_token
        if not token:
            return found


async def generated(client: Client, minimum: int = 1) -> list[pb.Insight]:
    found: list[pb.Insight] = []

    async def enough() -> bool:
        found[:] = await insights_of(client)
        return len(found) >= minimum

    assert await wait_until(enough, within=60.0)
    return found


def struggle() -> list[agent_pb.VideoEvent]:
    """Back over 1:40–2:10 twice and two pauses there: four signals in one stretch."""
    events = played_through(0.0, 130.0, 0.0)
    events.append(seeked(130.0, 100.0, 131.0))
    events += played_through(100.0, 10.0, 132.0)
    events.append(event(agent_pb.VIDEO_EVENT_TYPE_PAUSED, 110.0, 142.0))
    events += played_through(110.0, 5.0, 150.0)
    events.append(event(agent_pb.VIDEO_EVENT_TYPE_PAUSED, 115.0, 155.0))
    events += played_through(115.0, 15.0, 160.0)
    events.append(seeked(130.0, 105.0, 176.0))
    return events


async def test_insights_are_computed_listed_and_dismissed(progress_server: RunningServer) -> None:
    client = progress_server.client()
    await set_preferences(client, auto_hints_enabled=False, quiz_frequency=agent_pb.QUIZ_FREQUENCY_OFF)
    await add_mastery(progress_server, client.user_id, [("flex-basis", 0.2, 3, 0), ("display: flex", 0.9, 4, 4)])
    await run_student(client, new_watch_session(), struggle())
    for _ in range(2):
        await run_student(client, new_watch_session(), played_through(0.0, 320.0, 0.0, beat=20.0))
    await progress_server.server.runtime.progress.hub.flush()

    job = await client.analytics.GenerateInsights(pb.GenerateInsightsRequest())
    assert job.job_id.isdigit()
    found = await generated(client, minimum=5)
    kinds = sorted((pb.InsightKind.Name(i.kind), i.concept) for i in found)
    struggling_stretch = [
        i for i in found if i.kind == pb.INSIGHT_KIND_STRUGGLING_CONCEPT and i.concept != "flex-basis"
    ]
    assert ("INSIGHT_KIND_STRUGGLING_CONCEPT", "flex-basis") in kinds
    assert ("INSIGHT_KIND_STRONG_AREA", "display: flex") in kinds
    assert ("INSIGHT_KIND_RECOMMENDED_INTERVENTION", "hints") in kinds
    assert ("INSIGHT_KIND_RECOMMENDED_INTERVENTION", "quizzes") in kinds
    (stretch,) = struggling_stretch
    assert stretch.citations and stretch.citations[0].video_id == "flexbox-layout"
    assert stretch.citations[0].start_seconds <= 120.0 and stretch.citations[0].quoted_text
    assert all(i.name == f"insights/{i.insight_id}" and i.create_time.seconds > 0 for i in found)

    first_page = await client.analytics.ListInsights(pb.ListInsightsRequest(page_size=2))
    assert len(first_page.insights) == 2 and first_page.next_page_token
    assert [i.insight_id for i in await insights_of(client, page_size=2)] == [i.insight_id for i in found]
    with pytest.raises(grpc.aio.AioRpcError) as bad_token:
        await client.analytics.ListInsights(
            pb.ListInsightsRequest(page_token=first_page.next_page_token, course_id="x")
        )
    assert bad_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    hints = next(i for i in found if i.concept == "hints")
    other = progress_server.client()
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await other.analytics.DismissInsight(pb.DismissInsightRequest(name=hints.name))
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    dismissed = (await client.analytics.DismissInsight(pb.DismissInsightRequest(name=hints.name))).insight
    assert dismissed.dismiss_time.seconds > 0
    visible = await insights_of(client)
    assert hints.insight_id not in {i.insight_id for i in visible}
    assert hints.insight_id in {i.insight_id for i in await insights_of(client, show_dismissed=True)}

    # A new run replaces the visible insights and leaves the dismissed one dismissed.
    before = {i.insight_id for i in visible}
    await client.analytics.GenerateInsights(pb.GenerateInsightsRequest())
    again: list[pb.Insight] = []

    async def replaced() -> bool:
        again[:] = await insights_of(client)
        return not {i.insight_id for i in again} & before

    assert await wait_until(replaced, within=60.0)
    assert len(again) == len(visible)
    assert all(i.concept != "hints" for i in again)
    everything = await insights_of(client, show_dismissed=True)
    assert sum(i.concept == "hints" for i in everything) == 1


async def test_the_model_words_insights_when_configured(
    progress_server_factory: ProgressServerFactory, fake_openai: FakeOpenAI
) -> None:
    running = await progress_server_factory(openai_api_key=fake_openai.api_key, openai_base_url=fake_openai.base_url)
    client = running.client()
    await set_preferences(client, quiz_frequency=agent_pb.QUIZ_FREQUENCY_LOW)
    await add_mastery(running, client.user_id, [("flex-grow", 0.1, 2, 0), ("gap", 0.95, 5, 5)])
    fake_openai.enqueue_chat(
        Behavior(
            json_content={
                "insights": [
                    {"index": 0, "title": "Let's revisit flex-grow", "detail": "0 of 2 right so far; 10% mastery."},
                    {"index": 1, "title": "Gap: nailed it", "detail": "5 of 5 right; 95% mastery."},
                ]
            }
        )
    )
    await client.analytics.GenerateInsights(pb.GenerateInsightsRequest())
    found = await generated(client, minimum=2)
    assert sorted(i.title for i in found) == ["Gap: nailed it", "Let's revisit flex-grow"]
    async with running.server.database.session() as session:
        operations = (
            (
                await session.execute(
                    text("SELECT operation FROM usage_records WHERE user_id = :u"), {"u": client.user_id}
                )
            )
            .scalars()
            .all()
        )
    assert list(operations) == ["insights"]


async def test_without_a_model_the_templates_stand(progress_server: RunningServer) -> None:
    client = progress_server.client()
    await set_preferences(client, quiz_frequency=agent_pb.QUIZ_FREQUENCY_LOW)
    await add_mastery(progress_server, client.user_id, [("flex-grow", 0.1, 2, 0)])
    await client.analytics.GenerateInsights(pb.GenerateInsightsRequest())
    (insight,) = await generated(client)
    assert insight.title == "flex-grow needs another look"
    assert "0 of 2" in insight.detail
