"""No spoilers (a preference, off by default): what the video says after the playhead plus a short look-ahead
is never quoted, paraphrased or sent to a model; the tutor says where it comes up instead, and a selected
range lifts the rule for that range."""

from __future__ import annotations

import re
import uuid

from google.protobuf import field_mask_pb2
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import analytics_service_pb2 as analytics_pb

from server.llm.offline import OFFLINE_MODEL
from tests.chat.conftest import COURSE_ID, ChatServerFactory, answer_text, ask, learning_context, new_session
from tests.support.clients import Client
from tests.support.fake_openai import Behavior, FakeOpenAI

QUESTION = "Why does a flex item with a long URL overflow instead of shrinking?"
# Where the flexbox lecture explains it (the because-sentence and the fix after it).
EXPLAINED_AT = 420.0


async def no_spoilers(client: Client, on: bool = True) -> None:
    await client.agents.UpdatePreferences(
        agent_pb.UpdatePreferencesRequest(
            preferences=agent_pb.Preferences(name="users/me/preferences", no_spoilers=on),
            update_mask=field_mask_pb2.FieldMask(paths=["no_spoilers"]),
        )
    )


async def test_the_offline_tutor_says_where_not_what(
    chat_server_factory: ChatServerFactory, course_database_url: str
) -> None:
    server = await chat_server_factory(online=False, database_url=course_database_url)
    client = server.client("no-spoilers")
    default = await client.agents.GetPreferences(agent_pb.GetPreferencesRequest(name="users/me/preferences"))
    assert default.preferences.no_spoilers is False
    await no_spoilers(client)
    session = await new_session(client, learning_context("flexbox-layout", 60.0))
    deltas, final = await ask(client, session, QUESTION)
    text = answer_text(deltas)
    assert final.model == OFFLINE_MODEL
    assert text.startswith("No spoilers: the lecture answers that later, at 0"), text
    assert "min-width" not in text and "auto" not in text
    (citation,) = final.citations
    assert citation.video_id == "flexbox-layout" and citation.start_seconds > 60.0 + 30.0
    assert citation.quoted_text == ""


async def test_a_selected_range_lifts_the_rule_and_it_is_off_by_default(
    chat_server_factory: ChatServerFactory, course_database_url: str
) -> None:
    server = await chat_server_factory(online=False, database_url=course_database_url)
    client = server.client("no-spoilers-selected")
    await no_spoilers(client)
    selected = await new_session(client, learning_context("flexbox-layout", 60.0, selected=(400.0, 440.0)))
    deltas, _ = await ask(client, selected, QUESTION)
    assert "min-width" in answer_text(deltas)
    await no_spoilers(client, on=False)
    plain = await new_session(client, learning_context("flexbox-layout", 60.0))
    deltas, _ = await ask(client, plain, QUESTION)
    assert "min-width" in answer_text(deltas)


async def test_a_model_never_sees_what_comes_later(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    server = await chat_server_factory(database_url=course_database_url)
    client = server.client("no-spoilers-model")
    await no_spoilers(client)
    session = await new_session(client, learning_context("flexbox-layout", 60.0))
    fake_openai.enqueue_chat(Behavior(content="That is explained later in the video [c1]."))
    await ask(client, session, QUESTION)
    system = fake_openai.chat_requests[-1].body["messages"][0]["content"]
    assert "no spoilers: do not tell what the video says after 01:30" in system
    # Nothing said after 01:30 of this video is in the prompt; later excerpts appear withheld.
    starts = [
        int(m) * 60 + int(s)
        for video, m, s in re.findall(r'video="([^"]+)" start="(\d+):(\d+)"[^>]*kind="(?!ahead)', system)
        if video == "flexbox-layout"
    ]
    assert starts and max(starts) < 90
    assert "min-width: auto" not in system
    assert 'kind="ahead">\n(content withheld' in system


async def test_the_no_spoilers_lever_turns_it_on_for_its_arm(
    chat_server_factory: ChatServerFactory, course_database_url: str, fake_openai: FakeOpenAI
) -> None:
    """An experiment on the NO_SPOILERS lever: students in `no_spoilers` get the rule though their preference
    is off, students in `as_preferred` do not; every student who asks is exposed."""
    server = await chat_server_factory(database_url=course_database_url, response_cache_ttl_seconds=0)
    teacher = server.client("spoiler-teacher", role="instructor", courses=[COURSE_ID])
    experiment = analytics_pb.Experiment(
        display_name="Do spoilers hurt?",
        lever=analytics_pb.EXPERIMENT_LEVER_NO_SPOILERS,
        arms=[
            analytics_pb.ExperimentArm(name="as_preferred", weight=1),
            analytics_pb.ExperimentArm(name="no_spoilers", weight=1),
        ],
        video_ids=["flexbox-layout"],
    )
    experiment_id = f"spoilers-{uuid.uuid4().hex[:8]}"
    created = await teacher.analytics.CreateExperiment(
        analytics_pb.CreateExperimentRequest(
            parent=f"courses/{COURSE_ID}", experiment_id=experiment_id, experiment=experiment
        )
    )
    await teacher.analytics.StartExperiment(analytics_pb.StartExperimentRequest(name=created.experiment.name))
    try:
        ruled: dict[bool, int] = {True: 0, False: 0}
        for index in range(12):
            student = server.client(f"spoiler-student-{uuid.uuid4().hex[:6]}-{index}")
            session = await new_session(student, learning_context("flexbox-layout", 60.0))
            fake_openai.enqueue_chat(Behavior(content="It comes up later [c1]."))
            requests = len(fake_openai.chat_requests)
            await ask(student, session, QUESTION)
            assert len(fake_openai.chat_requests) == requests + 1
            system = str(fake_openai.chat_requests[-1].body["messages"][0]["content"])
            ruled[bool(re.search(r"no spoilers: do not tell what the video says after", system))] += 1
        exposures = await teacher.analytics.GetExperiment(
            analytics_pb.GetExperimentRequest(name=created.experiment.name)
        )
        counts = dict(exposures.experiment.exposures)
        assert sum(counts.values()) == 12
        assert counts.get("no_spoilers", 0) == ruled[True] and counts.get("as_preferred", 0) == ruled[False], (
            counts,
            ruled,
        )
        assert ruled[True] > 0 and ruled[False] > 0
    finally:
        await teacher.analytics.StopExperiment(analytics_pb.StopExperimentRequest(name=created.experiment.name))
