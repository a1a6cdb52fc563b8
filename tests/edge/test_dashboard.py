"""The instructor's course dashboard in Debian's Chromium (playwright-core), loaded through Envoy from the
seeded edge server with the demo course's synthetic activity.

What the page drew is compared with what the server says over the native gRPC API at the same moment: every
chart's data (read back from the Chart.js chart) and painted pixels, the question groups, the flagged
messages and the experiment arms with their confidence intervals. A screenshot of the whole page lands in
test-artifacts/dashboard.png; a student's token gets the refusal shown, not an empty page.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from tutorstream.v1 import analytics_service_pb2 as analytics_pb
from tutorstream.v1 import chat_service_pb2 as chat_pb

from server.demo.activity import EXPERIMENT_ID, seed_demo_activity
from tests.edge.conftest import Edge
from tests.edge.support import ROOT, run_node
from tests.support.clients import token_for

SCRIPT = ROOT / "tests" / "edge" / "browser" / "dashboard.mjs"
ARTIFACTS = ROOT / "test-artifacts"
COURSE = "webdev-101"
VIDEO = "flexbox-layout"


async def drive(edge: Edge, tmp_path: Path, step: str, token: str, screenshot: str) -> dict[str, Any]:
    env = {
        "BASE_URL": edge.base_url,
        "TOKEN": token,
        "COURSE_ID": COURSE,
        "VIDEO_ID": VIDEO,
        "USER_DATA_DIR": str(tmp_path / "chromium-profile"),
        "SCREENSHOT": str(ARTIFACTS / screenshot),
    }
    return await run_node(SCRIPT, step, env=env, limit_seconds=120)


def dataset(chart: dict[str, Any], label: str) -> list[Any]:
    return next(item["data"] for item in chart["datasets"] if item["label"] == label)


async def test_dashboard_draws_the_courses_activity(edge: Edge, tmp_path: Path) -> None:
    await seed_demo_activity(edge.server.server.database)
    instructor = edge.server.client("dashboard-teacher", role="instructor", courses=[COURSE])
    report = await instructor.analytics.GetVideoAnalytics(analytics_pb.GetVideoAnalyticsRequest(video_id=VIDEO))
    questions = (
        await instructor.chat.ListSegmentQuestions(
            chat_pb.ListSegmentQuestionsRequest(video_id=VIDEO, scope=chat_pb.QUESTION_SCOPE_COURSE, max_questions=100)
        )
    ).questions
    flags = (
        await instructor.analytics.ListFlaggedInteractions(
            analytics_pb.ListFlaggedInteractionsRequest(parent=f"courses/{COURSE}")
        )
    ).flagged_interactions
    experiment = f"courses/{COURSE}/experiments/{EXPERIMENT_ID}"
    outcomes = (
        await instructor.analytics.GetExperimentReport(analytics_pb.GetExperimentReportRequest(name=experiment))
    ).outcomes

    token = token_for(edge.server.settings, "dashboard-teacher", "instructor", None, [COURSE])
    result = await drive(edge, tmp_path, "open", token, "dashboard.png")
    page = result["open"]
    assert page["who"] == "dashboard-teacher · instructor"
    assert (page["course"], page["video"], page["title"]) == (COURSE, VIDEO, "CSS Flexbox Layout")
    assert "token" not in page["hash"]
    assert page["bannerHidden"] is True
    assert page["summary"].startswith(f"{report.viewers} viewers · ")
    assert page["cues"] > 20

    # The heatmap and the stacked signals: one bar per segment, the server's numbers, painted.
    heat, signals = page["charts"]["heat-chart"], page["charts"]["signals-chart"]
    segments = report.segments
    assert len(heat["chart"]["labels"]) == len(segments) == 17
    assert heat["chart"]["datasets"][0]["data"] == pytest.approx([segment.score for segment in segments])
    assert dataset(signals["chart"], "rewatches") == [segment.rewatches for segment in segments]
    assert dataset(signals["chart"], "pauses") == [segment.pauses for segment in segments]
    assert dataset(signals["chart"], "hints") == [segment.hints for segment in segments]
    assert sum(dataset(signals["chart"], "rewatches")) > 0 and max(heat["chart"]["datasets"][0]["data"]) > 1.5
    assert heat["painted"] > 2000 and signals["painted"] > 2000

    ratings = page["charts"]["ratings-chart"]
    assert ratings["chart"]["datasets"][0]["data"] == [rating.count for rating in report.ratings]
    assert sum(ratings["chart"]["datasets"][0]["data"]) > 0 and ratings["painted"] > 1000
    # The synthetic activity brings chat and hints; other tests on the shared course may add more agents.
    assert page["agents"] == len(report.agents) >= 2

    # Questions grouped by the segment their answers cited, the most asked first in each.
    shown = [
        (group["segment"], question["text"], question["count"])
        for group in page["questionGroups"]
        for question in group["questions"]
    ]
    assert shown, page["questionGroups"]
    width = segments[0].range.end_seconds
    expected = {(int(question.start_seconds // width), question.text, question.count) for question in questions}
    assert set(shown) <= expected
    assert [group["segment"] for group in page["questionGroups"]] == sorted({segment for segment, _, _ in expected})
    for group in page["questionGroups"]:
        counts = [question["count"] for question in group["questions"]]
        assert counts == sorted(counts, reverse=True) and 1 <= len(counts) <= 3

    assert [(flag["category"], flag["excerpt"]) for flag in page["flags"]] == [
        (flag.category, flag.excerpt) for flag in flags
    ]
    assert any("damn centering" in flag["excerpt"] for flag in page["flags"])

    # Each outcome's chart: the arms' 95 % intervals as floating bars around their estimates.
    charts = {chart["metric"]: chart for chart in page["arms"] if chart["experiment"] == experiment}
    assert set(charts) == {outcome.metric for outcome in outcomes}
    completion = next(outcome for outcome in outcomes if outcome.metric == "video_completion")
    drawn = charts["video_completion"]
    assert drawn["chart"]["labels"] == [f"{arm.arm} (n={arm.n})" for arm in completion.arms]
    assert dataset(drawn["chart"], "95 % confidence interval") == [
        pytest.approx([arm.ci_low, arm.ci_high]) for arm in completion.arms
    ]
    assert dataset(drawn["chart"], "estimate") == pytest.approx([arm.estimate for arm in completion.arms])
    assert drawn["painted"] > 1000
    # The synthetic students answered no quiz: no estimate, nothing drawn for it rather than a made-up zero.
    correct = next(outcome for outcome in outcomes if outcome.metric == "first_attempt_correct")
    assert not any(math.isfinite(arm.estimate) for arm in correct.arms)
    assert dataset(charts["first_attempt_correct"]["chart"], "estimate") == [None, None]
    cards = {card["name"]: card for card in page["experiments"]}
    assert any("holdout − interventions" in line for line in cards[experiment]["comparisons"])
    assert result["consoleErrors"] == []
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 50_000


async def test_a_students_token_is_refused_visibly(edge: Edge, tmp_path: Path) -> None:
    result = await drive(edge, tmp_path, "denied", edge.token("dashboard-student"), "dashboard-denied.png")
    denied = result["denied"]
    # The sections load in parallel: the banner explains with whichever refusal came first.
    assert denied["code"] == "PERMISSION_DENIED"
    assert denied["reason"] in {"INSTRUCTORS_ONLY", "INSTRUCTOR_ROLE_REQUIRED"}
    assert denied["text"].startswith("Not allowed: ")
    assert "instructor" in denied["text"]
    # Lecture analytics, questions, flagged messages and experiments each say why they are empty.
    assert denied["sectionErrors"] == ["PERMISSION_DENIED"] * 4
    assert denied["toasts"] >= 1
