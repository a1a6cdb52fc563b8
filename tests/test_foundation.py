"""The foundation through the Python stubs: auth, preferences, errors, limits, shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import descriptor_pool, field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tutorstream.v1 import agent_service_pb2 as agent_pb
from tutorstream.v1 import chat_service_pb2 as chat_pb
from tutorstream.v1 import common_pb2

from server.app import SERVICE_NAMES
from server.core.db import libpq_conninfo
from tests.conftest import TEST_JWT_SECRET, RunningServer, ServerFactory
from tests.support.clients import connect, error_details


def prefs_request(**values: object) -> agent_pb.UpdatePreferencesRequest:
    paths = list(values)
    return agent_pb.UpdatePreferencesRequest(
        preferences=agent_pb.Preferences(name="users/me/preferences", **values),  # type: ignore[arg-type]
        update_mask=field_mask_pb2.FieldMask(paths=paths),
    )


async def test_new_user_gets_default_preferences(server: RunningServer) -> None:
    client = server.client("alice")
    reply = await client.agents.GetPreferences(agent_pb.GetPreferencesRequest(name="users/me/preferences"))
    prefs = reply.preferences
    assert prefs.name == "users/alice/preferences"
    assert prefs.personality == common_pb2.PERSONALITY_FRIENDLY
    assert prefs.response_length == common_pb2.RESPONSE_LENGTH_MEDIUM
    assert prefs.auto_hints_enabled and prefs.reflection_prompts_enabled
    assert prefs.quiz_frequency == agent_pb.QUIZ_FREQUENCY_MEDIUM


async def test_preferences_round_trip_and_partial_update(server: RunningServer) -> None:
    client = server.client("bob")
    await client.agents.UpdatePreferences(
        prefs_request(personality=common_pb2.PERSONALITY_PEER, auto_hints_enabled=False)
    )
    # Only the masked field changes: personality stays PEER although the message carries UNSPECIFIED.
    reply = await client.agents.UpdatePreferences(prefs_request(quiz_frequency=agent_pb.QUIZ_FREQUENCY_HIGH))
    prefs = reply.preferences
    assert prefs.personality == common_pb2.PERSONALITY_PEER
    assert prefs.auto_hints_enabled is False
    assert prefs.quiz_frequency == agent_pb.QUIZ_FREQUENCY_HIGH
    assert prefs.update_time.seconds > 0
    fetched = await client.agents.GetPreferences(agent_pb.GetPreferencesRequest(name="users/bob/preferences"))
    assert fetched.preferences == prefs


async def test_other_users_preferences_answer_like_missing(server: RunningServer) -> None:
    alice, mallory = server.client("alice"), server.client("mallory")
    await alice.agents.UpdatePreferences(prefs_request(personality=common_pb2.PERSONALITY_PROFESSIONAL))
    for name in ("users/alice/preferences", "users/nobody/preferences"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mallory.agents.GetPreferences(agent_pb.GetPreferencesRequest(name=name))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "preferences not found"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await mallory.agents.UpdatePreferences(
            agent_pb.UpdatePreferencesRequest(
                preferences=agent_pb.Preferences(name="users/alice/preferences", auto_hints_enabled=False),
                update_mask=field_mask_pb2.FieldMask(paths=["auto_hints_enabled"]),
            )
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    service = server.client("billing", role="service")
    reply = await service.agents.GetPreferences(agent_pb.GetPreferencesRequest(name="users/alice/preferences"))
    assert reply.preferences.personality == common_pb2.PERSONALITY_PROFESSIONAL
    assert reply.preferences.auto_hints_enabled is True


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (prefs_request(personality=99), "preferences.personality"),  # type: ignore[arg-type]
        (prefs_request(personality=common_pb2.PERSONALITY_UNSPECIFIED), "preferences.personality"),
        (prefs_request(response_length=7), "preferences.response_length"),  # type: ignore[arg-type]
        (
            agent_pb.UpdatePreferencesRequest(update_mask=field_mask_pb2.FieldMask(paths=["colour"])),
            "update_mask.paths",
        ),
        (agent_pb.UpdatePreferencesRequest(), "update_mask"),
    ],
)
async def test_invalid_preferences_name_the_field(
    server: RunningServer, request_: agent_pb.UpdatePreferencesRequest, field: str
) -> None:
    client = server.client("carol")
    before = await client.agents.UpdatePreferences(prefs_request(personality=common_pb2.PERSONALITY_PEER))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.agents.UpdatePreferences(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error_details(caught.value)
    assert [v.field for v in details["BadRequest"].field_violations] == [field]
    assert details["ErrorInfo"].domain == "tutorstream.dev"
    after = await client.agents.GetPreferences(agent_pb.GetPreferencesRequest(name="users/me/preferences"))
    assert after.preferences == before.preferences, "a rejected update must not change what is stored"


async def test_malformed_resource_name(server: RunningServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await server.client().agents.GetPreferences(agent_pb.GetPreferencesRequest(name="people/me"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "users/{user}/preferences" in (caught.value.details() or "")


async def test_unknown_rpc_is_unimplemented(server: RunningServer) -> None:
    client = server.client()
    call = client.channel.unary_unary("/tutorstream.v1.ChatService/SummarizeEverything")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"")
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _token(claims: dict[str, object], key: str = TEST_JWT_SECRET, algorithm: str = "HS256") -> str:
    base: dict[str, object] = {
        "sub": "eve",
        "iss": "tutorstream",
        "aud": "tutorstream-api",
        # Made when the module loads: valid for a day, however long the suite runs before using it.
        "exp": int(time.time()) + 86_400,
    }
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, key, algorithm=algorithm)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "MISSING_CREDENTIALS"),
        ("not-a-jwt", "MALFORMED_TOKEN"),
        (_token({}, key="another-secret-" + "y" * 40), "INVALID_SIGNATURE"),
        (_token({"exp": int(time.time()) - 3600}), "TOKEN_EXPIRED"),
        (_token({"aud": "someone-else"}), "INVALID_AUDIENCE"),
        (_token({"iss": "elsewhere"}), "INVALID_ISSUER"),
        (_token({"role": "admin"}), "INVALID_ROLE"),
        (_token({"exp": None}), "MISSING_CLAIM"),
    ],
)
async def test_bad_credentials_are_unauthenticated_for_unary_and_streams(
    server: RunningServer, token: str | None, reason: str
) -> None:
    client = connect(server.target, token)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await client.agents.GetPreferences(agent_pb.GetPreferencesRequest(name="users/me/preferences"))
        assert unary.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_details(unary.value)["ErrorInfo"].reason == reason
        stream = client.chat.StreamChat(chat_pb.StreamChatRequest(session="sessions/x", message="hi"))
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            async for _ in stream:
                pass
        assert streamed.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await client.close()


async def test_every_method_of_every_service_refuses_a_call_without_credentials(server: RunningServer) -> None:
    """No method is reachable around the interceptor; health checks need no token; an unknown name is
    UNIMPLEMENTED."""
    pool = descriptor_pool.Default()
    channel = grpc.aio.insecure_channel(server.target)
    try:
        called = 0
        for service_name in SERVICE_NAMES:
            for method in pool.FindServiceByName(service_name).methods:
                path = f"/{service_name}/{method.name}"
                if method.client_streaming:
                    streamed = channel.stream_stream(path) if method.server_streaming else channel.stream_unary(path)
                    call = streamed(iter([b""]))
                else:
                    call = (channel.unary_stream if method.server_streaming else channel.unary_unary)(path)(b"")
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    if method.server_streaming:
                        async for _ in call:
                            pass
                    else:
                        await call
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, path
                called += 1
        assert called > 40
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await channel.unary_unary("/tutorstream.v1.ChatService/NoSuchMethod")(b"")
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()


async def test_a_remembered_token_is_refused_once_it_expires_and_a_tampered_copy_never_passes(
    start_server: ServerFactory,
) -> None:
    running = await start_server(jwt_leeway_seconds=0)
    request = agent_pb.GetPreferencesRequest(name="users/me/preferences")
    token = _token({"sub": "brief", "exp": int(time.time()) + 2})
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    good, forged = connect(running.target, token), connect(running.target, tampered)
    try:
        for _ in range(3):  # verified once, then remembered
            assert (await good.agents.GetPreferences(request)).preferences.name == "users/brief/preferences"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await forged.agents.GetPreferences(request)
        assert error_details(caught.value)["ErrorInfo"].reason == "INVALID_SIGNATURE"
        await asyncio.sleep(
            max(0.0, int(jwt.decode(token, options={"verify_signature": False})["exp"]) + 1.1 - time.time())
        )
        with pytest.raises(grpc.aio.AioRpcError) as expired:
            await good.agents.GetPreferences(request)
        assert expired.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_details(expired.value)["ErrorInfo"].reason == "TOKEN_EXPIRED"
    finally:
        await good.close()
        await forged.close()


async def test_rs256_with_public_key_and_jwks(start_server: ServerFactory, tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(public_pem)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [jwk]}))
    claims = {
        "sub": "rsa-user",
        "iss": "tutorstream",
        "aud": "tutorstream-api",
        "exp": int(time.time()) + 600,
    }
    for overrides in ({"jwt_public_key_file": key_file}, {"jwt_jwks_file": jwks_file}):
        running = await start_server(**overrides)
        good = connect(running.target, jwt.encode(claims, pem, algorithm="RS256", headers={"kid": "k1"}))
        hs = connect(running.target, _token({"sub": "rsa-user"}))
        try:
            reply = await good.agents.GetPreferences(agent_pb.GetPreferencesRequest(name="users/me/preferences"))
            assert reply.preferences.name == "users/rsa-user/preferences"
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await hs.agents.GetPreferences(agent_pb.GetPreferencesRequest(name="users/me/preferences"))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await good.close()
            await hs.close()


async def test_oversized_message_is_resource_exhausted(start_server: ServerFactory) -> None:
    running = await start_server(max_receive_message_bytes=64 * 1024)
    client = running.client()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.chat.CreateSession(chat_pb.CreateSessionRequest(title="x" * 200_000))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_shutdown_step_that_never_finishes_is_abandoned_and_the_rest_still_run(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_server(grace_seconds=0.0, job_shutdown_grace_seconds=0.0)
    closed: list[str] = []

    async def first_registered() -> None:
        closed.append("first")

    async def never_finishes() -> None:
        await asyncio.Event().wait()

    # Closers run in reverse order of registration: the stuck one first.
    running.server.runtime.closers.extend([first_registered, never_finishes])
    with caplog.at_level("ERROR", logger="tutorstream.server"):
        await asyncio.wait_for(running.server.stop(), 60)
    assert closed == ["first"]
    abandoned = [record for record in caplog.records if "abandoned" in record.getMessage()]
    assert [getattr(record, "step", "") for record in abandoned] == [never_finishes.__qualname__]


async def test_health_and_graceful_shutdown_drains_in_flight_call(
    start_server: ServerFactory, fresh_database_url: str
) -> None:
    running = await start_server(grace_seconds=10.0, shutdown_notice_seconds=0.5)
    client = running.client("dana")
    await client.agents.UpdatePreferences(prefs_request(personality=common_pb2.PERSONALITY_PEER))
    health = health_pb2_grpc.HealthStub(client.channel)
    check = await health.Check(health_pb2.HealthCheckRequest(service="tutorstream.v1.AgentService"))
    assert check.status == health_pb2.HealthCheckResponse.SERVING

    # Hold the row lock so the next update is in flight (blocked in the database) when shutdown starts.
    locker = await psycopg.AsyncConnection.connect(libpq_conninfo(fresh_database_url))
    await locker.execute("BEGIN")
    await locker.execute("SELECT * FROM preferences WHERE user_id = 'dana' FOR UPDATE")
    in_flight = asyncio.ensure_future(
        client.agents.UpdatePreferences(prefs_request(personality=common_pb2.PERSONALITY_PROFESSIONAL))
    )
    await asyncio.sleep(0.3)
    assert not in_flight.done()
    stopping = asyncio.ensure_future(running.server.stop())
    await asyncio.sleep(0.1)
    notice = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert notice.status == health_pb2.HealthCheckResponse.NOT_SERVING
    await asyncio.sleep(0.6)
    assert not stopping.done(), "shutdown must wait for the in-flight call"
    await locker.execute("COMMIT")
    await locker.close()
    reply = await asyncio.wait_for(in_flight, 5)
    assert reply.preferences.personality == common_pb2.PERSONALITY_PROFESSIONAL
    await asyncio.wait_for(stopping, 10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.agents.GetPreferences(agent_pb.GetPreferencesRequest(name="users/me/preferences"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
