"""GetHint: grounded, cited, Socratic, and never the answer to a quiz on the same stretch."""

from __future__ import annotations

import random
import re

from sqlalchemy import text
from tutorstream.v1 import agent_service_pb2 as pb

from server.agents.leaks import contains_answer
from server.demo import load_demo_course
from tests.agents.conftest import answer_key, generate_quiz, interactions_of, learning_context
from tests.conftest import RunningServer
from tests.support.clients import Client
from tests.support.fake_openai import Behavior, FakeOpenAI

CLOCK_RANGE = re.compile(r"\d{2}:\d{2}–\d{2}:\d{2}")


async def _hint(
    client: Client, video: str, position: float, selected: tuple[float, float] | None, struggle: str
) -> pb.GetHintResponse:
    request = pb.GetHintRequest(learning_context=learning_context(video, position, selected), struggle=struggle)
    return await client.agents.GetHint(request)


async def test_a_hint_is_short_socratic_and_cited(offline_server: RunningServer) -> None:
    client = offline_server.client("asker")
    response = await _hint(client, "async-javascript", 75, None, "why does the page not freeze?")
    assert response.model == "offline-extractive"
    assert response.hint.endswith("?")
    assert 1 <= response.hint.count(".") + response.hint.count("?") <= 3
    assert CLOCK_RANGE.search(response.hint)
    citation = response.citation
    assert citation.video_id == "async-javascript" and citation.chunk_id
    assert citation.start_seconds <= 75 + 30 and citation.end_seconds >= 75 - 60
    assert 0 < response.confidence < 1
    (row,) = await interactions_of(offline_server, "asker")
    assert row["agent_type"] == "hint" and row["trigger"] == "user" and row["id"] == response.interaction_id
    assert row["confidence"] == response.confidence and row["video_id"] == "async-javascript"
    assert row["position_seconds"] == 75 and row["model"] == "offline-extractive"


async def test_hints_never_contain_a_correct_option_of_a_quiz_on_that_stretch(offline_server: RunningServer) -> None:
    """Property over many generated quizzes: seeded random stretches of every demo video, a quiz on each, then
    hints inside it, with struggles that even spell out the answers."""
    rng = random.Random(20240611)
    client = offline_server.client("prober")
    videos = load_demo_course().videos
    confidences: set[float] = set()
    checked = 0
    for round_number in range(28):
        video = videos[round_number % len(videos)]
        length = rng.uniform(45, 150)
        start = rng.uniform(0, video.duration_seconds - length)
        end = start + length
        quiz = (await generate_quiz(client, video.video_id, start, end, count=rng.randint(2, 5))).quiz
        key = await answer_key(offline_server, quiz.quiz_id)
        answers = [item["options"][item["correct_index"]] for item in key.values()]
        stems = [question.stem for question in quiz.questions]
        for struggle in ("", rng.choice(answers), f"I don't get {rng.choice(answers)}", rng.choice(stems)):
            position = rng.uniform(start, end)
            selected = (start, end) if rng.random() < 0.5 else None
            response = await _hint(client, video.video_id, position, selected, struggle)
            for answer in answers:
                assert answer.casefold() not in response.hint.casefold(), (response.hint, answer)
                assert not contains_answer(response.hint, answer), (response.hint, answer)
                assert answer.casefold() not in response.citation.quoted_text.casefold(), answer
            confidences.add(response.confidence)
            checked += 1
    assert checked == 28 * 4
    assert len(confidences) > 5  # derived from retrieval and validation, not a constant


async def test_a_model_hint_that_gives_the_answer_away_is_regenerated_then_replaced(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    client = online_server.client("guarded")
    quiz = (await generate_quiz(client, "http-caching", 40, 130, count=3)).quiz  # the fake's reply is no quiz
    assert quiz.model == "offline-extractive"
    answers = [
        item["options"][item["correct_index"]] for item in (await answer_key(online_server, quiz.quiz_id)).values()
    ]
    leaking = Behavior(json_content={"hint": f"Re-watch 00:42–01:29: is it {answers[0]}?", "source": "c1"})
    fake_openai.reset()
    fake_openai.enqueue_chat(leaking, leaking)

    response = await _hint(client, "http-caching", 80, (40, 130), "what makes a response stale?")
    assert response.model == "offline-extractive"
    assert all(answer.casefold() not in response.hint.casefold() for answer in answers)
    assert len(fake_openai.chat_requests) == 2
    first_prompt = fake_openai.chat_requests[0].body["messages"][0]["content"]
    assert all(f"“{answer}”" in first_prompt for answer in answers)  # the model was told what not to say
    retry = fake_openai.chat_requests[1].body["messages"][-1]["content"]
    assert "gives away the answer" in retry
    assert response.usage.total_tokens > 0

    fixed = next(
        text
        for text in (
            "Re-watch that stretch: what has to happen before a saved copy may be used again?",
            "Look at that part once more: when may something kept earlier be used again?",
        )
        if not any(contains_answer(text, answer) for answer in answers)
    )
    fake_openai.enqueue_chat(leaking, Behavior(json_content={"hint": fixed, "source": "c1"}))
    second = await _hint(client, "http-caching", 81, (40, 130), "what makes a response stale?")
    assert second.model == "gpt-4o-mini" and second.hint == fixed
    assert second.confidence < 1


async def test_model_hints_that_break_the_rules_are_rejected(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    client = online_server.client("strict")
    chunk_words = "When you start a slow operation, such as a timer or a network request, the browser does the waiting"
    bad = [
        ({"hint": f"{chunk_words}?", "source": "c1"}, "copies"),
        ({"hint": "One. Two. Three? Four.", "source": "c1"}, "more than two sentences"),
        ({"hint": "Re-watch the start and think about the event loop.", "source": "c1"}, "asks no guiding question"),
        ({"hint": "What does the lecture say waits?", "source": "c42"}, "not one of the excerpts"),
    ]
    for position, (content, problem) in enumerate(bad, start=1):
        fake_openai.reset()
        fake_openai.enqueue_chat(Behavior(json_content=content), Behavior(json_content=content))
        response = await _hint(client, "async-javascript", 40 + position, None, "")
        assert response.model == "offline-extractive", content
        assert problem in fake_openai.chat_requests[1].body["messages"][-1]["content"]


async def test_pii_is_redacted_before_the_model_sees_the_struggle(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    good = Behavior(json_content={"hint": "What does the lecture say keeps the page responsive?", "source": "c1"})
    fake_openai.enqueue_chat(good)
    client = online_server.client("private")
    struggle = "I'm Sarah Johnson, mail me at jane.doe@example.com or 4111.1111.1111.1111, I am lost"
    response = await _hint(client, "async-javascript", 60, None, struggle)
    assert response.model == "gpt-4o-mini"
    sent = " ".join(message["content"] for message in fake_openai.chat_requests[0].body["messages"])
    for value in ("Sarah Johnson", "jane.doe@example.com", "4111.1111.1111.1111"):
        assert value not in sent
    assert "[PERSON]" in sent and "[EMAIL]" in sent and "[CARD]" in sent
    assert response.usage.total_tokens > 0
    # The call was reserved against the student's budget and reconciled with the real usage.
    async with online_server.server.database.session() as session:
        usage = (
            await session.execute(text("SELECT operation, total_tokens FROM usage_records WHERE user_id = 'private'"))
        ).all()
    assert [(row.operation, row.total_tokens) for row in usage] == [("hint", response.usage.total_tokens)]
    (row,) = await interactions_of(online_server, "private")
    assert row["prompt_tokens"] == response.usage.prompt_tokens and row["model"] == "gpt-4o-mini"
