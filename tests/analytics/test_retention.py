"""Retention and DeleteUserData: old interactions and expired shared content go; deleting a user leaves no row
that names them, in any table that has a user column (checked against the live schema)."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import analytics_service_pb2 as pb
from tutorstream.v1 import chat_service_pb2 as chat_pb
from tutorstream.v1 import common_pb2

from server.analytics.repository import USER_DELETIONS
from tests.analytics.conftest import COURSE_ID, VIDEO_ID, run_student
from tests.conftest import RunningServer
from tests.progress.conftest import ProgressServerFactory, new_watch_session, rewatch_script
from tests.support.clients import Client
from tests.support.waiting import wait_until

USER_COLUMNS = ("user_id", "requested_by", "granted_by", "created_by")


async def scalar(server: RunningServer, sql: str, **params: object) -> int:
    async with server.server.database.session() as session:
        return int((await session.execute(text(sql), params)).scalar_one())


async def quiz(client: Client, start: float, end: float) -> agent_pb.Quiz:
    response = await client.agents.GenerateQuiz(
        agent_pb.GenerateQuizRequest(
            video_id=VIDEO_ID, range=common_pb2.TimeRange(start_seconds=start, end_seconds=end), question_count=1
        )
    )
    return response.quiz


async def test_the_retention_job_removes_old_interactions_and_expired_unused_content(
    progress_server_factory: ProgressServerFactory,
) -> None:
    running = await progress_server_factory(retention_interval_seconds=0.3, interaction_retention_days=90)
    keeper, leaver = running.client(), running.client()
    old = await keeper.analytics.RecordInteraction(pb.RecordInteractionRequest(trigger="old"))
    fresh = await keeper.analytics.RecordInteraction(pb.RecordInteractionRequest(trigger="fresh"))
    kept_quiz = await quiz(keeper, 0.0, 120.0)
    await quiz(leaver, 240.0, 400.0)
    await leaver.analytics.DeleteUserData(pb.DeleteUserDataRequest(user="users/me"))
    async with running.server.database.transaction() as session:
        await session.execute(
            text("UPDATE ai_interactions SET create_time = now() - interval '100 days' WHERE id = :id"),
            {"id": old.interaction.interaction_id},
        )
        await session.execute(text("UPDATE generated_quizzes SET expire_time = now() - interval '1 day'"))

    async def swept() -> bool:
        remaining = await scalar(running, "SELECT count(*) FROM generated_quizzes")
        old_rows = await scalar(
            running, "SELECT count(*) FROM ai_interactions WHERE id = :id", id=old.interaction.interaction_id
        )
        return remaining == 1 and old_rows == 0

    assert await wait_until(swept, within=30.0)
    assert (
        await scalar(
            running, "SELECT count(*) FROM ai_interactions WHERE id = :id", id=fresh.interaction.interaction_id
        )
        == 1
    )
    # The expired copy a student still holds a quiz of stays (their learning record refers to it).
    assert (
        await scalar(
            running,
            "SELECT count(*) FROM quizzes WHERE id = :id",
            id=kept_quiz.quiz_id,
        )
        == 1
    )


async def rows_naming(server: RunningServer, user_id: str) -> dict[str, int]:
    """Rows mentioning `user_id` in every table with a user column, found in the live schema."""
    async with server.server.database.session() as session:
        columns = (
            await session.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND column_name = ANY(:names)"
                ),
                {"names": list(USER_COLUMNS)},
            )
        ).all()
        counts = {}
        for table, column in columns:
            statement = text(f'SELECT count(*) FROM "{table}" WHERE "{column}" = :user')
            counts[table] = int((await session.execute(statement, {"user": user_id})).scalar_one())
        counts["users"] = int(
            (await session.execute(text("SELECT count(*) FROM users WHERE id = :user"), {"user": user_id})).scalar_one()
        )
        counts["jobs"] = int(
            (
                await session.execute(
                    text("SELECT count(*) FROM procrastinate_jobs WHERE args ->> 'user_id' = :user"), {"user": user_id}
                )
            ).scalar_one()
        )
    return counts


async def a_busy_learner(server: RunningServer, client: Client) -> None:
    """Chat, preferences, watching with an accepted hint, a rated interaction, a quiz answered, insights."""
    session = (
        await client.chat.CreateSession(
            chat_pb.CreateSessionRequest(
                title="flexbox", learning_context=common_pb2.LearningContext(course_id=COURSE_ID, video_id=VIDEO_ID)
            )
        )
    ).session
    async for _ in client.chat.StreamChat(chat_pb.StreamChatRequest(session=session.name, message="What is flex?")):
        pass
    await client.agents.UpdatePreferences(
        agent_pb.UpdatePreferencesRequest(
            preferences=agent_pb.Preferences(name="users/me/preferences", quiz_frequency=agent_pb.QUIZ_FREQUENCY_LOW),
            update_mask={"paths": ["quiz_frequency"]},
        )
    )
    await run_student(
        client, new_watch_session(), rewatch_script(), answer=agent_pb.VIDEO_EVENT_TYPE_INTERVENTION_ACCEPTED
    )
    recorded = await client.analytics.RecordInteraction(pb.RecordInteractionRequest(trigger="quick_action:explain"))
    await client.analytics.RateInteraction(pb.RateInteractionRequest(name=recorded.interaction.name, rating=3))
    taken = await quiz(client, 0.0, 120.0)
    await client.agents.SubmitQuizAnswer(
        agent_pb.SubmitQuizAnswerRequest(
            quiz=taken.name, question_id=taken.questions[0].question_id, selected_index=1, attempt_id="attempt-1"
        )
    )
    await client.analytics.GenerateInsights(pb.GenerateInsightsRequest())

    async def has_insights() -> bool:
        return bool((await client.analytics.ListInsights(pb.ListInsightsRequest())).insights)

    assert await wait_until(has_insights, within=60.0)
    await server.server.runtime.progress.hub.flush()


async def test_delete_user_data_leaves_nothing_behind(progress_server: RunningServer) -> None:
    learner, bystander = progress_server.client(), progress_server.client()
    await a_busy_learner(progress_server, learner)
    await run_student(bystander, new_watch_session(), rewatch_script()[:10])
    await progress_server.server.runtime.progress.hub.flush()
    before = await rows_naming(progress_server, learner.user_id)
    bystander_before = await rows_naming(progress_server, bystander.user_id)
    for table in (
        "chat_sessions",
        "watch_sessions",
        "video_events",
        "interventions",
        "intervention_acks",
        "ai_interactions",
        "quizzes",
        "quiz_attempts",
        "concept_mastery",
        "preferences",
        "insights",
    ):
        assert before[table] > 0, table

    deleted = (await learner.analytics.DeleteUserData(pb.DeleteUserDataRequest(user="users/me"))).deleted
    for kind in (
        "sessions",
        "messages",
        "events",
        "watch_sessions",
        "interventions",
        "acknowledgements",
        "interactions",
        "quizzes",
        "quiz_attempts",
        "mastery",
        "preferences",
        "insights",
        "users",
    ):
        assert deleted[kind] > 0, kind
    assert deleted["events"] == before["video_events"]
    assert deleted["interactions"] == before["ai_interactions"]
    assert deleted["jobs"] == before["jobs"]
    assert all(count == 0 for count in (await rows_naming(progress_server, learner.user_id)).values())
    assert await rows_naming(progress_server, bystander.user_id) == bystander_before


async def test_every_table_with_a_user_column_is_covered(progress_server: RunningServer) -> None:
    async with progress_server.server.database.session() as session:
        tables = set(
            (
                await session.execute(
                    text(
                        "SELECT table_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND column_name = ANY(:names)"
                    ),
                    {"names": list(USER_COLUMNS)},
                )
            ).scalars()
        )
    covered = " ".join(statement for _, statement in USER_DELETIONS)
    assert tables, "the schema has user columns"
    assert {table for table in tables if f" {table} " not in covered} == set()


async def test_only_services_delete_someone_else(progress_server: RunningServer) -> None:
    student, other = progress_server.client(), progress_server.client()
    await other.analytics.RecordInteraction(pb.RecordInteractionRequest(trigger="x"))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await student.analytics.DeleteUserData(pb.DeleteUserDataRequest(user=f"users/{other.user_id}"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    service = progress_server.client("privacy-service", role="service")
    deleted = (await service.analytics.DeleteUserData(pb.DeleteUserDataRequest(user=f"users/{other.user_id}"))).deleted
    assert (deleted["interactions"], deleted["users"]) == (1, 1)
