"""Experiments through real clients: an instructor creates and starts a holdout experiment, students are
assigned on first exposure (and stay in their arm), the holdout arm gets no proactive interventions while
manual quizzes still work, and the report computes the known effect of a scripted cohort."""

from __future__ import annotations

import asyncio
import math

import grpc
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import analytics_service_pb2 as pb
from tutorstream.v1 import common_pb2

from tests.agents.conftest import answer_quiz, generate_quiz
from tests.analytics.conftest import run_student
from tests.conftest import RunningServer
from tests.progress.conftest import COURSE_ID, VIDEO_ID, event, new_watch_session, rewatch_script
from tests.support.clients import Client, error_details
from tests.support.waiting import wait_until
from tests.transcripts.test_service_ingest import rpc_error

COURSE = f"courses/{COURSE_ID}"


def holdout_experiment(**fields: object) -> pb.Experiment:
    values: dict[str, object] = {
        "display_name": "Do proactive hints help?",
        "lever": pb.EXPERIMENT_LEVER_INTERVENTIONS,
        "arms": [pb.ExperimentArm(name="holdout", weight=1), pb.ExperimentArm(name="interventions", weight=1)],
        "video_ids": [VIDEO_ID],
    }
    values.update(fields)
    return pb.Experiment(**values)  # type: ignore[arg-type]


async def create(client: Client, experiment_id: str, experiment: pb.Experiment, parent: str = COURSE) -> pb.Experiment:
    response = await client.analytics.CreateExperiment(
        pb.CreateExperimentRequest(parent=parent, experiment_id=experiment_id, experiment=experiment)
    )
    return response.experiment


async def arm_of(server: RunningServer, experiment_id: str, user_id: str) -> tuple[str, object] | None:
    async with server.server.database.session() as session:
        row = (
            await session.execute(
                text(
                    "SELECT arm, exposure_time FROM experiment_exposures "
                    "WHERE course_id = :course AND experiment_id = :experiment AND user_id = :user"
                ),
                {"course": COURSE_ID, "experiment": experiment_id, "user": user_id},
            )
        ).one_or_none()
    return None if row is None else (row.arm, row.exposure_time)


def field_of(error: grpc.aio.AioRpcError) -> str:
    return str(error_details(error)["BadRequest"].field_violations[0].field)


async def test_bad_experiments_and_callers_get_precise_statuses(progress_server: RunningServer) -> None:
    teacher = progress_server.client("exp-teacher", role="instructor", courses=[COURSE_ID])
    other = progress_server.client("exp-other", role="instructor")
    student = progress_server.client("exp-student")
    experiment = holdout_experiment()

    for bad, field in (
        (holdout_experiment(lever=pb.EXPERIMENT_LEVER_UNSPECIFIED), "experiment.lever"),
        (holdout_experiment(arms=[pb.ExperimentArm(name="holdout", weight=1)]), "experiment.arms"),
        (
            holdout_experiment(arms=[pb.ExperimentArm(name="holdout", weight=1), pb.ExperimentArm(name="b", weight=1)]),
            "experiment.arms[1].name",
        ),
        (
            holdout_experiment(
                arms=[pb.ExperimentArm(name="holdout", weight=0), pb.ExperimentArm(name="interventions", weight=1)]
            ),
            "experiment.arms[0].weight",
        ),
        (
            holdout_experiment(
                arms=[pb.ExperimentArm(name="holdout", weight=1), pb.ExperimentArm(name="interventions", weight=-2)]
            ),
            "experiment.arms[1].weight",
        ),
        (
            holdout_experiment(
                arms=[
                    pb.ExperimentArm(name="holdout", weight=1),
                    pb.ExperimentArm(name="interventions", weight=math.nan),
                ]
            ),
            "experiment.arms[1].weight",
        ),
        (holdout_experiment(video_ids=[VIDEO_ID, "no-such-video" * 40]), "experiment.video_ids[1]"),
        (holdout_experiment(display_name="x" * 201), "experiment.display_name"),
    ):
        error = await rpc_error(create(teacher, "bad-one", bad))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert field_of(error) == field
        assert len(error.details() or "") < 400
    assert field_of(await rpc_error(create(teacher, "not an id", experiment))) == "experiment_id"

    unknown = await rpc_error(create(teacher, "exp-1", experiment, parent="courses/no-such-course"))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    by_student = await rpc_error(create(student, "exp-1", experiment))
    assert (by_student.code(), error_details(by_student)["ErrorInfo"].reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "INSTRUCTOR_ROLE_REQUIRED",
    )
    by_other = await rpc_error(create(other, "exp-1", experiment))
    assert (by_other.code(), error_details(by_other)["ErrorInfo"].reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "COURSE_NOT_TAUGHT",
    )

    created = await create(teacher, "exp-1", experiment)
    assert (created.name, created.state, created.created_by) == (
        f"{COURSE}/experiments/exp-1",
        pb.EXPERIMENT_STATE_DRAFT,
        "exp-teacher",
    )
    assert (await rpc_error(create(teacher, "exp-1", experiment))).code() == grpc.StatusCode.ALREADY_EXISTS
    name = pb.GetExperimentRequest(name=created.name)
    assert (await rpc_error(other.analytics.GetExperiment(name))).code() == grpc.StatusCode.NOT_FOUND
    assert (await rpc_error(student.analytics.GetExperiment(name))).code() == grpc.StatusCode.PERMISSION_DENIED
    not_started = await rpc_error(
        teacher.analytics.GetExperimentReport(pb.GetExperimentReportRequest(name=created.name))
    )
    assert error_details(not_started)["ErrorInfo"].reason == "EXPERIMENT_NOT_STARTED"
    not_running = await rpc_error(teacher.analytics.StopExperiment(pb.StopExperimentRequest(name=created.name)))
    assert not_running.code() == grpc.StatusCode.FAILED_PRECONDITION

    # One running experiment per lever and course.
    await create(teacher, "exp-2", experiment)
    await teacher.analytics.StartExperiment(pb.StartExperimentRequest(name=created.name))
    conflict = await rpc_error(
        teacher.analytics.StartExperiment(pb.StartExperimentRequest(name=f"{COURSE}/experiments/exp-2"))
    )
    assert (conflict.code(), error_details(conflict)["ErrorInfo"].reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "EXPERIMENT_CONFLICT",
    )
    again = await rpc_error(teacher.analytics.StartExperiment(pb.StartExperimentRequest(name=created.name)))
    assert error_details(again)["ErrorInfo"].reason == "EXPERIMENT_NOT_DRAFT"

    # A running experiment with nobody exposed yet reports "not enough data", no verdict.
    report = await teacher.analytics.GetExperimentReport(pb.GetExperimentReportRequest(name=created.name))
    assert report.notes[0] == "not enough data: no student has been exposed yet"
    assert all(not comparison.significant for outcome in report.outcomes for comparison in outcome.comparisons)

    listed = await teacher.analytics.ListExperiments(pb.ListExperimentsRequest(parent=COURSE, page_size=1))
    assert [item.name for item in listed.experiments] == [f"{COURSE}/experiments/exp-2"]
    rest = await teacher.analytics.ListExperiments(
        pb.ListExperimentsRequest(parent=COURSE, page_token=listed.next_page_token)
    )
    assert [item.name for item in rest.experiments] == [created.name] and not rest.next_page_token


async def test_holdout_students_get_no_proactive_interventions_and_keep_their_arm(
    progress_server: RunningServer,
) -> None:
    teacher = progress_server.client("holdout-teacher", role="instructor", courses=[COURSE_ID])
    created = await create(teacher, "holdout", holdout_experiment())
    await teacher.analytics.StartExperiment(pb.StartExperimentRequest(name=created.name))

    students = [progress_server.client(f"holdout-student-{index}") for index in range(12)]
    seen = await asyncio.gather(*(run_student(student, new_watch_session(), rewatch_script()) for student in students))
    arms = {}
    for student, interventions in zip(students, seen, strict=True):
        exposure = await arm_of(progress_server, "holdout", student.user_id)
        assert exposure is not None
        arms[student.user_id] = exposure
        if exposure[0] == "holdout":
            assert interventions == [], student.user_id
        else:
            assert [item.type for item in interventions] == [common_pb2.INTERVENTION_TYPE_HINT], student.user_id
    counts = (await teacher.analytics.GetExperiment(pb.GetExperimentRequest(name=created.name))).experiment.exposures
    assert dict(counts) == {
        arm: sum(1 for exposure in arms.values() if exposure[0] == arm) for arm in ("holdout", "interventions")
    }
    assert sum(counts.values()) == len(students)

    # A holdout student still gets the quiz they ask for, and a second session keeps their first exposure.
    held = next(student for student in students if arms[student.user_id][0] == "holdout")
    assert (await generate_quiz(held, VIDEO_ID, 0, 60, count=1)).quiz.questions
    await run_student(held, new_watch_session(), rewatch_script())
    assert await arm_of(progress_server, "holdout", held.user_id) == arms[held.user_id]

    # After the stop nobody is held out.
    await teacher.analytics.StopExperiment(pb.StopExperimentRequest(name=created.name))
    after = await run_student(held, new_watch_session(), rewatch_script())
    assert [item.type for item in after] == [common_pb2.INTERVENTION_TYPE_HINT]


async def test_the_report_measures_a_scripted_cohort(progress_server: RunningServer) -> None:
    """Students in `interventions` answer every question right, `holdout` students half of them: the report
    must find exactly those rates, a difference of one half inside its interval, and call it significant."""
    teacher = progress_server.client("report-teacher", role="instructor", courses=[COURSE_ID])
    created = await create(teacher, "report", holdout_experiment())
    await teacher.analytics.StartExperiment(pb.StartExperimentRequest(name=created.name))
    answered: dict[str, list[bool]] = {"holdout": [], "interventions": []}
    students: dict[str, int] = {"holdout": 0, "interventions": 0}
    for index in range(24):
        student = progress_server.client(f"report-student-{index}")
        await student.agents.PublishVideoEvents(
            agent_pb.PublishVideoEventsRequest(
                watch_session_id=new_watch_session(),
                video_id=VIDEO_ID,
                course_id=COURSE_ID,
                events=[event(agent_pb.VIDEO_EVENT_TYPE_PLAYED, 0.0, 0.0)],
            )
        )
        exposure = await arm_of(progress_server, "report", student.user_id)
        assert exposure is not None
        arm = str(exposure[0])
        students[arm] += 1
        if arm == "interventions":  # two rewatches each after the exposure; the holdout arm rewatches nothing
            await student.agents.PublishVideoEvents(
                agent_pb.PublishVideoEventsRequest(
                    watch_session_id=new_watch_session(),
                    video_id=VIDEO_ID,
                    course_id=COURSE_ID,
                    events=rewatch_script(),
                )
            )
        quiz = (await generate_quiz(student, VIDEO_ID, 0, 240, count=4, difficulty=common_pb2.DIFFICULTY_EASY)).quiz
        answered[arm] += await answer_quiz(
            progress_server, student, quiz, lambda number, arm=arm: arm == "interventions" or number % 2 == 0
        )

    async def rewatches_stored() -> bool:  # player events are written in batches, after the call returns
        async with progress_server.server.database.session() as session:
            query = "SELECT count(*) FROM video_events WHERE user_id LIKE 'report-student-%' AND type = 'seeked'"
            return int((await session.execute(text(query))).scalar_one()) == 2 * students["interventions"]

    assert await wait_until(rewatches_stored)
    report = await teacher.analytics.GetExperimentReport(pb.GetExperimentReportRequest(name=created.name))
    outcomes = {outcome.metric: outcome for outcome in report.outcomes}
    assert list(outcomes) == [
        "first_attempt_correct",
        "mastery_gain",
        "video_completion",
        "rewatches",
        "ai_interactions",
        "ai_cost_usd",
    ]
    correctness = outcomes["first_attempt_correct"]
    assert correctness.kind == pb.OUTCOME_KIND_PROPORTION
    by_arm = {arm.arm: arm for arm in correctness.arms}
    for arm, rights in answered.items():
        assert by_arm[arm].n == len(rights)
        assert math.isclose(by_arm[arm].estimate, sum(rights) / len(rights))
        assert by_arm[arm].ci_low <= by_arm[arm].estimate <= by_arm[arm].ci_high
    (comparison,) = correctness.comparisons
    assert (comparison.arm, comparison.control_arm) == ("interventions", "holdout")
    difference = by_arm["interventions"].estimate - by_arm["holdout"].estimate
    assert math.isclose(comparison.difference, difference)
    assert comparison.ci_low < difference < comparison.ci_high
    assert comparison.enough_data == (min(len(rights) for rights in answered.values()) >= report.minimum_sample)
    assert comparison.significant == (comparison.enough_data and comparison.p_value < 0.05)
    assert comparison.p_value < 0.01 and comparison.minimum_detectable_effect > 0, (comparison, students)
    # Mastery moves with the answers: right answers raise it more than half-right ones.
    gains = {arm.arm: arm for arm in outcomes["mastery_gain"].arms}
    assert all(0 < gains[arm].n <= students[arm] for arm in students), (gains, students)
    assert gains["interventions"].estimate > gains["holdout"].estimate, gains
    assert {arm.arm: arm.n for arm in outcomes["ai_interactions"].arms} == students
    rewatches = {arm.arm: (arm.n, arm.estimate) for arm in outcomes["rewatches"].arms}
    assert rewatches == {"holdout": (students["holdout"], 0.0), "interventions": (students["interventions"], 2.0)}


async def test_the_hint_ladder_lever_gives_the_direct_arm_the_top_rung_at_once(
    progress_server: RunningServer,
) -> None:
    teacher = progress_server.client("ladder-teacher", role="instructor", courses=[COURSE_ID])
    experiment = holdout_experiment(
        display_name="Does the hint ladder help?",
        lever=pb.EXPERIMENT_LEVER_HINT_LADDER,
        arms=[pb.ExperimentArm(name="hint_ladder", weight=1), pb.ExperimentArm(name="direct_hint", weight=1)],
    )
    created = await create(teacher, "ladder", experiment)
    assert created.lever == pb.EXPERIMENT_LEVER_HINT_LADDER
    await teacher.analytics.StartExperiment(pb.StartExperimentRequest(name=created.name))

    levels: dict[str, list[int]] = {"hint_ladder": [], "direct_hint": []}
    for index in range(16):
        student = progress_server.client(f"ladder-student-{index}")
        hint = await student.agents.GetHint(
            agent_pb.GetHintRequest(
                learning_context=common_pb2.LearningContext(
                    course_id=COURSE_ID, video_id=VIDEO_ID, position_seconds=100.0
                )
            )
        )
        exposure = await arm_of(progress_server, "ladder", student.user_id)
        assert exposure is not None
        levels[str(exposure[0])].append(hint.level)
    assert levels["hint_ladder"] and set(levels["hint_ladder"]) == {1}, levels
    assert levels["direct_hint"] and set(levels["direct_hint"]) == {3}, levels
