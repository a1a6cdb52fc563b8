"""The operator's view: grpcurl (a real, independent client) against a running server via reflection."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

from tests.conftest import RunningServer
from tests.support.clients import token_for

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


async def grpcurl(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        GRPCURL, "-plaintext", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_lists_the_four_services_health_and_reflection(server: RunningServer) -> None:
    code, out, err = await grpcurl(server.target, "list")
    assert code == 0, err
    assert set(out.split()) == {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "tutorstream.v1.AgentService",
        "tutorstream.v1.AnalyticsService",
        "tutorstream.v1.ChatService",
        "tutorstream.v1.TranscriptService",
    }
    code, out, err = await grpcurl(server.target, "describe", "tutorstream.v1.ChatService")
    assert code == 0, err
    signature = (
        "rpc StreamChat ( .tutorstream.v1.StreamChatRequest ) returns ( stream .tutorstream.v1.StreamChatResponse )"
    )
    assert signature in out


async def test_health_check_without_credentials(server: RunningServer) -> None:
    code, out, err = await grpcurl(server.target, "grpc.health.v1.Health/Check")
    assert code == 0, err
    assert json.loads(out) == {"status": "SERVING"}
    code, out, err = await grpcurl(
        "-d", '{"service": "tutorstream.v1.TranscriptService"}', server.target, "grpc.health.v1.Health/Check"
    )
    assert json.loads(out) == {"status": "SERVING"}


async def test_get_preferences_with_and_without_a_token(server: RunningServer) -> None:
    token = token_for(server.settings, "grace")
    request = '{"name": "users/me/preferences"}'
    code, out, err = await grpcurl(
        "-H",
        f"authorization: Bearer {token}",
        "-d",
        request,
        server.target,
        "tutorstream.v1.AgentService/GetPreferences",
    )
    assert code == 0, err
    assert json.loads(out)["preferences"]["name"] == "users/grace/preferences"
    code, out, err = await grpcurl("-d", request, server.target, "tutorstream.v1.AgentService/GetPreferences")
    assert code != 0
    assert "Code: Unauthenticated" in err
    assert "MISSING_CREDENTIALS" in err


async def test_update_preferences_field_mask_and_bad_enum(server: RunningServer) -> None:
    token = token_for(server.settings, "heidi")
    auth = f"authorization: Bearer {token}"
    code, out, err = await grpcurl(
        "-H",
        auth,
        "-d",
        '{"preferences": {"personality": "PERSONALITY_PEER"}, "update_mask": {"paths": ["personality"]}}',
        server.target,
        "tutorstream.v1.AgentService/UpdatePreferences",
    )
    assert code == 0, err
    assert json.loads(out)["preferences"]["personality"] == "PERSONALITY_PEER"
    code, out, err = await grpcurl(
        "-H",
        auth,
        "-d",
        '{"preferences": {"quiz_frequency": 42}, "update_mask": {"paths": ["quiz_frequency"]}}',
        server.target,
        "tutorstream.v1.AgentService/UpdatePreferences",
    )
    assert "Code: InvalidArgument" in err
    assert '"field":"preferences.quiz_frequency"' in err.replace(" ", "")
