"""The throwaway redis-server helper."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
import redis.asyncio

from tests.support.redis_server import RedisServer


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as running:
        yield running


def test_start_answers_ping(server: RedisServer) -> None:
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    with redis.Redis.from_url(server.url) as client:
        assert client.ping() is True
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"


async def test_async_client_works(server: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(server.url)
    try:
        assert await client.ping() is True
    finally:
        await client.aclose()


def test_restart_keeps_the_url_and_drops_the_data(server: RedisServer) -> None:
    url = server.url
    with redis.Redis.from_url(url) as client:
        client.set("key", "value")

    server.restart()

    assert server.url == url
    with redis.Redis.from_url(url) as client:
        assert client.ping() is True
        assert client.get("key") is None


def test_stop_makes_connections_fail(server: RedisServer) -> None:
    server.stop()

    assert not server.running
    with (
        redis.Redis.from_url(server.url, socket_connect_timeout=1) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()
    server.stop()  # stopping twice is harmless


def test_missing_executable_fails_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(RuntimeError, match="redis-server is not installed"):
        RedisServer().start()


def test_explicit_port_is_used() -> None:
    with RedisServer() as first:
        port = first.port
    with RedisServer(port=port) as second, redis.Redis.from_url(second.url) as client:
        assert second.port == port
        assert client.ping() is True
