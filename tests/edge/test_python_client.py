"""The Python client library: the async client and its blocking facade against a running server, with
failures raised as TutorstreamError carrying the decoded google.rpc details."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from tutorstream.v1 import agent_service_pb2, common_pb2
from tutorstream_client import AsyncTutorstreamClient, TutorstreamClient, TutorstreamError
from tutorstream_client.timefmt import clock, clock_range, parse_clock, parse_range

from tests.conftest import RunningServer
from tests.support.clients import token_for


async def test_async_client_reads_and_updates_preferences(server: RunningServer) -> None:
    async with AsyncTutorstreamClient(server.target, token_for(server.settings, "ada")) as client:
        assert await client.health() == "SERVING"
        before = await client.get_preferences()
        assert before.name == "users/ada/preferences"
        changed = await client.update_preferences(
            agent_service_pb2.Preferences(personality=common_pb2.PERSONALITY_PROFESSIONAL), ["personality"]
        )
        assert changed.personality == common_pb2.PERSONALITY_PROFESSIONAL
        assert (await client.get_preferences()).personality == common_pb2.PERSONALITY_PROFESSIONAL


async def test_errors_carry_decoded_details(server: RunningServer) -> None:
    async with AsyncTutorstreamClient(server.target, token_for(server.settings, "ada")) as client:
        with pytest.raises(TutorstreamError) as raised:
            await client.update_preferences(agent_service_pb2.Preferences(), ["thème"])
    error = raised.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "thème" in error.message
    assert error.details.reason == "INVALID_ARGUMENT"
    assert error.details.domain == "tutorstream.dev"
    assert error.details.field_violations[0].subject == "update_mask.paths"
    assert error.details.request_id
    assert not error.retryable
    lines = error.explain()
    assert lines[0].startswith("INVALID_ARGUMENT: update_mask.paths")
    assert any(line.startswith("  update_mask.paths: ") for line in lines)


async def test_missing_token_is_unauthenticated(server: RunningServer) -> None:
    async with AsyncTutorstreamClient(server.target, None) as client:
        with pytest.raises(TutorstreamError) as raised:
            await client.get_preferences()
    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert raised.value.details.reason == "MISSING_CREDENTIALS"


async def test_rate_limits_report_retry_time(start_server: object) -> None:
    limited: RunningServer = await start_server(rate_default_per_minute=1)  # type: ignore[operator]
    async with AsyncTutorstreamClient(limited.target, token_for(limited.settings, "eager")) as client:
        await client.get_preferences()
        with pytest.raises(TutorstreamError) as raised:
            await client.get_preferences()
    error = raised.value
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.retryable
    assert error.details.retry_after_seconds is not None and error.details.retry_after_seconds > 0
    assert error.details.quota_violations
    assert any(line.startswith("  retry in ") for line in error.explain())


async def test_blocking_client_runs_beside_the_servers_loop(server: RunningServer) -> None:
    token = token_for(server.settings, "bea")

    def use_blocking_client() -> tuple[str, str, grpc.StatusCode]:
        with TutorstreamClient(server.target, token) as client:
            status = client.health()
            name = client.get_preferences().name
            try:
                client.update_preferences(agent_service_pb2.Preferences(), [])
            except TutorstreamError as error:
                return status, name, error.code
        raise AssertionError("an empty update mask was accepted")

    status, name, code = await asyncio.to_thread(use_blocking_client)
    assert (status, name, code) == ("SERVING", "users/bea/preferences", grpc.StatusCode.INVALID_ARGUMENT)


def test_blocking_client_rejects_unknown_attributes() -> None:
    with TutorstreamClient("127.0.0.1:1") as client, pytest.raises(AttributeError):
        client.no_such_method()


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0.0), ("83", 83.0), ("1:23", 83.0), ("1:02:03", 3723.0), ("0:07.5", 7.5)]
)
def test_parse_clock(text: str, seconds: float) -> None:
    assert parse_clock(text) == seconds


@pytest.mark.parametrize("text", ["", "1:", "a:10", "1:60", "-5", "1:2:3:4"])
def test_parse_clock_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_clock(text)


def test_ranges_and_formatting() -> None:
    assert parse_range("1:00-2:30") == (60.0, 150.0)
    with pytest.raises(ValueError):
        parse_range("2:30-1:00")
    with pytest.raises(ValueError):
        parse_range("2:30")
    assert clock(83.9) == "01:23"
    assert clock(3723) == "1:02:03"
    assert clock_range(60, 150) == "01:00–02:30"
