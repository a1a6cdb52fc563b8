"""Course ownership through real clients: the first ingester owns a new course, owners grant and revoke,
everyone else's writes are refused and nothing stored changes, the `courses` claim is honoured."""

from __future__ import annotations

import asyncio
import time

import grpc
import jwt
from tutorstream.v1 import analytics_service_pb2 as analytics_pb
from tutorstream.v1 import transcript_service_pb2 as pb

from server.core.auth import load_or_create_secret
from tests.conftest import RunningServer
from tests.support.clients import Client, connect, error_details
from tests.transcripts.conftest import wait_for_job
from tests.transcripts.test_service_ingest import VTT, get_full, ingest_and_wait, ingest_request, rpc_error


def reason(error: grpc.aio.AioRpcError) -> str:
    return str(error_details(error)["ErrorInfo"].reason)


async def instructors(client: Client, course: str, page_size: int = 0) -> list[tuple[str, int, str]]:
    found: list[tuple[str, int, str]] = []
    token = ""
    while True:
        page = await client.transcripts.ListCourseInstructors(
            pb.ListCourseInstructorsRequest(parent=f"courses/{course}", page_size=page_size, page_token=token)
        )
        found += [(item.user_id, item.role, item.granted_by) for item in page.instructors]
        token = page.next_page_token
        if not token:
            return found


async def grant(client: Client, course: str, user: str, role: int = pb.COURSE_ROLE_INSTRUCTOR) -> pb.CourseInstructor:
    response = await client.transcripts.CreateCourseInstructor(
        pb.CreateCourseInstructorRequest(parent=f"courses/{course}", user_id=user, role=role)
    )
    return response.instructor


async def revoke(client: Client, course: str, user: str) -> None:
    await client.transcripts.DeleteCourseInstructor(
        pb.DeleteCourseInstructorRequest(name=f"courses/{course}/instructors/{user}")
    )


async def test_the_first_ingester_owns_a_new_course_and_no_one_else_changes_it(
    transcript_server: RunningServer,
) -> None:
    owner = transcript_server.client("algebra-owner", role="instructor")
    intruder = transcript_server.client("intruder", role="instructor")
    student = transcript_server.client("algebra-student")
    await ingest_and_wait(owner, ingest_request("algebra-1", VTT, course_id="algebra"))
    assert await instructors(owner, "algebra") == [("algebra-owner", pb.COURSE_ROLE_OWNER, "algebra-owner")]
    before = await get_full(owner, "algebra-1")

    overwrite = await rpc_error(
        intruder.transcripts.IngestTranscript(
            ingest_request("algebra-1", "WEBVTT\n\n00:00.000 --> 00:02.000\nPWNED\n", course_id="algebra")
        )
    )
    assert overwrite.code() == grpc.StatusCode.PERMISSION_DENIED
    assert reason(overwrite) == "COURSE_NOT_TAUGHT"
    assert error_details(overwrite)["ErrorInfo"].metadata["course"] == "courses/algebra"
    into_course = await rpc_error(
        intruder.transcripts.IngestTranscript(ingest_request("algebra-9", VTT, course_id="algebra"))
    )
    assert (into_course.code(), reason(into_course)) == (grpc.StatusCode.PERMISSION_DENIED, "COURSE_NOT_TAUGHT")
    # Moving the video into a course of their own needs the video's course too; the refused write claims nothing.
    moved = await rpc_error(
        intruder.transcripts.IngestTranscript(ingest_request("algebra-1", VTT, course_id="intruder-course"))
    )
    assert (moved.code(), reason(moved)) == (grpc.StatusCode.PERMISSION_DENIED, "COURSE_NOT_TAUGHT")
    assert "algebra" in (moved.details() or "")
    missing = await rpc_error(
        intruder.transcripts.ListCourseInstructors(pb.ListCourseInstructorsRequest(parent="courses/intruder-course"))
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    deleted = await rpc_error(
        intruder.transcripts.DeleteTranscript(pb.DeleteTranscriptRequest(name="videos/algebra-1/transcript"))
    )
    assert (deleted.code(), reason(deleted)) == (grpc.StatusCode.PERMISSION_DENIED, "COURSE_NOT_TAUGHT")
    by_student = await rpc_error(
        student.transcripts.IngestTranscript(ingest_request("algebra-2", VTT, course_id="algebra"))
    )
    assert (by_student.code(), reason(by_student)) == (grpc.StatusCode.PERMISSION_DENIED, "INSTRUCTOR_ROLE_REQUIRED")

    after = await get_full(owner, "algebra-1")
    assert (after.course_id, after.content_hash, [cue.text for cue in after.cues]) == (
        "algebra",
        before.content_hash,
        [cue.text for cue in before.cues],
    )

    # Analytics follow the course: its owner reads them, another instructor is refused.
    analytics = analytics_pb.GetVideoAnalyticsRequest(video_id="algebra-1")
    assert (await owner.analytics.GetVideoAnalytics(analytics)).video_id == "algebra-1"
    refused = await rpc_error(intruder.analytics.GetVideoAnalytics(analytics))
    assert (refused.code(), reason(refused)) == (grpc.StatusCode.PERMISSION_DENIED, "COURSE_NOT_TAUGHT")

    await owner.transcripts.DeleteTranscript(pb.DeleteTranscriptRequest(name="videos/algebra-1/transcript"))


async def test_owners_grant_and_revoke_instructors(transcript_server: RunningServer) -> None:
    owner = transcript_server.client("geo-owner", role="instructor")
    helper = transcript_server.client("geo-helper", role="instructor")
    outsider = transcript_server.client("geo-outsider", role="instructor")
    await ingest_and_wait(owner, ingest_request("geo-1", VTT, course_id="geometry"))

    granted = await grant(owner, "geometry", "geo-helper")
    assert (granted.name, granted.role, granted.granted_by) == (
        "courses/geometry/instructors/geo-helper",
        pb.COURSE_ROLE_INSTRUCTOR,
        "geo-owner",
    )
    job = await ingest_and_wait(helper, ingest_request("geo-2", VTT.replace("flexbox", "angles"), course_id="geometry"))
    assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED
    assert {user for user, _, _ in await instructors(helper, "geometry")} == {"geo-owner", "geo-helper"}

    by_helper = await rpc_error(grant(helper, "geometry", "geo-outsider"))
    assert (by_helper.code(), reason(by_helper)) == (grpc.StatusCode.PERMISSION_DENIED, "COURSE_OWNER_REQUIRED")
    by_outsider = await rpc_error(grant(outsider, "geometry", "geo-outsider"))
    assert by_outsider.code() == grpc.StatusCode.NOT_FOUND
    assert (await rpc_error(instructors(outsider, "geometry"))).code() == grpc.StatusCode.NOT_FOUND
    twice = await rpc_error(grant(owner, "geometry", "geo-helper", pb.COURSE_ROLE_OWNER))
    assert twice.code() == grpc.StatusCode.ALREADY_EXISTS
    for bad in (
        grant(owner, "geometry", "someone", pb.COURSE_ROLE_UNSPECIFIED),
        grant(owner, "geometry", "not/an id"),
        grant(owner, "geo/metry", "someone"),
        owner.transcripts.DeleteCourseInstructor(pb.DeleteCourseInstructorRequest(name="courses/geometry")),
    ):
        assert (await rpc_error(bad)).code() == grpc.StatusCode.INVALID_ARGUMENT

    last = await rpc_error(revoke(owner, "geometry", "geo-owner"))
    assert (last.code(), reason(last)) == (grpc.StatusCode.FAILED_PRECONDITION, "LAST_OWNER")
    await grant(owner, "geometry", "geo-co-owner", pb.COURSE_ROLE_OWNER)
    assert len(await instructors(owner, "geometry", page_size=1)) == 3
    await revoke(owner, "geometry", "geo-helper")
    assert (await rpc_error(revoke(owner, "geometry", "geo-helper"))).code() == grpc.StatusCode.NOT_FOUND
    revoked = await rpc_error(helper.transcripts.IngestTranscript(ingest_request("geo-3", VTT, course_id="geometry")))
    assert (revoked.code(), reason(revoked)) == (grpc.StatusCode.PERMISSION_DENIED, "COURSE_NOT_TAUGHT")
    await revoke(owner, "geometry", "geo-owner")
    assert await instructors(transcript_server.client("geo-co-owner", role="instructor"), "geometry") == [
        ("geo-co-owner", pb.COURSE_ROLE_OWNER, "geo-owner")
    ]

    # Deleting the co-owner's data removes their role; roles they granted stay, without their id.
    co_owner = transcript_server.client("geo-co-owner", role="instructor")
    await grant(co_owner, "geometry", "geo-helper")
    service = transcript_server.client("privacy-service", role="service")
    deleted = await service.analytics.DeleteUserData(analytics_pb.DeleteUserDataRequest(user="users/geo-co-owner"))
    assert (deleted.deleted["course_roles"], deleted.deleted["course_grants"]) == (1, 1)
    assert await instructors(service, "geometry") == [("geo-helper", pb.COURSE_ROLE_INSTRUCTOR, "")]


async def test_a_course_only_services_wrote_and_the_courses_claim(transcript_server: RunningServer) -> None:
    service = transcript_server.client("lms", role="service")
    await ingest_and_wait(service, ingest_request("svc-1", VTT, course_id="catalog-course"))
    assert await instructors(service, "catalog-course") == []

    instructor = transcript_server.client("catalog-teacher", role="instructor")
    refused = await rpc_error(
        instructor.transcripts.IngestTranscript(ingest_request("svc-2", VTT, course_id="catalog-course"))
    )
    assert (refused.code(), reason(refused)) == (grpc.StatusCode.PERMISSION_DENIED, "COURSE_NOT_TAUGHT")

    # The LMS says which courses an instructor teaches: the claim lets them write but makes nobody an owner.
    claimed = transcript_server.client("catalog-teacher", role="instructor", courses=["catalog-course", "other"])
    job = await ingest_and_wait(claimed, ingest_request("svc-2", VTT, course_id="catalog-course"))
    assert job.state == pb.INGEST_JOB_STATE_SUCCEEDED
    assert await instructors(claimed, "catalog-course") == []
    not_owner = await rpc_error(grant(claimed, "catalog-course", "someone"))
    assert reason(not_owner) == "COURSE_OWNER_REQUIRED"

    # A service grants the course an owner.
    await grant(service, "catalog-course", "catalog-owner", pb.COURSE_ROLE_OWNER)
    owner = transcript_server.client("catalog-owner", role="instructor")
    assert (await grant(owner, "catalog-course", "catalog-teacher")).granted_by == "catalog-owner"

    secret = load_or_create_secret(transcript_server.settings)
    for bad_claim in ("catalog-course", ["ok", "not an id"], [7], ["c"] * 1001):
        claims = {
            "sub": "claims-teacher",
            "role": "instructor",
            "iss": transcript_server.settings.jwt_issuer,
            "aud": transcript_server.settings.jwt_audience,
            "exp": int(time.time()) + 600,
            "courses": bad_claim,
        }
        client = connect(transcript_server.target, jwt.encode(claims, secret, algorithm="HS256"))
        try:
            error = await rpc_error(client.transcripts.ListTranscripts(pb.ListTranscriptsRequest()))
        finally:
            await client.close()
        assert (error.code(), reason(error)) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_COURSES")


async def test_instructors_racing_for_a_new_course_leave_one_owner(transcript_server: RunningServer) -> None:
    racers = [transcript_server.client(f"racer-{index}", role="instructor") for index in range(4)]
    outcomes = await asyncio.gather(
        *(
            racer.transcripts.IngestTranscript(ingest_request(f"race-{index}", VTT, course_id="contested"))
            for index, racer in enumerate(racers)
        ),
        return_exceptions=True,
    )
    won = [outcome for outcome in outcomes if isinstance(outcome, pb.IngestTranscriptResponse)]
    lost = [outcome for outcome in outcomes if isinstance(outcome, grpc.aio.AioRpcError)]
    assert (len(won), len(lost)) == (1, 3), outcomes
    assert {error.code() for error in lost} == {grpc.StatusCode.PERMISSION_DENIED}
    winner = racers[outcomes.index(won[0])]
    await wait_for_job(winner, won[0].job.name)
    assert await instructors(winner, "contested") == [(winner.user_id, pb.COURSE_ROLE_OWNER, winner.user_id)]
