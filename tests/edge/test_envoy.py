"""Envoy in front of a real server: the config itself, then grpc-web (Connect-ES under Node, and raw frames),
native gRPC through the edge, CORS, header hardening and the demo's static files."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from google.rpc import status_pb2
from grpc import aio
from tutorstream.v1 import agent_service_pb2, agent_service_pb2_grpc, chat_service_pb2

from tests.edge.conftest import Edge
from tests.edge.grpcweb import call
from tests.edge.support import ROOT, envoy_renderer, render_envoy, run_node, validate_envoy

renderer = envoy_renderer()
PROFILES = renderer.PROFILES
render = renderer.render
streaming_methods = renderer.streaming_methods

OTHER_ORIGIN = "http://attacker.example"


def _load(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    listener = config["static_resources"]["listeners"][0]
    typed: dict[str, Any] = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return typed


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = _hcm(config)["route_config"]["virtual_hosts"][0]["routes"]
    return routes


# --- the configuration ------------------------------------------------------------------------------


def test_committed_configs_are_rendered_from_the_template() -> None:
    stale = "envoy config is stale (e.g. a streaming RPC was added): run `python envoy/render.py --write`"
    assert (ROOT / "envoy" / "envoy.yaml").read_text() == render(PROFILES["local"]), stale
    assert (ROOT / "envoy" / "envoy.compose.yaml").read_text() == render(PROFILES["compose"]), stale


@pytest.mark.parametrize("name", ["envoy.yaml", "envoy.compose.yaml"])
def test_committed_configs_validate(name: str) -> None:
    result = validate_envoy(ROOT / "envoy" / name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_rendered_test_config_validates(tmp_path: Path) -> None:
    config = render_envoy(
        tmp_path / "envoy.yaml",
        listen_port=18080,
        admin_port=19901,
        grpc_address="127.0.0.1:50999",
        allowed_origin=["http://127.0.0.1:18080", "https://school.example"],
    )
    result = validate_envoy(config)
    assert result.returncode == 0, result.stdout + result.stderr
    origins = _hcm(_load(config.read_text()))["route_config"]["virtual_hosts"][0]["typed_per_filter_config"]
    matches = origins["envoy.filters.http.cors"]["allow_origin_string_match"]
    assert matches == [{"exact": "http://127.0.0.1:18080"}, {"exact": "https://school.example"}]


def test_filters_run_grpc_web_then_cors_then_router() -> None:
    filters = [f["name"] for f in _hcm(_load(render(PROFILES["local"])))["http_filters"]]
    assert filters == ["envoy.filters.http.grpc_web", "envoy.filters.http.cors", "envoy.filters.http.router"]


def test_every_streaming_rpc_has_a_long_lived_route() -> None:
    routes = _routes(_load(render(PROFILES["local"])))
    by_path = {route["match"].get("path"): route["route"] for route in routes if "path" in route["match"]}
    expected = {
        "/tutorstream.v1.ChatService/StreamChat",
        "/tutorstream.v1.AgentService/WatchVideo",
        "/tutorstream.v1.AgentService/StreamInterventions",
        "/tutorstream.v1.TranscriptService/WatchIngestJob",
        "/grpc.health.v1.Health/Watch",
    }
    assert expected <= set(streaming_methods())
    for path in streaming_methods():
        assert by_path[path]["timeout"] == "0s", path
        assert by_path[path]["idle_timeout"] == "0s", path
        assert by_path[path]["max_stream_duration"] == {"grpc_timeout_header_max": "0s"}
    unary = next(r for r in routes if r["match"].get("prefix") == "/tutorstream.v1.")
    assert unary["route"]["timeout"] == "60s"
    # Streaming routes must come before the catch-all API prefix, or they would inherit its timeout.
    assert routes.index(unary) > max(
        i for i, r in enumerate(routes) if r["match"].get("path") in set(streaming_methods())
    )


def test_edge_hardening() -> None:
    config = _load(render(PROFILES["compose"]))
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    hcm = _hcm(config)
    assert hcm["use_remote_address"] is True
    assert hcm["common_http_protocol_options"]["headers_with_underscores_action"] == "REJECT_REQUEST"
    assert hcm["http2_protocol_options"]["max_concurrent_streams"] == 100
    assert hcm["http2_protocol_options"]["initial_stream_window_size"] == 65536
    assert hcm["max_request_headers_kb"] == 32
    assert hcm["request_headers_timeout"] == "10s"
    monitors = {m["name"] for m in config["overload_manager"]["resource_monitors"]}
    assert "envoy.resource_monitors.global_downstream_max_connections" in monitors
    listener = config["static_resources"]["listeners"][0]
    assert listener["per_connection_buffer_limit_bytes"] == 32768
    grpc_cluster = config["static_resources"]["clusters"][0]
    assert grpc_cluster["health_checks"][0]["grpc_health_check"] == {"service_name": ""}
    protocol = grpc_cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in protocol["explicit_http_config"]
    cors = hcm["route_config"]["virtual_hosts"][0]["typed_per_filter_config"]["envoy.filters.http.cors"]
    exposed = {h.strip() for h in cors["expose_headers"].split(",")}
    assert exposed == {"grpc-status", "grpc-message", "grpc-status-details-bin"}


# --- live, through Envoy ----------------------------------------------------------------------------


def _user() -> str:
    return f"edge-{uuid.uuid4().hex[:8]}"


async def test_unary_over_grpc_web(edge: Edge, probe: Path) -> None:
    user = _user()
    result = await run_node(probe, "unary", env={"BASE_URL": edge.base_url, "TOKEN": edge.token(user)})
    assert result == {"name": f"users/{user}/preferences", "personality": 1}


async def test_server_streaming_over_grpc_web(edge: Edge, probe: Path) -> None:
    result = await run_node(probe, "health-watch", env={"BASE_URL": edge.base_url})
    assert result == {"statuses": [1]}


async def test_stream_chat_over_grpc_web(edge: Edge, probe: Path) -> None:
    result = await run_node(
        probe,
        "stream-chat",
        env={"BASE_URL": edge.base_url, "TOKEN": edge.token(_user()), "QUESTION": "What is a flex container?"},
    )
    chunks = result["chunks"]
    assert len(chunks) >= 3, chunks
    assert all(chunk["finishReason"] == 0 for chunk in chunks[:-1])
    assert chunks[-1]["finishReason"] == 1
    assert all(chunk["text"] for chunk in chunks[:-1])


async def test_streaming_errors_carry_details(edge: Edge, probe: Path) -> None:
    env = {"BASE_URL": edge.base_url, "TOKEN": edge.token(_user())}
    invalid = await run_node(probe, "stream-error", env=env)
    assert invalid["codeName"] == "INVALID_ARGUMENT"
    assert "does-not-exist-ü" in invalid["message"]
    assert invalid["fieldViolations"][0]["subject"] == "session"
    missing = await run_node(probe, "stream-error", env={**env, "SESSION": f"sessions/{uuid.uuid4().hex}"})
    assert missing["codeName"] == "NOT_FOUND"
    assert missing["reason"] and missing["requestId"]


async def test_error_details_with_unicode_reach_the_browser_client(edge: Edge, probe: Path) -> None:
    result = await run_node(
        probe, "update-unicode-error", env={"BASE_URL": edge.base_url, "TOKEN": edge.token(_user())}
    )
    assert result["failed"] is True
    assert result["codeName"] == "INVALID_ARGUMENT"
    assert "thème_préféré_😀" in result["message"]
    assert result["reason"] == "INVALID_ARGUMENT"
    assert result["domain"] == "tutorstream.dev"
    assert result["fieldViolations"][0]["subject"] == "update_mask.paths"
    assert "thème_préféré_😀" in result["fieldViolations"][0]["description"]
    assert len(result["requestId"]) >= 16


async def test_unauthenticated_is_explained(edge: Edge, probe: Path) -> None:
    forged = edge.token(_user())[:-4] + "AAAA"
    result = await run_node(probe, "unauthenticated", env={"BASE_URL": edge.base_url, "TOKEN": forged})
    assert result["codeName"] == "UNAUTHENTICATED"
    assert result["reason"] == "INVALID_SIGNATURE"
    assert result["title"] == "Please sign in again"


async def test_errors_are_trailers_only_on_the_wire(edge: Edge) -> None:
    request = agent_service_pb2.UpdatePreferencesRequest(
        preferences=agent_service_pb2.Preferences(name="users/me/preferences")
    )
    request.update_mask.paths.append("thème")
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await call(
            client,
            edge.base_url,
            "/tutorstream.v1.AgentService/UpdatePreferences",
            request,
            token=edge.token(_user()),
        )
    assert reply.http_status == 200
    assert reply.trailers_only
    assert reply.grpc_status == 3
    assert "thème" in reply.grpc_message
    encoded = reply.headers["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert status.code == 3
    assert {d.type_url.rsplit(".", 1)[-1] for d in status.details} >= {"ErrorInfo", "BadRequest", "RequestInfo"}


async def test_streaming_errors_are_trailers_only_on_the_wire(edge: Edge) -> None:
    request = chat_service_pb2.StreamChatRequest(session=f"sessions/{uuid.uuid4().hex}", message="hello")
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await call(
            client, edge.base_url, "/tutorstream.v1.ChatService/StreamChat", request, token=edge.token(_user())
        )
    assert reply.trailers_only
    assert reply.grpc_status == 5
    assert "grpc-status-details-bin" in reply.headers


async def test_cors_preflight_allowed_for_the_configured_origin(edge: Edge) -> None:
    origin = f"http://127.0.0.1:{edge.envoy.port}"
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.options(
            f"{edge.base_url}/tutorstream.v1.AgentService/GetPreferences",
            headers={
                "origin": origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization,content-type,x-grpc-web,x-user-agent",
            },
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    allowed_headers = response.headers["access-control-allow-headers"]
    assert "authorization" in allowed_headers and "x-grpc-web" in allowed_headers


async def test_cors_preflight_refused_for_another_origin(edge: Edge) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.options(
            f"{edge.base_url}/tutorstream.v1.AgentService/GetPreferences",
            headers={"origin": OTHER_ORIGIN, "access-control-request-method": "POST"},
        )
    # Envoy answers the preflight itself (it is not forwarded to the gRPC server) without allowing the
    # origin, so a browser refuses the actual request.
    assert "access-control-allow-origin" not in response.headers
    assert response.content == b""


async def test_actual_response_exposes_grpc_headers_to_the_allowed_origin(edge: Edge) -> None:
    origin = f"http://localhost:{edge.envoy.port}"
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await call(
            client,
            edge.base_url,
            "/tutorstream.v1.AgentService/GetPreferences",
            agent_service_pb2.GetPreferencesRequest(name="users/me/preferences"),
            token=edge.token(_user()),
            headers={"origin": origin},
        )
        other = await call(
            client,
            edge.base_url,
            "/tutorstream.v1.AgentService/GetPreferences",
            agent_service_pb2.GetPreferencesRequest(name="users/me/preferences"),
            token=edge.token(_user()),
            headers={"origin": OTHER_ORIGIN},
        )
    assert reply.grpc_status == 0 and len(reply.messages) == 1
    assert reply.headers["access-control-allow-origin"] == origin
    exposed = {h.strip() for h in reply.headers["access-control-expose-headers"].split(",")}
    assert {"grpc-status", "grpc-message", "grpc-status-details-bin"} <= exposed
    assert "access-control-allow-origin" not in other.headers


async def test_native_grpc_passes_through_the_edge(edge: Edge) -> None:
    user = _user()
    token = edge.token(user)
    async with aio.insecure_channel(f"127.0.0.1:{edge.envoy.port}") as channel:
        stub = agent_service_pb2_grpc.AgentServiceStub(channel)
        response = await stub.GetPreferences(
            agent_service_pb2.GetPreferencesRequest(name="users/me/preferences"),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=30,
        )
    assert response.preferences.name == f"users/{user}/preferences"


async def test_headers_with_underscores_are_rejected(edge: Edge) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{edge.base_url}/", headers={"x_forwarded_user": "admin"})
    assert response.status_code == 400


async def test_demo_page_is_served_on_the_same_origin(edge: Edge) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        page = await client.get(f"{edge.base_url}/")
        bundle = await client.get(f"{edge.base_url}/app.js")
        missing = await client.get(f"{edge.base_url}/nope.txt")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404


async def test_a_huge_submitted_value_is_a_precise_error_through_the_edge(edge: Edge) -> None:
    """A 100,000-character name used to come back whole in the status, which Envoy answered with HTTP 502."""
    request = chat_service_pb2.GetSessionRequest(name="sessions/" + "x" * 100_000)
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await call(
            client, edge.base_url, "/tutorstream.v1.ChatService/GetSession", request, token=edge.token(_user())
        )
    assert reply.http_status == 200
    assert reply.grpc_status in (3, 5)  # INVALID_ARGUMENT or NOT_FOUND, never UNAVAILABLE or a protocol error
    assert len(reply.grpc_message) < 2_000
    assert sum(len(value) for value in reply.headers.values()) < 16_000
