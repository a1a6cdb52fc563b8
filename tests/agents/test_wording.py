"""What learning paths and reflections say about a student is true of that student's data.

Each test sets up one student through the API (nothing; a goal; wrong quiz answers; hints they asked for; help
the tutor offered on its own; struggles they named; a mix), asks for the path or the reflection through the
Python stubs, and checks the exact sentences, and that no sentence speaks of data the student does not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.protobuf import field_mask_pb2
from tutorstream.v1 import agent_service_pb2 as pb
from tutorstream.v1 import common_pb2

from tests.agents.conftest import COURSE_ID, answer_key, generate_quiz, learning_context
from tests.conftest import RunningServer
from tests.progress.conftest import new_watch_session, rewatch_script, watch
from tests.support.clients import Client
from tests.support.fake_openai import Behavior, FakeOpenAI

NEW_STUDENT_NOTE = (
    "Nothing recorded for you in this course yet: answer a few quiz questions or ask for hints, and the path adapts."
)
# Claims about a student's history: none may appear for a student without that history.
HISTORY_WORDS = ("goal", "struggl", "again", "mistake", "still", "named", "mastery", "first try", "asked", "stepped in")


@dataclass(frozen=True)
class Mastery:
    probability: float
    attempts: int
    correct: int


def clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


def span(item: pb.RecommendedContent) -> str:
    return f"{clock(item.range.start_seconds)}–{clock(item.range.end_seconds)} of “{item.title}”"


def questions(count: int) -> str:
    return "1 quiz question" if count == 1 else f"{count} quiz questions"


def path_texts(response: pb.GenerateLearningPathResponse) -> list[str]:
    return [*response.detected_issues, *(item.why for item in response.recommendations), *response.next_steps]


def reflection_texts(response: pb.GenerateReflectionResponse) -> list[str]:
    return [response.prompt, *response.guiding_questions]


def mentioned(texts: list[str], words: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(word, text) for text in texts for word in words if word in text.casefold()]


async def path(client: Client, **fields: object) -> pb.GenerateLearningPathResponse:
    request = pb.GenerateLearningPathRequest(course_id=COURSE_ID, **fields)  # type: ignore[arg-type]
    return await client.agents.GenerateLearningPath(request)


async def reflect(client: Client, video_id: str, position: float) -> pb.GenerateReflectionResponse:
    return await client.agents.GenerateReflection(
        pb.GenerateReflectionRequest(learning_context=learning_context(video_id, position))
    )


async def set_personality(client: Client, personality: int) -> None:
    await client.agents.UpdatePreferences(
        pb.UpdatePreferencesRequest(
            preferences=pb.Preferences(name="users/me/preferences", personality=personality),  # type: ignore[arg-type]
            update_mask=field_mask_pb2.FieldMask(paths=["personality"]),
        )
    )


async def answer_quiz(
    running: RunningServer, client: Client, video_id: str, start: float, end: float, *, wrong: set[int]
) -> dict[str, Mastery]:
    """Answers every question of a new quiz on the stretch, the ones at the `wrong` positions wrongly; the
    student's mastery of each concept afterwards, as SubmitQuizAnswer reported it."""
    quiz = (await generate_quiz(client, video_id, start, end, count=3)).quiz
    key = await answer_key(running, quiz.quiz_id)
    mastery: dict[str, Mastery] = {}
    for position, question in enumerate(quiz.questions):
        right = key[question.question_id]["correct_index"]
        answer = await client.agents.SubmitQuizAnswer(
            pb.SubmitQuizAnswerRequest(
                quiz=quiz.name,
                question_id=question.question_id,
                selected_index=(right + 1) % 4 if position in wrong else right,
                attempt_id=f"{quiz.quiz_id}-{position}",
            )
        )
        for view in answer.mastery:
            mastery[view.concept] = Mastery(view.probability, view.attempts, view.correct)
    return mastery


def weak(mastery: dict[str, Mastery]) -> dict[str, Mastery]:
    return {concept: row for concept, row in mastery.items() if row.probability < 0.5}


async def ask_hints(client: Client, video_id: str, positions: tuple[float, ...]) -> None:
    for position in positions:
        await client.agents.GetHint(pb.GetHintRequest(learning_context=learning_context(video_id, position)))


async def assert_comes_up(running: RunningServer, video_id: str, around: float, concept: str) -> None:
    """`where “concept” comes up` is true: the lecture names it within half a minute of the help."""
    hits = await running.server.runtime.search.chunks_in_range(video_id, around - 30, around + 30)
    assert concept.casefold() in " ".join(hit.text for hit in hits).casefold()


def concept_why(item: pb.RecommendedContent, reason: str) -> set[str]:
    """The two sentences a recommendation selected for `reason` may have, by whether it names the concept."""
    return {f"{reason}: {span(item)} explains it.", f"{reason}: {span(item)} is closely related."}


# --- learning paths ------------------------------------------------------------------------------------------


async def test_a_new_student_is_shown_where_to_start_not_a_goal(offline_server: RunningServer) -> None:
    response = await path(offline_server.client("new-student"))
    assert list(response.detected_issues) == [NEW_STUDENT_NOTE]
    assert [item.video_id for item in response.recommendations] == [
        "flexbox-layout",
        "async-javascript",
        "react-state-effects",
    ]
    for item in response.recommendations:
        start, end = clock(item.range.start_seconds), clock(item.range.end_seconds)
        assert item.why == f"A good place to start: the opening of “{item.title}” ({start}–{end})."
    first = response.recommendations[0]
    assert response.next_steps[0] == (
        f"Watch {clock(first.range.start_seconds)}–{clock(first.range.end_seconds)} of “{first.title}” "
        f"({first.estimated_minutes:g} min), then explain what it introduces in your own words."
    )
    assert mentioned(path_texts(response), HISTORY_WORDS) == []


async def test_a_stated_goal_is_called_a_goal_and_nothing_more(offline_server: RunningServer) -> None:
    response = await path(offline_server.client("goal-setter"), goals=["cache API responses"])
    assert list(response.detected_issues) == []
    assert response.recommendations
    for item in response.recommendations:
        assert item.concept == "cache API responses"
        assert item.why == f"Matches your goal “cache API responses”: {span(item)} covers it."
    others = tuple(word for word in HISTORY_WORDS if word != "goal")
    assert mentioned(path_texts(response), others) == []


async def test_wrong_quiz_answers_are_told_with_their_real_counts(offline_server: RunningServer) -> None:
    client = offline_server.client("quiz-taker")
    mastery = await answer_quiz(offline_server, client, "react-state-effects", 160, 320, wrong={0})
    low = weak(mastery)
    assert low and len(low) < len(mastery)  # one wrong answer, the others right
    response = await path(client)
    assert list(response.detected_issues) == [
        f"Low mastery of “{concept}”: {row.probability:.0%}, {row.correct} of {questions(row.attempts)} right on "
        "the first try."
        for concept, row in sorted(low.items(), key=lambda entry: entry[1].probability)
    ]
    assert {item.concept for item in response.recommendations} <= set(low)
    for item in response.recommendations:
        row = low[item.concept]
        reason = f"You got {row.correct} of {questions(row.attempts)} on “{item.concept}” right on the first try"
        assert item.why in concept_why(item, reason)
    texts = path_texts(response)
    assert mentioned(texts, ("goal", "struggl", "again", "mistake", "still", "named", "asked", "stepped in")) == []
    assert not any(concept in text for text in texts for concept in set(mastery) - set(low))


async def test_hints_the_student_asked_for_are_told_as_asked(offline_server: RunningServer) -> None:
    client = offline_server.client("hint-asker")
    await ask_hints(client, "http-caching", (100.0, 105.0))
    response = await path(client)
    help_said = "You asked for 2 hints around 01:42 in “HTTP Caching Basics”"
    assert list(response.detected_issues) == [f"{help_said}."]
    assert response.recommendations
    for item in response.recommendations:
        assert item.why in concept_why(item, f"{help_said}, where “{item.concept}” comes up")
    await assert_comes_up(offline_server, "http-caching", 102.5, response.recommendations[0].concept)
    words = ("goal", "struggl", "again", "mistake", "still", "named", "mastery", "first try", "stepped in")
    assert mentioned(path_texts(response), words) == []


async def test_help_the_tutor_offered_unasked_is_not_told_as_asked(offline_server: RunningServer) -> None:
    client = offline_server.client("rewatcher")
    received = await watch(
        client,
        new_watch_session(),
        rewatch_script(),
        until=lambda got: any(r.WhichOneof("payload") == "intervention" for r in got),
    )
    (hint,) = [r.intervention for r in received if r.WhichOneof("payload") == "intervention"]
    assert (hint.reason, hint.position_seconds) == ("REWATCH", 100.0)
    response = await path(client)
    help_said = "The tutor stepped in once around 01:40 in “CSS Flexbox Layout”"
    assert list(response.detected_issues) == [f"{help_said}."]
    for item in response.recommendations:
        assert item.why in concept_why(item, f"{help_said}, where “{item.concept}” comes up")
    await assert_comes_up(offline_server, "flexbox-layout", 100.0, response.recommendations[0].concept)
    assert mentioned(path_texts(response), ("asked", "goal", "first try", "mastery", "named")) == []


async def test_named_struggles_are_told_as_named_even_with_quiz_answers(offline_server: RunningServer) -> None:
    client = offline_server.client("self-aware")
    await answer_quiz(offline_server, client, "react-state-effects", 160, 320, wrong={0, 1, 2})
    response = await path(client, struggling_concepts=["event loop"])
    assert list(response.detected_issues) == ["You named “event loop” as hard."]
    for item in response.recommendations:
        assert item.concept == "event loop"
        assert item.why in concept_why(item, "You named “event loop” as hard")
    # Named struggles replace the derived ones: the quiz answers select nothing, so nothing mentions them.
    assert mentioned(path_texts(response), ("goal", "first try", "mastery", "asked", "stepped in")) == []


async def test_a_mix_tells_each_recommendation_by_what_selected_it(offline_server: RunningServer) -> None:
    client = offline_server.client("mixed")
    low = weak(await answer_quiz(offline_server, client, "react-state-effects", 160, 320, wrong={0}))
    await ask_hints(client, "http-caching", (100.0, 105.0))
    response = await path(client, goals=["cache API responses"])
    help_said = "You asked for 2 hints around 01:42 in “HTTP Caching Basics”"
    mastery_issues = [
        f"Low mastery of “{concept}”: {row.probability:.0%}, {row.correct} of {questions(row.attempts)} right on "
        "the first try."
        for concept, row in sorted(low.items(), key=lambda entry: entry[1].probability)
    ]
    assert list(response.detected_issues) == [*mastery_issues, f"{help_said}."]
    kinds = set()
    for item in response.recommendations:
        if item.concept == "cache API responses":
            kinds.add("goal")
            assert item.why == f"Matches your goal “cache API responses”: {span(item)} covers it."
        elif item.concept in low:
            kinds.add("quiz")
            row = low[item.concept]
            reason = f"You got {row.correct} of {questions(row.attempts)} on “{item.concept}” right on the first try"
            assert item.why in concept_why(item, reason)
        else:
            kinds.add("help")
            assert item.why in concept_why(item, f"{help_said}, where “{item.concept}” comes up")
    assert kinds == {"goal", "quiz", "help"}
    assert mentioned(path_texts(response), ("struggl", "again", "mistake", "still", "named", "stepped in")) == []


async def test_weak_spots_marked_completed_are_told_as_completed(offline_server: RunningServer) -> None:
    client = offline_server.client("completer")
    low = weak(await answer_quiz(offline_server, client, "react-state-effects", 160, 320, wrong={0}))
    concepts = sorted(low, key=lambda concept: low[concept].probability)
    response = await path(client, completed_concepts=concepts)
    listed = " and ".join(f"“{concept}”" for concept in concepts)  # one or two concepts per question
    verb = "is" if len(concepts) == 1 else "are"
    assert list(response.detected_issues) == [
        f"{listed} {verb} in your completed concepts, so the path starts at the beginning of the course."
    ]
    assert all(item.why.startswith("A good place to start: the opening of ") for item in response.recommendations)


async def test_a_model_is_told_the_real_reasons_and_cannot_invent_issues(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    invented = {
        "detected_issues": ["Struggles with flexbox."],
        "recommendations": [{"candidate": "k1", "why": "A first look at flexbox."}],
        "next_steps": ["Watch it."],
    }
    fake_openai.enqueue_chat(Behavior(json_content=invented))
    response = await path(online_server.client("new-online"))
    assert response.model == "gpt-4o-mini"
    assert list(response.detected_issues) == [NEW_STUDENT_NOTE]
    assert [item.why for item in response.recommendations] == ["A first look at flexbox."]
    system, facts = (message["content"] for message in fake_openai.chat_requests[0].body["messages"])
    assert 'reason="A good place to start: the opening of “CSS Flexbox Layout”"' in system
    assert "Detected issues: none recorded" in facts
    assert "Searched the course for: nothing" in facts
    assert "CSS Flexbox Layout" not in facts  # a title is not something the student asked for


# --- reflections ---------------------------------------------------------------------------------------------


async def test_a_new_students_reflection_claims_no_history(offline_server: RunningServer) -> None:
    client = offline_server.client("new-reflector")
    response = await reflect(client, "flexbox-layout", 0)
    assert response.prompt.startswith("Take a few minutes to reflect on “CSS Flexbox Layout”. In about 150 words")
    first = response.topics[0]
    assert response.guiding_questions[0] == (
        f"How would you explain “{first}” to a classmate who missed this part, without your notes?"
    )
    words = (*HISTORY_WORDS, "this far", "quiz", "hint", "re-watch")
    assert mentioned(reflection_texts(response), words) == []
    at_playhead = await reflect(client, "flexbox-layout", 200)
    assert at_playhead.prompt.startswith(
        "Nice work getting this far! Take a few minutes to reflect on “CSS Flexbox Layout” up to 03:20."
    )
    assert mentioned(reflection_texts(at_playhead), (*HISTORY_WORDS, "quiz", "hint", "re-watch")) == []


async def test_a_reflection_tells_wrong_quiz_answers_with_their_real_counts(offline_server: RunningServer) -> None:
    client = offline_server.client("quiz-reflector")
    low = weak(await answer_quiz(offline_server, client, "react-state-effects", 160, 320, wrong={0}))
    concept, row = min(low.items(), key=lambda entry: entry[1].probability)
    response = await reflect(client, "react-state-effects", 0)
    assert response.guiding_questions[2] == (
        f"You got {row.correct} of {questions(row.attempts)} on “{concept}” right on the first try: what about it "
        "is unclear, and which part of the lecture will you look at for it?"
    )
    assert response.guiding_questions[0].startswith("How would you explain")
    words = ("goal", "struggl", "again", "mistake", "still", "asked", "stepped in", "hint", "re-watch", "this far")
    assert mentioned(reflection_texts(response), words) == []


async def test_a_reflection_tells_the_hints_that_chose_its_first_topic(offline_server: RunningServer) -> None:
    client = offline_server.client("hint-reflector")
    await ask_hints(client, "http-caching", (100.0, 105.0))
    response = await reflect(client, "http-caching", 200)
    first = response.topics[0]
    assert response.guiding_questions[0] == (
        f"You asked for 2 hints around 01:42, where “{first}” comes up: how would you explain it to a classmate "
        "who missed this part, without your notes?"
    )
    await assert_comes_up(offline_server, "http-caching", 102.5, first)
    others = reflection_texts(response)[:1] + list(response.guiding_questions[1:])
    assert mentioned(others, ("hint", "asked", "quiz", "goal", "struggl", "mistake", "again", "still")) == []


async def test_a_reflection_tells_help_the_tutor_offered_unasked(offline_server: RunningServer) -> None:
    client = offline_server.client("rewatch-reflector")
    await watch(
        client,
        new_watch_session(),
        rewatch_script(),
        until=lambda got: any(r.WhichOneof("payload") == "intervention" for r in got),
    )
    response = await reflect(client, "flexbox-layout", 0)
    first = response.topics[0]
    assert response.guiding_questions[0].startswith(
        f"The tutor stepped in once around 01:40, where “{first}” comes up:"
    )
    await assert_comes_up(offline_server, "flexbox-layout", 100.0, first)
    assert mentioned(reflection_texts(response), ("asked", "quiz", "goal", "mistake", "this far")) == []


async def test_a_mixed_reflection_tells_each_question_by_its_own_data(offline_server: RunningServer) -> None:
    client = offline_server.client("mixed-reflector")
    await set_personality(client, common_pb2.PERSONALITY_PEER)
    low = weak(await answer_quiz(offline_server, client, "react-state-effects", 160, 320, wrong={0}))
    concept, row = min(low.items(), key=lambda entry: entry[1].probability)
    await ask_hints(client, "react-state-effects", (100.0,))
    response = await reflect(client, "react-state-effects", 0)
    assert response.prompt.startswith("Okay, quick check-in: Take a few minutes to reflect on “React State")
    first = response.topics[0]
    assert re.fullmatch(
        rf"You asked for a hint around 01:40, where “{re.escape(first)}” comes up: how would you explain it .*\?",
        response.guiding_questions[0],
    )
    assert response.guiding_questions[2].startswith(
        f"You got {row.correct} of {questions(row.attempts)} on “{concept}” right on the first try:"
    )
    assert mentioned(reflection_texts(response), ("goal", "struggl", "mistake", "again", "still", "stepped in")) == []


async def test_a_model_writing_a_reflection_gets_only_the_students_facts(
    online_server: RunningServer, fake_openai: FakeOpenAI
) -> None:
    written = {"prompt": "Reflect.", "guiding_questions": ["One?", "Two?", "Three?"], "expected_length_words": 100}
    client = online_server.client("facts")
    fake_openai.enqueue_chat(Behavior(json_content=written))
    assert (await reflect(client, "react-state-effects", 0)).model == "gpt-4o-mini"
    facts = fake_openai.chat_requests[-1].body["messages"][-1]["content"]
    assert "quiz" not in facts and "Help" not in facts
    low = weak(await answer_quiz(online_server, client, "react-state-effects", 160, 320, wrong={0}))
    concept, row = min(low.items(), key=lambda entry: entry[1].probability)
    fake_openai.enqueue_chat(Behavior(json_content=written))
    assert (await reflect(client, "react-state-effects", 0)).model == "gpt-4o-mini"
    facts = fake_openai.chat_requests[-1].body["messages"][-1]["content"]
    assert (
        f"Concepts with low quiz mastery: the student got {row.correct} of {questions(row.attempts)} on "
        f"“{concept}” right on the first try"
    ) in facts
