"""From a stretch of a video to the questions asked about it, through real clients: a student sees their own
with their messages; instructors of the course see everyone's, anonymized and counted."""

from __future__ import annotations

import grpc
from tutorstream.v1 import chat_service_pb2 as pb
from tutorstream.v1 import common_pb2

from tests.chat.conftest import COURSE_ID, ChatServerFactory, ask, learning_context, new_session
from tests.support.clients import Client, error_details
from tests.transcripts.test_service_ingest import rpc_error

VIDEO = "flexbox-layout"
QUESTION = "What does justify-content control in a flex container?"


async def questions(
    client: Client, *, scope: int = pb.QUESTION_SCOPE_MINE, window: tuple[float, float] | None = None, **fields: int
) -> list[pb.SegmentQuestion]:
    request = pb.ListSegmentQuestionsRequest(video_id=VIDEO, scope=scope, **fields)  # type: ignore[arg-type]
    if window is not None:
        request.range.CopyFrom(common_pb2.TimeRange(start_seconds=window[0], end_seconds=window[1]))
    return list((await client.chat.ListSegmentQuestions(request)).questions)


def counted(found: list[pb.SegmentQuestion]) -> dict[str, tuple[int, int]]:
    """Times asked and students per question, by its lowercase text without the final question mark."""
    return {question.text.lower().rstrip("?"): (question.count, question.students) for question in found}


async def test_questions_that_cited_a_stretch(chat_server_factory: ChatServerFactory, course_database_url: str) -> None:
    server = await chat_server_factory(online=False, database_url=course_database_url)
    # The course database is shared: other tests' questions are there too, so counts are compared with before.
    teacher = server.client("segment-teacher", role="instructor", courses=[COURSE_ID])
    before = counted(await questions(teacher, scope=pb.QUESTION_SCOPE_COURSE, max_questions=100))
    ada, bo, cy = (server.client(f"segment-{name}") for name in ("ada", "bo", "cy"))
    asked: dict[str, list[str]] = {}
    cited: list[tuple[float, float]] = []
    for client, question in (
        (ada, QUESTION),
        (bo, "what does JUSTIFY-CONTENT control in a flex container"),
        (ada, "What does justify-content control in a flex container (I am ada@example.com)?"),
        (cy, "How do I center an element horizontally and vertically with flexbox?"),
    ):
        session = await new_session(client, learning_context(VIDEO, 100.0))
        _, final = await ask(client, session, question)
        here = [(c.start_seconds, c.end_seconds) for c in final.citations if c.video_id == VIDEO]
        assert here, question  # every one of these is answered from the flexbox lecture
        cited += here
        asked.setdefault(client.user_id, []).append(question)
    first = min(cited)

    # A student: their own questions, newest first, each with its message.
    mine = await questions(ada)
    assert [question.text for question in mine] == list(reversed(asked[ada.user_id]))
    assert all(len(question.messages) == 1 and question.messages[0].startswith("sessions/") for question in mine)
    assert [question.text for question in await questions(ada, window=(first[0], first[1]))] != []
    assert await questions(ada, window=(5000.0, 5001.0)) == []
    assert len(await questions(ada, max_questions=1)) == 1

    # Instructors of the course: everyone's, anonymized and counted, most asked first.
    everyone = await questions(teacher, scope=pb.QUESTION_SCOPE_COURSE, max_questions=100)
    assert [question.count for question in everyone] == sorted((question.count for question in everyone), reverse=True)
    assert all(not question.messages for question in everyone)
    after = counted(everyone)
    key = QUESTION.lower().rstrip("?")
    assert after[key][0] - before.get(key, (0, 0))[0] == 2
    assert after[key][1] - before.get(key, (0, 0))[1] == 2
    texts = [question.text for question in everyone]
    assert not any("ada@example.com" in text for text in texts)
    assert any("(I am [EMAIL])" in text for text in texts)
    assert sum(count for count, _ in after.values()) - sum(count for count, _ in before.values()) == 4

    # Who may not, and bad requests.
    outsider = server.client("segment-outsider", role="instructor")
    for client, code, reason in (
        (ada, grpc.StatusCode.PERMISSION_DENIED, "INSTRUCTOR_ROLE_REQUIRED"),
        (outsider, grpc.StatusCode.PERMISSION_DENIED, "COURSE_NOT_TAUGHT"),
    ):
        error = await rpc_error(questions(client, scope=pb.QUESTION_SCOPE_COURSE))
        assert (error.code(), error_details(error)["ErrorInfo"].reason) == (code, reason)
    unknown = await rpc_error(
        teacher.chat.ListSegmentQuestions(
            pb.ListSegmentQuestionsRequest(video_id="no-such-video", scope=pb.QUESTION_SCOPE_COURSE)
        )
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    for bad in (
        questions(ada, window=(10.0, 5.0)),
        questions(ada, max_questions=101),
        ada.chat.ListSegmentQuestions(pb.ListSegmentQuestionsRequest(video_id="")),
    ):
        assert (await rpc_error(bad)).code() == grpc.StatusCode.INVALID_ARGUMENT
