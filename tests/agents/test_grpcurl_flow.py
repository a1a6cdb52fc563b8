"""With no model key, on the demo course, through grpcurl (an independent client using reflection): a hint with
a citation, a five-question quiz, an answer scored, a reflection, and a learning path into real videos."""

from __future__ import annotations

import json
from typing import Any

from server.demo import load_demo_course
from tests.conftest import RunningServer
from tests.support.clients import token_for
from tests.test_grpcurl import grpcurl


async def _call(running: RunningServer, token: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    code, out, err = await grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        json.dumps(body),
        running.target,
        f"tutorstream.v1.AgentService/{method}",
    )
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


async def test_the_agents_end_to_end_through_grpcurl(offline_server: RunningServer) -> None:
    token = token_for(offline_server.settings, "grpcurl-student")
    context = {"course_id": "webdev-101", "video_id": "async-javascript", "position_seconds": 150}

    hint = await _call(
        offline_server, token, "GetHint", {"learning_context": context, "struggle": "what does then return?"}
    )
    assert hint["hint"] and hint["citation"]["video_id"] == "async-javascript"
    assert 0 < hint["confidence"] < 1 and hint["model"] == "offline-extractive"

    quiz = (
        await _call(
            offline_server,
            token,
            "GenerateQuiz",
            {
                "video_id": "async-javascript",
                "range": {"start_seconds": 0, "end_seconds": 240},
                "difficulty": "DIFFICULTY_MEDIUM",
                "question_count": 5,
            },
        )
    )["quiz"]
    assert len(quiz["questions"]) == 5
    assert all(len(q["options"]) == 4 and "correct_index" not in q for q in quiz["questions"])

    answer = await _call(
        offline_server,
        token,
        "SubmitQuizAnswer",
        {
            "quiz": quiz["name"],
            "question_id": quiz["questions"][0]["question_id"],
            "selected_index": 2,
            "attempt_id": "grpcurl-1",
        },
    )
    # proto3 JSON omits false and zero: scored correct exactly when the chosen option is the correct one.
    assert answer.get("correct", False) == (answer.get("correct_index", 0) == 2)
    assert answer["explanation"] and answer["citation"]["chunk_id"] and answer["mastery"]

    reflection = await _call(offline_server, token, "GenerateReflection", {"learning_context": context})
    assert reflection["prompt"] and len(reflection["guiding_questions"]) == 3

    path = await _call(
        offline_server, token, "GenerateLearningPath", {"course_id": "webdev-101", "struggling_concepts": ["await"]}
    )
    videos = {video.video_id for video in load_demo_course().videos}
    assert path["recommendations"]
    for item in path["recommendations"]:
        assert item["video_id"] in videos
        assert item["range"]["end_seconds"] > item["range"].get("start_seconds", 0)
        assert item["estimated_minutes"] > 0 and item["title"]
