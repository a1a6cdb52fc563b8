"""The grounding check on a model's answers, through real clients and the OpenAI-compatible test server: an
answer that neither cites the excerpts it was given nor says it answers from general knowledge is marked
`grounded: false`, stored so and counted, and after two such answers in a session the offline engine answers
instead, as in an outage."""

from __future__ import annotations

from server.llm.offline import OFFLINE_MODEL
from tests.chat.conftest import ChatServerFactory, ask, learning_context, messages_of, new_session
from tests.support.fake_openai import Behavior, FakeOpenAI
from tests.support.metrics import counter_value

VIDEO = "flexbox-layout"
QUESTION = "What does justify-content control in a flex container?"


async def test_ungrounded_answers_are_marked_and_repeated_ones_route_offline(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(online=True, database_url=course_database_url)
    student = server.client("grounding-student")

    cited = await new_session(student, learning_context(VIDEO, 100.0))
    fake_openai.enqueue_chat(
        Behavior(content="It spreads the items along the main axis [c1]."),
        Behavior(content="The lecture doesn't cover that; from general knowledge, it is a CSS property."),
    )
    _, final = await ask(student, cited, QUESTION)
    assert final.grounded and list(final.citations)
    _, final = await ask(student, cited, "And in a grid?")
    assert final.grounded and not list(final.citations)

    before = counter_value("tutorstream_ungrounded_answers", model="gpt-4o-mini")
    strayed = await new_session(student, learning_context(VIDEO, 100.0))
    nonsense = "Once upon a time a cat sat on the mat and sang about the weather."
    fake_openai.enqueue_chat(Behavior(content=nonsense), Behavior(content=nonsense))
    # (Questions asked nowhere else in the suite: an identical earlier prompt would replay from the cache.)
    for question in ("What does align-items do to the items?", "What does flex-wrap change?"):
        _, final = await ask(student, strayed, question)
        assert (final.grounded, final.model, final.fallback) == (False, "gpt-4o-mini", False)
    assert counter_value("tutorstream_ungrounded_answers", model="gpt-4o-mini") == before + 2
    stored = [message for message in await messages_of(student, strayed) if message.model == "gpt-4o-mini"]
    assert len(stored) == 2

    requests = len(fake_openai.chat_requests)
    _, final = await ask(student, strayed, QUESTION)
    assert (final.model, final.fallback, final.grounded) == (OFFLINE_MODEL, True, True)
    assert list(final.citations)
    assert len(fake_openai.chat_requests) == requests

    # Another session is not affected.
    fresh = await new_session(student, learning_context(VIDEO, 100.0))
    fake_openai.enqueue_chat(Behavior(content="Along the main axis [c1]."))
    _, final = await ask(student, fresh, "How do I center an element with flexbox?")
    assert (final.model, final.grounded) == ("gpt-4o-mini", True)
