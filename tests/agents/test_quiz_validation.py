"""Quiz output from a model is validated in code: every kind of malformed output is rejected, retried once
with the problems named, and then replaced by the offline generator (served by the fake OpenAI server)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from tutorstream.v1 import common_pb2

from server.agents.corpus import CorpusCache, CourseIndex
from server.agents.quiz_rules import QUIZ_SCHEMA, check_quiz
from server.llm.grounding import Source
from tests.agents.conftest import COURSE_ID, FLEX_RANGE, FLEX_VIDEO, answer_key, generate_quiz, valid_quiz_output
from tests.conftest import RunningServer
from tests.support.fake_openai import Behavior, FakeOpenAI


async def flex_sources(server: RunningServer) -> tuple[list[Source], CourseIndex]:
    """The excerpt the valid quiz is written from (the justify-content values), as ingest stored it."""
    runtime = server.server.runtime
    corpus = await CorpusCache(runtime.search, runtime.sentences).load(COURSE_ID)
    hit = next(h for h in corpus.chunks_of(FLEX_VIDEO) if "space-evenly makes every gap" in h.text)
    return [Source("c1", hit)], corpus.index


def _first(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda data: change(data["questions"][0])


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return _first(lambda question: question.__setitem__(key, value))


def _set_option(index: int, value: str) -> Callable[[dict[str, Any]], None]:
    return _first(lambda question: question["options"].__setitem__(index, value))


# Each kind of malformed output, the mutation of a valid quiz that produces it, and the problem reported.
MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "three_options": (_first(lambda q: q["options"].pop()), "exactly 4 are required"),
    "five_options": (_first(lambda q: q["options"].append("baseline")), "exactly 4 are required"),
    "duplicate_options": (_set_option(0, "Space-Between"), "two options are the same"),
    "empty_option": (_set_option(2, "   "), "an option is empty"),
    "index_out_of_range": (_set("correct_index", 4), "is not between 0 and 3"),
    "negative_index": (_set("correct_index", -1), "is not between 0 and 3"),
    "index_not_integer": (_set("correct_index", "1"), "correct_index is not an integer"),
    "missing_explanation": (_set("explanation", ""), "the explanation is missing"),
    "source_not_provided": (_set("source", "c7"), "not one of the excerpts provided"),
    "answer_not_in_cited_text": (_set_option(1, "grid-template-areas"), "is not supported by the cited excerpt"),
    "stem_gives_answer_away": (
        _set("stem", "Is space-between the value that spreads items to both ends?"),
        "the stem gives the answer away",
    ),
    "stem_has_the_answer_words_apart": (
        _first(
            lambda q: q.update(
                stem="Which space does space-between divide evenly among items, the part remaining after them?",
                options=["space-around", "remaining space", "space-evenly", "center"],
            )
        ),
        "the stem gives the answer away",
    ),
    "same_answer_twice": (
        _first(lambda q: q.update(options=["space-evenly", "space-around", "flex-end", "stretch"], correct_index=0)),
        "has the same answer as an earlier question",
    ),
    "too_few_questions": (lambda data: data["questions"].pop(), "2 valid questions; exactly 3 were asked for"),
    "no_questions_list": (lambda data: data.clear(), "no `questions` list"),
}


def malformed(kind: str) -> dict[str, Any]:
    data = copy.deepcopy(valid_quiz_output())
    MALFORMED[kind][0](data)
    return data


async def test_the_valid_output_passes(offline_server: RunningServer) -> None:
    sources, index = await flex_sources(offline_server)
    items, problems = check_quiz(valid_quiz_output(), sources, 3, index)
    assert problems == []
    assert [item.answer for item in items] == ["space-between", "space-evenly", "flex-start"]
    assert all(item.support >= 0.6 for item in items)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_each_kind_of_malformed_question_is_rejected(offline_server: RunningServer, kind: str) -> None:
    sources, index = await flex_sources(offline_server)
    items, problems = check_quiz(malformed(kind), sources, 3, index)
    assert len(items) < 3
    assert any(MALFORMED[kind][1] in problem for problem in problems), problems


def _offset(kind: str) -> float:
    """A distinct range start per case, so no case is served from another's cache."""
    return sorted(MALFORMED).index(kind) * 0.01


def _bodies(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return [request.body for request in fake.chat_requests]


@pytest.mark.parametrize("kind", sorted(MALFORMED))
async def test_malformed_output_twice_falls_back_to_the_offline_generator(
    module_online_server: RunningServer, fake_openai: FakeOpenAI, kind: str
) -> None:
    fake_openai.enqueue_chat(Behavior(json_content=malformed(kind)), Behavior(json_content=malformed(kind)))
    client = module_online_server.client()
    start, end = FLEX_RANGE
    response = await generate_quiz(client, FLEX_VIDEO, start + _offset(kind), end, count=3)

    quiz = response.quiz
    assert quiz.model == "offline-extractive"
    assert not quiz.cached
    assert quiz.usage.total_tokens > 0  # both rejected calls reached the model and are charged
    bodies = _bodies(fake_openai)
    assert len(bodies) == 2
    for body in bodies:
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True
        assert body["response_format"]["json_schema"]["schema"] == QUIZ_SCHEMA
    retry = bodies[1]["messages"][-1]["content"]
    assert "rejected" in retry and MALFORMED[kind][1] in retry
    key = await answer_key(module_online_server, quiz.quiz_id)
    assert 1 <= len(quiz.questions) <= 3
    for question in quiz.questions:
        item = key[question.question_id]
        assert item["options"][item["correct_index"]].lower() in item["chunk_text"].lower()


@pytest.mark.parametrize("kind", ["duplicate_options", "answer_not_in_cited_text", "too_few_questions"])
async def test_one_malformed_output_is_retried_and_the_valid_retry_is_used(
    module_online_server: RunningServer, fake_openai: FakeOpenAI, kind: str
) -> None:
    fake_openai.enqueue_chat(Behavior(json_content=malformed(kind)), Behavior(json_content=valid_quiz_output()))
    client = module_online_server.client()
    start, end = FLEX_RANGE
    response = await generate_quiz(client, FLEX_VIDEO, start + 0.5 + _offset(kind), end, count=3)

    assert response.quiz.model == "gpt-4o-mini"
    assert len(fake_openai.chat_requests) == 2
    stems = [question.stem for question in response.quiz.questions]
    assert stems == [question["stem"] for question in valid_quiz_output()["questions"]]
    key = await answer_key(module_online_server, response.quiz.quiz_id)
    assert [key[q.question_id]["correct_index"] for q in response.quiz.questions] == [1, 0, 3]


@pytest.mark.parametrize(
    ("name", "behavior"),
    [
        ("broken_json", Behavior(content="{not json")),
        ("truncated_json", Behavior(content=json.dumps(valid_quiz_output())[:200], finish_reason="length")),
    ],
)
async def test_output_that_is_not_json_is_retried_then_replaced(
    module_online_server: RunningServer, fake_openai: FakeOpenAI, name: str, behavior: Behavior
) -> None:
    fake_openai.enqueue_chat(behavior, behavior)
    client = module_online_server.client()
    start, end = FLEX_RANGE
    offset = 1.0 if name == "broken_json" else 1.1
    response = await generate_quiz(
        client, FLEX_VIDEO, start + offset, end, count=2, difficulty=common_pb2.DIFFICULTY_HARD
    )

    assert response.quiz.model == "offline-extractive"
    assert len(fake_openai.chat_requests) == 2
    assert response.quiz.usage.prompt_tokens > 0
    assert response.quiz.questions
