"""The progress and analytics RPCs through grpcurl (an independent client, JSON in and out), as an operator
or a quick integration would use them."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from tutorstream.v1 import common_pb2

from tests.conftest import RunningServer
from tests.progress.conftest import COURSE_ID, VIDEO_ID, new_watch_session, rewatch_script
from tests.support.clients import token_for

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


async def grpcurl(server: RunningServer, token: str, method: str, body: str) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        GRPCURL,
        "-plaintext",
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        "@",
        server.target,
        method,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(body.encode()), 60)
    assert process.returncode == 0, stderr.decode()
    decoder, text, found, index = json.JSONDecoder(), stdout.decode(), [], 0
    while index < len(text.strip()):
        while text[index].isspace():
            index += 1
        value, index = decoder.raw_decode(text, index)
        found.append(value)
    return found


def events_json() -> list[dict[str, Any]]:
    return [json_format.MessageToDict(event, preserving_proto_field_name=True) for event in rewatch_script()]


async def test_watch_video_and_the_browser_pair_through_grpcurl(progress_server: RunningServer) -> None:
    token = token_for(progress_server.settings, "grpcurl-student")
    # WatchVideo: each JSON object on stdin is one message up the stream. After the last one grpcurl
    # half-closes, and the server ends the stream once the hint whose content was being made is out.
    messages = [{"watch_session_id": new_watch_session(), "video_id": VIDEO_ID}]
    messages += [{"events": [event]} for event in events_json()]
    (response,) = await grpcurl(
        progress_server, token, "tutorstream.v1.AgentService/WatchVideo", "\n".join(map(json.dumps, messages))
    )
    hint = response["intervention"]
    assert (hint["type"], hint["reason"]) == ("INTERVENTION_TYPE_HINT", "REWATCH")
    assert hint["range"] == {"start_seconds": 95, "end_seconds": 135}
    assert hint["citation"]["video_id"] == VIDEO_ID

    publish = {"watch_session_id": new_watch_session(), "video_id": VIDEO_ID, "events": events_json()}
    (published,) = await grpcurl(
        progress_server, token, "tutorstream.v1.AgentService/PublishVideoEvents", json.dumps(publish)
    )
    assert published == {"accepted_count": len(rewatch_script())}


async def test_analytics_through_grpcurl(progress_server: RunningServer) -> None:
    token = token_for(progress_server.settings, "grpcurl-analyst")
    recorded = {"trigger": "quick_action:explain", "learning_context": {"video_id": VIDEO_ID, "position_seconds": 42}}
    (interaction,) = await grpcurl(
        progress_server, token, "tutorstream.v1.AnalyticsService/RecordInteraction", json.dumps(recorded)
    )
    name = interaction["interaction"]["name"]
    rating = {"name": name, "rating": 5, "reason": "clear"}
    (rated,) = await grpcurl(
        progress_server, token, "tutorstream.v1.AnalyticsService/RateInteraction", json.dumps(rating)
    )
    assert rated["interaction"]["rating"] == 5
    (report,) = await grpcurl(
        progress_server, token, "tutorstream.v1.AnalyticsService/GetUserAnalytics", '{"user": "users/me"}'
    )
    assert report["agents"] == [
        {"agent_type": "AGENT_TYPE_CLIENT", "count": "1", "rating_count": "1", "average_rating": 5}
    ]
    instructor = token_for(progress_server.settings, "grpcurl-instructor", role="instructor", courses=[COURSE_ID])
    (video,) = await grpcurl(
        progress_server,
        instructor,
        "tutorstream.v1.AnalyticsService/GetVideoAnalytics",
        json.dumps({"video_id": VIDEO_ID}),
    )
    assert video["video_id"] == VIDEO_ID and len(video["interventions"]) == len(common_pb2.InterventionType.keys()) - 1
    (deleted,) = await grpcurl(
        progress_server, token, "tutorstream.v1.AnalyticsService/DeleteUserData", '{"user": "users/me"}'
    )
    assert deleted["deleted"]["interactions"] == "1" and deleted["deleted"]["users"] == "1"
