"""SubmitQuizAnswer: scoring, idempotent attempts, mastery moving the right way, and quizzes that belong to
another student answering exactly like missing ones."""

from __future__ import annotations

import uuid

import grpc
import pytest
from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as pb

from server.agents.mastery import P_INIT
from tests.agents.conftest import answer_key, generate_quiz
from tests.conftest import RunningServer
from tests.support.clients import Client, error_details


async def _submit(client: Client, quiz: str, question_id: str, index: int, attempt: str) -> pb.SubmitQuizAnswerResponse:
    return await client.agents.SubmitQuizAnswer(
        pb.SubmitQuizAnswerRequest(quiz=quiz, question_id=question_id, selected_index=index, attempt_id=attempt)
    )


async def _mastery_rows(running: RunningServer, user_id: str) -> dict[str, tuple[float, int, int]]:
    async with running.server.database.session() as session:
        rows = await session.execute(
            text("SELECT concept, probability, attempts, correct FROM concept_mastery WHERE user_id = :user"),
            {"user": user_id},
        )
        return {row.concept: (row.probability, row.attempts, row.correct) for row in rows}


async def test_answers_are_scored_with_explanation_citation_and_mastery(offline_server: RunningServer) -> None:
    client = offline_server.client("learner")
    quiz = (await generate_quiz(client, "async-javascript", 0, 240, count=4)).quiz
    key = await answer_key(offline_server, quiz.quiz_id)
    right, wrong = quiz.questions[0], quiz.questions[1]

    correct = await _submit(client, quiz.name, right.question_id, key[right.question_id]["correct_index"], "a-1")
    assert correct.correct and correct.attempt_id == "a-1"
    assert correct.correct_index == key[right.question_id]["correct_index"]
    assert correct.explanation == key[right.question_id]["explanation"]
    assert correct.citation.chunk_id == key[right.question_id]["chunk_id"]
    assert correct.citation.video_id == "async-javascript"
    assert correct.citation.end_seconds > correct.citation.start_seconds
    assert [m.concept for m in correct.mastery] == list(right.concepts)
    assert all(m.probability > P_INIT and m.attempts == 1 and m.correct == 1 for m in correct.mastery)

    wrong_index = (key[wrong.question_id]["correct_index"] + 1) % 4
    incorrect = await _submit(client, quiz.name, wrong.question_id, wrong_index, "a-2")
    assert not incorrect.correct
    assert incorrect.correct_index == key[wrong.question_id]["correct_index"]
    assert all(m.probability < P_INIT and m.attempts == 1 and m.correct == 0 for m in incorrect.mastery)


async def test_mastery_rises_with_right_answers_and_falls_with_wrong_ones(offline_server: RunningServer) -> None:
    """Concepts answered across several quizzes: every right answer raises that concept's mastery, every
    wrong one lowers it, and a concept met again carries on from where it was."""
    client = offline_server.client("tracker")
    mastery_of: dict[str, list[float]] = {}
    plan = [True, True, False, True, False, False]
    ranges = [(0, 494), (0, 250), (100, 494), (0, 330), (150, 494), (0, 400)]
    for step, (should_be_right, (start, end)) in enumerate(zip(plan, ranges, strict=True)):
        quiz = (await generate_quiz(client, "flexbox-layout", start, end, count=10)).quiz
        key = await answer_key(offline_server, quiz.quiz_id)
        seen = [q for q in quiz.questions if q.concepts[0] in mastery_of]
        question = (seen or list(quiz.questions))[0]
        concept = question.concepts[0]
        history = mastery_of.setdefault(concept, [P_INIT])
        right_index = key[question.question_id]["correct_index"]
        index = right_index if should_be_right else (right_index + 1) % 4
        result = await _submit(client, quiz.name, question.question_id, index, f"step-{step}")
        (mastery,) = [m for m in result.mastery if m.concept == concept]
        if should_be_right:
            assert mastery.probability > history[-1]
        else:
            assert mastery.probability < history[-1]
        assert mastery.attempts == len(history)
        history.append(mastery.probability)
    assert max(len(history) for history in mastery_of.values()) >= 3


async def test_resubmitting_an_attempt_returns_the_first_result(offline_server: RunningServer) -> None:
    client = offline_server.client("repeat")
    quiz = (await generate_quiz(client, "react-state-effects", 0, 200, count=3)).quiz
    key = await answer_key(offline_server, quiz.quiz_id)
    question = quiz.questions[0]
    index = key[question.question_id]["correct_index"]

    first = await _submit(client, quiz.name, question.question_id, index, "attempt-7")
    again = await _submit(client, quiz.name, question.question_id, index, "attempt-7")
    assert again == first
    rows = await _mastery_rows(offline_server, "repeat")
    assert all(attempts == 1 for _, attempts, _ in rows.values())

    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await _submit(client, quiz.name, question.question_id, (index + 1) % 4, "attempt-7")
    assert reused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_details(reused.value)["ErrorInfo"].reason == "ATTEMPT_ID_REUSED"


async def test_only_the_first_answer_to_a_question_moves_mastery(offline_server: RunningServer) -> None:
    client = offline_server.client("second-try")
    quiz = (await generate_quiz(client, "http-caching", 0, 200, count=3)).quiz
    key = await answer_key(offline_server, quiz.quiz_id)
    question = quiz.questions[0]
    right = key[question.question_id]["correct_index"]
    first = await _submit(client, quiz.name, question.question_id, (right + 1) % 4, "try-1")
    second = await _submit(client, quiz.name, question.question_id, right, "try-2")
    assert second.correct and not first.correct
    assert [m.probability for m in second.mastery] == [m.probability for m in first.mastery]
    # Another quiz on the same content (served from the cache) is the same question: still no evidence.
    other = (await generate_quiz(client, "http-caching", 0, 200, count=3)).quiz
    third = await _submit(client, other.name, question.question_id, right, "try-3")
    assert [m.probability for m in third.mastery] == [m.probability for m in first.mastery]


async def test_another_students_quiz_answers_like_a_missing_quiz(offline_server: RunningServer) -> None:
    owner, intruder = offline_server.client("owner"), offline_server.client("intruder")
    quiz = (await generate_quiz(owner, "flexbox-layout", 0, 150, count=3)).quiz
    mine = (await generate_quiz(intruder, "flexbox-layout", 0, 150, count=3)).quiz
    assert mine.cached and mine.quiz_id != quiz.quiz_id
    question_id = quiz.questions[0].question_id

    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await _submit(intruder, quiz.name, question_id, 0, "steal-1")
    missing_id = uuid.uuid4().hex
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await _submit(intruder, f"quizzes/{missing_id}", question_id, 0, "steal-2")
    assert foreign.value.code() == missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert foreign.value.details() == f"quizzes/{quiz.quiz_id} not found"
    assert missing.value.details() == f"quizzes/{missing_id} not found"
    foreign_info, missing_info = error_details(foreign.value)["ErrorInfo"], error_details(missing.value)["ErrorInfo"]
    assert foreign_info.reason == missing_info.reason == "QUIZ_NOT_FOUND"
    # Not even bad input is reported for someone else's quiz: ownership is checked first.
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await _submit(intruder, quiz.name, "no-such-question", 9, "")
    assert invalid.value.code() == grpc.StatusCode.NOT_FOUND
    # The intruder's own copy of the same shared content works.
    answered = await _submit(intruder, mine.name, question_id, 0, "own-1")
    assert answered.attempt_id == "own-1"


async def test_bad_submissions_are_invalid_arguments(offline_server: RunningServer) -> None:
    client = offline_server.client("careless")
    quiz = (await generate_quiz(client, "flexbox-layout", 200, 400, count=2)).quiz
    question_id = quiz.questions[0].question_id
    cases = [
        (pb.SubmitQuizAnswerRequest(quiz="quiz/abc", question_id=question_id, attempt_id="x1"), "quiz"),
        (
            pb.SubmitQuizAnswerRequest(quiz=quiz.name, question_id=question_id, selected_index=4, attempt_id="x2"),
            "selected_index",
        ),
        (pb.SubmitQuizAnswerRequest(quiz=quiz.name, question_id="q99", attempt_id="x3"), "question_id"),
        (pb.SubmitQuizAnswerRequest(quiz=quiz.name, question_id=question_id), "attempt_id"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await client.agents.SubmitQuizAnswer(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        violations = error_details(error.value)["BadRequest"].field_violations
        assert [v.field for v in violations] == [field]
