"""RecordInteraction, RateInteraction and GetUserAnalytics through the real RPCs."""

from __future__ import annotations

import grpc
import pytest
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import analytics_service_pb2 as pb
from tutorstream.v1 import common_pb2

from tests.analytics.conftest import COURSE_ID, VIDEO_ID, run_student
from tests.conftest import RunningServer
from tests.progress.conftest import new_watch_session, played_through, rewatch_script
from tests.support.clients import Client, error_details


async def record(client: Client, trigger: str = "quick_action:explain") -> pb.Interaction:
    response = await client.analytics.RecordInteraction(
        pb.RecordInteractionRequest(
            trigger=trigger,
            learning_context=common_pb2.LearningContext(course_id=COURSE_ID, video_id=VIDEO_ID, position_seconds=42.0),
            attributes={"button": "explain"},
        )
    )
    return response.interaction


async def test_client_interactions_are_recorded_and_rated_once(progress_server: RunningServer) -> None:
    client = progress_server.client()
    interaction = await record(client)
    assert interaction.agent_type == pb.AGENT_TYPE_CLIENT
    assert interaction.name == f"interactions/{interaction.interaction_id}"
    assert (interaction.trigger, interaction.video_id, interaction.position_seconds) == (
        "quick_action:explain",
        VIDEO_ID,
        42.0,
    )
    assert interaction.rating == 0 and interaction.create_time.seconds > 0

    rated = await client.analytics.RateInteraction(
        pb.RateInteractionRequest(name=interaction.name, rating=4, reason="clear")
    )
    assert (rated.interaction.rating, rated.interaction.rating_reason) == (4, "clear")
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await client.analytics.RateInteraction(pb.RateInteractionRequest(name=interaction.name, rating=1))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(again.value)["ErrorInfo"].reason == "ALREADY_RATED"


async def test_only_the_owner_rates_and_ratings_are_1_to_5(progress_server: RunningServer) -> None:
    owner, other = progress_server.client(), progress_server.client()
    interaction = await record(owner)
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await other.analytics.RateInteraction(pb.RateInteractionRequest(name=interaction.name, rating=9))
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND  # authorization before validation
    for rating in (0, 6):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await owner.analytics.RateInteraction(pb.RateInteractionRequest(name=interaction.name, rating=rating))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_details(bad.value)["BadRequest"].field_violations[0].field == "rating"
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await owner.analytics.RateInteraction(pb.RateInteractionRequest(name="interactions/nope", rating=3))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await owner.analytics.RateInteraction(pb.RateInteractionRequest(name="sessions/x", rating=3))
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("trigger", "attributes", "field"),
    [
        ("", {}, "trigger"),
        ("x" * 101, {}, "trigger"),
        ("ok", {f"k{i}": "v" for i in range(21)}, "attributes"),
        ("ok", {"k": "v" * 201}, "attributes"),
    ],
)
async def test_bad_interactions(
    progress_server: RunningServer, trigger: str, attributes: dict[str, str], field: str
) -> None:
    client = progress_server.client()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await client.analytics.RecordInteraction(pb.RecordInteractionRequest(trigger=trigger, attributes=attributes))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(error.value)["BadRequest"].field_violations[0].field == field


async def test_user_analytics_sum_up_the_learners_activity(progress_server: RunningServer) -> None:
    client = progress_server.client()
    rated = await record(client)
    await client.analytics.RateInteraction(pb.RateInteractionRequest(name=rated.name, rating=5))
    await record(client, "quick_action:summarize")
    hint = await client.agents.GetHint(
        agent_pb.GetHintRequest(
            learning_context=common_pb2.LearningContext(course_id=COURSE_ID, video_id=VIDEO_ID, position_seconds=60.0)
        )
    )
    # Watching: a re-watch (one hint intervention, accepted) plus plain playback in another session.
    await run_student(
        client, new_watch_session(), rewatch_script(), answer=agent_pb.VIDEO_EVENT_TYPE_INTERVENTION_ACCEPTED
    )
    await run_student(client, new_watch_session(), played_through(0.0, 90.0, 0.0))
    quiz = (
        await client.agents.GenerateQuiz(
            agent_pb.GenerateQuizRequest(
                video_id=VIDEO_ID, range=common_pb2.TimeRange(start_seconds=0, end_seconds=120), question_count=2
            )
        )
    ).quiz
    results = [
        await client.agents.SubmitQuizAnswer(
            agent_pb.SubmitQuizAnswerRequest(
                quiz=quiz.name, question_id=question.question_id, selected_index=0, attempt_id=f"a-{index}"
            )
        )
        for index, question in enumerate(quiz.questions)
    ]
    await progress_server.server.runtime.progress.hub.flush()

    report = await client.analytics.GetUserAnalytics(pb.GetUserAnalyticsRequest(user="users/me"))
    by_agent = {stat.agent_type: stat for stat in report.agents}
    assert by_agent[pb.AGENT_TYPE_CLIENT].count == 2
    assert by_agent[pb.AGENT_TYPE_CLIENT].rating_count == 1
    assert by_agent[pb.AGENT_TYPE_CLIENT].average_rating == 5.0
    assert by_agent[pb.AGENT_TYPE_HINT].count >= 1  # the hint asked for (and the intervention's, if any)
    assert by_agent[pb.AGENT_TYPE_QUIZ].count >= 1
    assert report.watch_seconds == pytest.approx(130.0 + 40.0 + 90.0)
    assert report.quiz_answers == len(results)
    assert report.quiz_accuracy == pytest.approx(sum(r.correct for r in results) / len(results))
    assert {m.concept for m in report.mastery} >= {m.concept for r in results for m in r.mastery}
    assert report.usage.total_tokens == report.usage.prompt_tokens + report.usage.completion_tokens
    assert (report.interventions_received, report.interventions_accepted) == (1, 1)
    assert hint.interaction_id

    by_course = await client.analytics.GetUserAnalytics(
        pb.GetUserAnalyticsRequest(user="users/me", course_id="another-course")
    )
    assert by_course.watch_seconds == 0 and by_course.quiz_answers == 0


async def test_user_analytics_of_someone_else(progress_server: RunningServer) -> None:
    student, other = progress_server.client(), progress_server.client()
    await record(other)
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await student.analytics.GetUserAnalytics(pb.GetUserAnalyticsRequest(user=f"users/{other.user_id}"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    service = progress_server.client("analytics-service", role="service")
    report = await service.analytics.GetUserAnalytics(pb.GetUserAnalyticsRequest(user=f"users/{other.user_id}"))
    assert [stat.count for stat in report.agents] == [1]
