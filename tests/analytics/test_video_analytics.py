"""GetVideoAnalytics on a synthetic cohort with a known hard stretch (2:45–3:20 of the flexbox video): every
student goes back over it twice and pauses in it; elsewhere they pause once each at scattered places."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import analytics_service_pb2 as pb
from tutorstream.v1 import common_pb2

from tests.agents.conftest import answer_quiz, generate_quiz
from tests.analytics.conftest import COURSE_ID, VIDEO_ID, run_student
from tests.conftest import RunningServer
from tests.progress.conftest import event, new_watch_session, played_through, seeked

COHORT = 10
HARD = (165.0, 200.0)


def student_script(index: int) -> list[agent_pb.VideoEvent]:
    scattered = 20.0 + 25.0 * (index % 5)  # one ordinary pause somewhere in the first two minutes
    events = played_through(0.0, scattered, 0.0)
    events.append(event(agent_pb.VIDEO_EVENT_TYPE_PAUSED, scattered, scattered))
    at = scattered + 5.0
    events += played_through(scattered, 200.0 - scattered, at)
    at += 200.0 - scattered
    events.append(seeked(200.0, 165.0, at + 1))
    events += played_through(165.0, 20.0, at + 2)
    events.append(event(agent_pb.VIDEO_EVENT_TYPE_PAUSED, 185.0, at + 23))
    events += played_through(185.0, 5.0, at + 30)
    events.append(event(agent_pb.VIDEO_EVENT_TYPE_PAUSED, 190.0, at + 36))
    events += played_through(190.0, 10.0, at + 40)
    events.append(seeked(200.0, 170.0, at + 51))
    events += played_through(170.0, 60.0, at + 52)
    return events


async def test_confusion_peaks_put_the_hard_stretch_first(progress_server: RunningServer) -> None:
    students = [progress_server.client() for _ in range(COHORT)]
    answers = [
        agent_pb.VIDEO_EVENT_TYPE_INTERVENTION_ACCEPTED if i < 6 else agent_pb.VIDEO_EVENT_TYPE_INTERVENTION_DISMISSED
        for i in range(COHORT)
    ]
    received = await asyncio.gather(
        *(
            run_student(client, new_watch_session(), student_script(i), answer=answers[i])
            for i, client in enumerate(students)
        )
    )
    assert all([i.type for i in got] == [common_pb2.INTERVENTION_TYPE_HINT] for got in received)
    await progress_server.server.runtime.progress.hub.flush()

    instructor = progress_server.client("cohort-instructor", role="instructor", courses=[COURSE_ID])
    report = await instructor.analytics.GetVideoAnalytics(pb.GetVideoAnalyticsRequest(video_id=VIDEO_ID))
    assert report.viewers == COHORT
    first = report.confusion_peaks[0]
    assert first.range.start_seconds <= HARD[0] and first.range.end_seconds >= HARD[1]
    assert first.range.end_seconds - first.range.start_seconds <= 90.0
    assert first.students == COHORT
    assert first.rewatches == 2 * COHORT and first.pauses == 2 * COHORT and first.hints >= COHORT
    assert first.score > 2.0
    assert all(first.score >= peak.score for peak in report.confusion_peaks)
    assert "flex" in first.transcript_text.lower()

    hints = next(stat for stat in report.interventions if stat.type == common_pb2.INTERVENTION_TYPE_HINT)
    assert (hints.delivered, hints.accepted, hints.dismissed) == (COHORT, 6, 4)
    assert hints.acceptance_rate == pytest.approx(0.6)
    assert {stat.type for stat in report.interventions} == {
        common_pb2.INTERVENTION_TYPE_HINT,
        common_pb2.INTERVENTION_TYPE_QUIZ,
        common_pb2.INTERVENTION_TYPE_REVIEW,
        common_pb2.INTERVENTION_TYPE_BREAK,
    }

    limited = await instructor.analytics.GetVideoAnalytics(pb.GetVideoAnalyticsRequest(video_id=VIDEO_ID, max_peaks=1))
    assert list(limited.confusion_peaks) == [first]

    # The heatmap: every 30 s segment of the 494 s video in order, the last one ending with the video; the hard
    # stretch's segments add up to the first peak, and every pause of the cohort is in some segment.
    segments = report.segments
    assert [(s.range.start_seconds, s.range.end_seconds) for s in segments] == [
        (30.0 * i, min(30.0 * (i + 1), 494.0)) for i in range(17)
    ]
    inside = [s for s in segments if first.range.start_seconds <= s.range.start_seconds < first.range.end_seconds]
    assert sum(s.rewatches for s in inside) == first.rewatches
    assert sum(s.pauses for s in inside) == first.pauses
    assert max(s.score for s in inside) == first.score
    assert sum(s.pauses for s in segments) == 3 * COHORT
    assert all(s.score < first.score for s in segments if s not in inside)


async def test_a_quiet_cohort_has_no_peaks(progress_server: RunningServer) -> None:
    students = [progress_server.client() for _ in range(3)]
    await asyncio.gather(
        *(run_student(client, new_watch_session(), played_through(0.0, 120.0, 0.0)) for client in students)
    )
    service = progress_server.client("quiet-service", role="service")
    report = await service.analytics.GetVideoAnalytics(pb.GetVideoAnalyticsRequest(video_id=VIDEO_ID))
    assert report.viewers == 3
    assert list(report.confusion_peaks) == []
    assert len(report.segments) == 17 and all(segment.score == 0 for segment in report.segments)


async def test_students_may_not_see_video_analytics(progress_server: RunningServer) -> None:
    student = progress_server.client()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await student.analytics.GetVideoAnalytics(pb.GetVideoAnalyticsRequest(video_id=VIDEO_ID))
    assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("video_id", "max_peaks", "code"),
    [
        ("", 0, grpc.StatusCode.INVALID_ARGUMENT),
        (VIDEO_ID, 51, grpc.StatusCode.INVALID_ARGUMENT),
        ("never-uploaded", 0, grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_bad_video_analytics_requests(
    progress_server: RunningServer, video_id: str, max_peaks: int, code: grpc.StatusCode
) -> None:
    instructor = progress_server.client("bad-request-instructor", role="instructor", courses=[COURSE_ID])
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await instructor.analytics.GetVideoAnalytics(
            pb.GetVideoAnalyticsRequest(video_id=video_id, max_peaks=max_peaks)
        )
    assert error.value.code() == code


async def test_help_outcome_compares_answers_after_asking_with_answers_without(progress_server: RunningServer) -> None:
    """Observational: one student asks for a hint where the quiz's stretch is and then answers right; another
    answers wrong without asking. The report splits their first answers accordingly and gives no verdict."""
    helped, unhelped = progress_server.client("help-asker"), progress_server.client("help-skipper")
    await helped.agents.GetHint(
        agent_pb.GetHintRequest(
            learning_context=common_pb2.LearningContext(course_id=COURSE_ID, video_id=VIDEO_ID, position_seconds=100.0)
        )
    )
    answered = {}
    for student, right in ((helped, True), (unhelped, False)):
        quiz = (await generate_quiz(student, VIDEO_ID, 90, 130, count=2)).quiz
        await answer_quiz(progress_server, student, quiz, lambda _, right=right: right)
        answered[student.user_id] = len(quiz.questions)
    instructor = progress_server.client("help-instructor", role="instructor", courses=[COURSE_ID])
    outcome = (
        await instructor.analytics.GetVideoAnalytics(pb.GetVideoAnalyticsRequest(video_id=VIDEO_ID))
    ).help_outcome
    assert outcome.description.startswith("Observational, not an experiment")
    groups = {group.arm: (group.n, group.estimate) for group in outcome.groups}
    assert groups == {
        "did_not_ask": (answered["help-skipper"], 0.0),
        "asked_for_help": (answered["help-asker"], 1.0),
    }
    assert outcome.comparison.difference == 1.0
    assert not outcome.comparison.enough_data and not outcome.comparison.significant


async def test_ratings_of_the_interactions_about_the_video(progress_server: RunningServer) -> None:
    students = [progress_server.client() for _ in range(3)]
    for student, stars in zip(students, (5, 5, 2), strict=True):
        recorded = await student.analytics.RecordInteraction(
            pb.RecordInteractionRequest(
                trigger="quick_action:explain",
                learning_context=common_pb2.LearningContext(course_id=COURSE_ID, video_id=VIDEO_ID),
            )
        )
        await student.analytics.RateInteraction(pb.RateInteractionRequest(name=recorded.interaction.name, rating=stars))
    await students[0].analytics.RecordInteraction(
        pb.RecordInteractionRequest(
            trigger="quick_action:summarize", learning_context=common_pb2.LearningContext(video_id=VIDEO_ID)
        )
    )
    await students[0].analytics.RecordInteraction(
        pb.RecordInteractionRequest(trigger="quick_action:explain", learning_context=common_pb2.LearningContext())
    )
    instructor = progress_server.client("ratings-instructor", role="instructor", courses=[COURSE_ID])
    report = await instructor.analytics.GetVideoAnalytics(pb.GetVideoAnalyticsRequest(video_id=VIDEO_ID))
    assert [(agent.agent_type, agent.count, agent.rating_count) for agent in report.agents] == [
        (pb.AGENT_TYPE_CLIENT, 4, 3)
    ]
    assert report.agents[0].average_rating == pytest.approx(4.0)
    assert [(rating.rating, rating.count) for rating in report.ratings] == [(1, 0), (2, 1), (3, 0), (4, 0), (5, 2)]
