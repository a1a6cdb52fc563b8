"""The demo course's synthetic activity, written once, seen through the instructor's RPCs as the dashboard
reads them."""

from __future__ import annotations

import math

from sqlalchemy import func, select
from tutorstream.v1 import analytics_service_pb2 as analytics_pb
from tutorstream.v1 import chat_service_pb2 as chat_pb

from server.core.models import User
from server.demo import load_demo_course
from server.demo.activity import EXPERIMENT_ID, HARD_STRETCHES, STUDENTS, seed_demo_activity
from server.progress.models import VideoEventRow
from tests.conftest import RunningServer

VIDEO = "flexbox-layout"


async def test_synthetic_activity_is_written_once_and_fills_the_dashboard(demo_server: RunningServer) -> None:
    database = demo_server.server.database
    assert await seed_demo_activity(database) is True
    async with database.session() as session:
        users = (await session.execute(select(User.id).where(User.id.startswith("synthetic-")))).scalars().all()
        events = (await session.execute(select(func.count()).select_from(VideoEventRow))).scalar_one()
    assert len(users) == STUDENTS
    assert await seed_demo_activity(database) is False
    async with database.session() as session:
        assert (await session.execute(select(func.count()).select_from(VideoEventRow))).scalar_one() == events

    course = load_demo_course().course_id
    instructor = demo_server.client("activity-teacher", role="instructor", courses=[course])

    report = await instructor.analytics.GetVideoAnalytics(analytics_pb.GetVideoAnalyticsRequest(video_id=VIDEO))
    assert report.viewers == STUDENTS
    hard = HARD_STRETCHES[VIDEO]
    top = report.confusion_peaks[0]
    assert any(top.range.start_seconds < s.end and top.range.end_seconds > s.start for s in hard), top
    assert sum(segment.rewatches for segment in report.segments) > STUDENTS
    assert {agent.agent_type for agent in report.agents} == {analytics_pb.AGENT_TYPE_CHAT, analytics_pb.AGENT_TYPE_HINT}
    assert sum(rating.count for rating in report.ratings) > 10

    questions = (
        await instructor.chat.ListSegmentQuestions(
            chat_pb.ListSegmentQuestionsRequest(video_id=VIDEO, scope=chat_pb.QUESTION_SCOPE_COURSE, max_questions=100)
        )
    ).questions
    asked = {question for stretch in hard for question in stretch.questions}
    assert {question.text for question in questions} <= asked
    assert questions[0].count > 1 and questions[0].students == questions[0].count

    flagged = (
        await instructor.analytics.ListFlaggedInteractions(
            analytics_pb.ListFlaggedInteractionsRequest(parent=f"courses/{course}")
        )
    ).flagged_interactions
    assert sorted((flag.video_id, flag.category) for flag in flagged) == [
        ("async-javascript", "profanity"),
        ("flexbox-layout", "profanity"),
    ]
    assert all(flag.user_id.startswith("synthetic-student-") for flag in flagged)

    experiment = f"courses/{course}/experiments/{EXPERIMENT_ID}"
    listed = await instructor.analytics.ListExperiments(analytics_pb.ListExperimentsRequest(parent=f"courses/{course}"))
    assert [item.name for item in listed.experiments] == [experiment]
    result = await instructor.analytics.GetExperimentReport(analytics_pb.GetExperimentReportRequest(name=experiment))
    assert result.experiment.state == analytics_pb.EXPERIMENT_STATE_STOPPED
    assert dict(result.experiment.exposures) == {"interventions": STUDENTS // 2, "holdout": STUDENTS // 2}
    completion = next(outcome for outcome in result.outcomes if outcome.metric == "video_completion")
    assert [(arm.arm, arm.n) for arm in completion.arms] == [
        ("interventions", STUDENTS // 2),
        ("holdout", STUDENTS // 2),
    ]
    assert all(arm.ci_low <= arm.estimate <= arm.ci_high for arm in completion.arms)
    assert completion.comparisons[0].enough_data and math.isfinite(completion.comparisons[0].p_value)
