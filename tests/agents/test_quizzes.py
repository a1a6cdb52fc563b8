"""GenerateQuiz: offline quizzes on the demo course are valid and answerable from the cited text; generated
quizzes are shared through the PostgreSQL cache (zero tokens the second time); students never see the key."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2

from server.agents.leaks import contains_answer
from server.demo import load_demo_course
from tests.agents.conftest import (
    FLEX_RANGE,
    FLEX_VIDEO,
    AgentServerFactory,
    answer_key,
    generate_quiz,
    ingest,
    interactions_of,
    valid_quiz_output,
)
from tests.conftest import RunningServer
from tests.support.fake_openai import Behavior, FakeOpenAI

DIFFICULTIES = (common_pb2.DIFFICULTY_EASY, common_pb2.DIFFICULTY_MEDIUM, common_pb2.DIFFICULTY_HARD)
_QUOTED = re.compile(r"“(.*)”")


def _sentence_pattern(stem: str, fill: str) -> re.Pattern[str]:
    """The quoted sentence of a cloze stem with the blank filled, as a pattern over the transcript."""
    match = _QUOTED.search(stem)
    assert match is not None, stem
    sentence = " ".join(match.group(1).split())
    pattern = re.escape(sentence).replace(re.escape("a(n) _____"), "an? _____").replace("_____", re.escape(fill))
    return re.compile(pattern.replace(r"\ ", r"\s+"), re.IGNORECASE)


def _assert_answerable(question: pb.QuizQuestion, item: dict[str, Any]) -> None:
    options = list(question.options)
    assert len(options) == 4
    assert len({option.casefold() for option in options}) == 4
    assert all(option.strip() for option in options)
    assert options == item["options"]
    answer = options[item["correct_index"]]
    assert not contains_answer(question.stem, answer), (question.stem, answer)
    assert answer.casefold() not in question.stem.casefold()
    chunk_text = " ".join(item["chunk_text"].split())
    assert answer.casefold() in chunk_text.casefold()
    if _QUOTED.search(question.stem):
        # A cloze: the cited chunk states the sentence with the correct option, and with no distractor.
        assert _sentence_pattern(question.stem, answer).search(chunk_text), (question.stem, answer)
        for distractor in options:
            if distractor != answer:
                assert not _sentence_pattern(question.stem, distractor).search(chunk_text), distractor
    else:
        # A definition question: the explanation quotes the lecture's sentence, which says it of the answer
        # and of no distractor.
        said = _QUOTED.search(item["explanation"])
        assert said is not None and said.group(1) in chunk_text, item["explanation"]
        assert answer.casefold() in said.group(1).casefold()
        assert question.stem.startswith(("Which term does the lecture use for", "According to the lecture,"))
        for distractor in options:
            if distractor != answer:
                assert distractor.casefold() not in said.group(1).casefold(), distractor
    assert item["explanation"]
    assert list(question.concepts) == item["concepts"]


def test_students_never_receive_the_correct_index() -> None:
    fields = set(pb.QuizQuestion.DESCRIPTOR.fields_by_name)
    assert fields == {"question_id", "stem", "options", "concepts"}


async def test_offline_quizzes_on_the_demo_course_are_valid_and_answerable(offline_server: RunningServer) -> None:
    client = offline_server.client()
    for video in load_demo_course().videos:
        half = video.duration_seconds / 2
        for difficulty, (start, end, count) in zip(
            DIFFICULTIES,
            [(0.0, video.duration_seconds, 10), (0.0, half, 5), (half, video.duration_seconds, 5)],
            strict=True,
        ):
            response = await generate_quiz(client, video.video_id, start, end, count=count, difficulty=difficulty)
            quiz = response.quiz
            assert quiz.model == "offline-extractive"
            assert quiz.name == f"quizzes/{quiz.quiz_id}"
            assert quiz.difficulty == difficulty
            assert quiz.usage.total_tokens == 0
            assert len(quiz.questions) >= max(1, count - 2), (video.video_id, count, len(quiz.questions))
            assert len({question.stem for question in quiz.questions}) == len(quiz.questions)
            key = await answer_key(offline_server, quiz.quiz_id)
            for question in quiz.questions:
                item = key[question.question_id]
                _assert_answerable(question, item)
                assert item["start_seconds"] < end + 1 and item["end_seconds"] > start - 1


async def test_the_same_request_yields_the_same_quiz(offline_server: RunningServer) -> None:
    first = await generate_quiz(offline_server.client(), "async-javascript", 60, 240, count=4)
    second = await generate_quiz(offline_server.client(), "async-javascript", 60, 240, count=4)
    assert [q.stem for q in first.quiz.questions] == [q.stem for q in second.quiz.questions]
    assert [list(q.options) for q in first.quiz.questions] == [list(q.options) for q in second.quiz.questions]


async def test_a_cached_quiz_is_shared_with_the_next_student_at_zero_tokens(offline_server: RunningServer) -> None:
    alice, bob = offline_server.client("alice"), offline_server.client("bob")
    first = await generate_quiz(alice, "http-caching", 30, 200, count=4)
    second = await generate_quiz(bob, "http-caching", 30, 200, count=4)

    assert not first.quiz.cached and second.quiz.cached
    assert second.quiz.quiz_id != first.quiz.quiz_id
    assert [q.stem for q in second.quiz.questions] == [q.stem for q in first.quiz.questions]
    assert second.quiz.usage.total_tokens == 0
    assert second.quiz.create_time == first.quiz.create_time
    assert second.quiz.expire_time.ToSeconds() > second.quiz.create_time.ToSeconds()
    (bob_row,) = await interactions_of(offline_server, "bob")
    assert bob_row["agent_type"] == "quiz" and bob_row["cached"] is True
    assert bob_row["id"] == second.interaction_id
    different = await generate_quiz(bob, "http-caching", 30, 200, count=3)
    assert not different.quiz.cached


async def test_the_cache_costs_zero_tokens_with_a_model(online_server: RunningServer, fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue_chat(Behavior(json_content=valid_quiz_output(), prompt_tokens=900, completion_tokens=300))
    alice, bob = online_server.client("alice"), online_server.client("bob")
    first = await generate_quiz(alice, FLEX_VIDEO, *FLEX_RANGE, count=3)
    second = await generate_quiz(bob, FLEX_VIDEO, *FLEX_RANGE, count=3)

    assert first.quiz.model == "gpt-4o-mini" and not first.quiz.cached
    assert first.quiz.usage.prompt_tokens == 900 and first.quiz.usage.completion_tokens == 300
    assert first.quiz.usage.cost_usd > 0
    assert second.quiz.cached and second.quiz.model == "gpt-4o-mini"
    assert second.quiz.usage.total_tokens == 0 and second.quiz.usage.cost_usd == 0
    assert len(fake_openai.chat_requests) == 1
    async with online_server.server.database.session() as session:
        usage = (
            await session.execute(
                text("SELECT user_id, operation, total_tokens FROM usage_records ORDER BY create_time")
            )
        ).all()
    assert [(row.user_id, row.operation, row.total_tokens) for row in usage] == [("alice", "quiz", 1200)]


async def test_concurrent_requests_for_the_same_quiz_generate_it_once(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    fake_openai.enqueue_chat(Behavior(json_content=valid_quiz_output(), first_token_delay=0.3))
    clients = [online_server.client(f"student-{i}") for i in range(4)]
    responses = await asyncio.gather(*(generate_quiz(c, FLEX_VIDEO, *FLEX_RANGE, count=3) for c in clients))
    assert len(fake_openai.chat_requests) == 1
    assert sorted(r.quiz.cached for r in responses) == [False, True, True, True]
    assert len({r.quiz.quiz_id for r in responses}) == 4


async def test_an_expired_quiz_is_generated_again(agents_server_factory: AgentServerFactory) -> None:
    running = await agents_server_factory(quiz_cache_ttl_seconds=1)
    client = running.client()
    first = await generate_quiz(client, "react-state-effects", 0, 120, count=2)
    await asyncio.sleep(1.2)
    second = await generate_quiz(client, "react-state-effects", 0, 120, count=2)
    assert not first.quiz.cached and not second.quiz.cached


async def test_a_quiz_on_chunk_ids_and_on_the_whole_video(offline_server: RunningServer) -> None:
    search = offline_server.server.runtime.search
    chunks = await search.chunks_in_range("react-state-effects", 170, 260)
    client = offline_server.client()
    on_chunks = await client.agents.GenerateQuiz(
        pb.GenerateQuizRequest(video_id="react-state-effects", chunk_ids=[c.chunk_id for c in chunks], question_count=3)
    )
    assert on_chunks.quiz.range.start_seconds == chunks[0].start_seconds
    assert on_chunks.quiz.range.end_seconds == chunks[-1].end_seconds
    assert on_chunks.quiz.difficulty == common_pb2.DIFFICULTY_MEDIUM
    key = await answer_key(offline_server, on_chunks.quiz.quiz_id)
    assert {item["chunk_id"] for item in key.values()} <= {c.chunk_id for c in chunks}

    whole = await client.agents.GenerateQuiz(pb.GenerateQuizRequest(video_id="react-state-effects", question_count=6))
    assert whole.quiz.range.start_seconds == 0
    assert len(whole.quiz.questions) == 6


async def test_a_reingested_video_is_quizzed_on_its_new_text(offline_server: RunningServer) -> None:
    """A re-ingest that keeps the chunk count but replaces every chunk: the next quiz comes from the new text
    (the course's cached analysis is reloaded), not a FAILED_PRECONDITION about missing sentences."""
    student = offline_server.client("reingest-student")
    await generate_quiz(student, FLEX_VIDEO, 0, 240, count=3)
    (video,) = [video for video in load_demo_course().videos if video.video_id == FLEX_VIDEO]
    renamed = video.vtt.replace("main axis", "primary axis")
    assert renamed != video.vtt
    await ingest(
        offline_server.client("reingest-service", role="service"),
        FLEX_VIDEO,
        video.title,
        renamed,
        video.duration_seconds,
    )
    stems = []
    for start, end in ((0, 300), (60, 494)):
        quiz = (await generate_quiz(student, FLEX_VIDEO, start, end, count=5)).quiz
        key = await answer_key(offline_server, quiz.quiz_id)
        stems += [(q.stem, q.options[key[q.question_id]["correct_index"]], list(q.options)) for q in quiz.questions]
    assert stems
    assert not any("main axis" in f"{stem} {' '.join(options)}" for stem, _, options in stems), stems
