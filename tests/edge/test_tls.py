"""The edge over TLS, as `TLS=1 make run` sets it up: Envoy serves https (ALPN h2 and http/1.1) and reaches a
server that requires client certificates over mutual TLS; the demo runs in Chromium over https, native gRPC
passes through, and a listener on a network address is never rendered in plaintext by accident."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tutorstream.v1 import agent_service_pb2, agent_service_pb2_grpc

from server.devcerts import DevCerts, Issued, spki_sha256, write_dev_certs
from server.embeddings.local import LocalEmbedder
from tests.conftest import RunningServer
from tests.edge.conftest import start_module_server, stop_module_server
from tests.edge.support import ROOT, EnvoyProcess, StaticWebServer, run_node
from tests.support.clients import token_for

DEMO_SCRIPT = ROOT / "tests" / "edge" / "browser" / "demo.mjs"


@dataclass
class TlsEdge:
    certs: DevCerts
    server_cert: Issued  # what Envoy's listener and the gRPC server present
    server: RunningServer
    envoy: EnvoyProcess


@pytest.fixture(scope="module")
async def tls_edge(
    demo_server: RunningServer,
    demo_database_url: str,
    edge_embedder: LocalEmbedder,
    static_web: StaticWebServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[TlsEdge]:
    """A replica on the seeded demo database that requires client certificates, behind Envoy over TLS."""
    workdir = tmp_path_factory.mktemp("tls-edge")
    certs, server_cert = write_dev_certs(workdir / "tls")
    running = await start_module_server(
        workdir,
        demo_database_url,
        edge_embedder,
        tls_cert_file=certs.server_cert,
        tls_key_file=certs.server_key,
        tls_client_ca_file=certs.ca,
    )
    envoy = EnvoyProcess(
        workdir,
        grpc_port=running.server.port,
        web_port=static_web.port,
        tls_cert=certs.server_cert,
        tls_key=certs.server_key,
        upstream_ca=certs.ca,
        upstream_cert=certs.client_cert,
        upstream_key=certs.client_key,
    )
    envoy.start()
    try:
        # Ready means Envoy's grpc.health.v1 checks pass: over TLS, with Envoy's client certificate.
        await envoy.wait_ready()
        yield TlsEdge(certs=certs, server_cert=server_cert, server=running, envoy=envoy)
    finally:
        envoy.stop()
        await stop_module_server(running)


def _handshake(port: int, alpn: list[str], cafile: Path | None) -> str | None:
    """The protocol the listener selects in a TLS handshake verified against `cafile` (None: system CAs)."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    context.set_alpn_protocols(alpn)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.selected_alpn_protocol()


async def test_the_listener_speaks_tls_with_h2_and_http1(tls_edge: TlsEdge) -> None:
    port, ca = tls_edge.envoy.port, tls_edge.certs.ca
    assert await asyncio.to_thread(_handshake, port, ["h2", "http/1.1"], ca) == "h2"
    assert await asyncio.to_thread(_handshake, port, ["http/1.1"], ca) == "http/1.1"
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.to_thread(_handshake, port, ["h2"], None)
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca)), timeout=10) as client:
        page = await client.get(f"{tls_edge.envoy.base_url}/")
        assert page.status_code == 200 and "<html" in page.text.lower()
    async with httpx.AsyncClient(timeout=10) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_envoy_reaches_the_server_over_mutual_tls(tls_edge: TlsEdge) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        stats = (await client.get(f"{tls_edge.envoy.admin_url}/stats?filter=tutorstream_grpc.ssl.handshake$")).text
    handshakes = int(stats.split(":")[-1])
    assert handshakes >= 1, stats
    # A client without Envoy's certificate is turned away by the server itself.
    plain_tls = grpc.ssl_channel_credentials(tls_edge.certs.ca.read_bytes())
    async with aio.secure_channel(tls_edge.server.target, plain_tls) as channel:
        with pytest.raises(aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_native_grpc_through_the_edge_over_tls(tls_edge: TlsEdge) -> None:
    token = token_for(tls_edge.server.settings, "edge-tls-user")
    credentials = grpc.ssl_channel_credentials(tls_edge.certs.ca.read_bytes())
    async with aio.secure_channel(f"localhost:{tls_edge.envoy.port}", credentials) as channel:
        status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        answer = await agent_service_pb2_grpc.AgentServiceStub(channel).GetPreferences(
            agent_service_pb2.GetPreferencesRequest(name="users/me/preferences"),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
    assert answer.preferences.name == "users/edge-tls-user/preferences"


async def test_the_demo_over_https_in_chromium(tls_edge: TlsEdge, tmp_path: Path) -> None:
    """Chromium trusts exactly the listener's public key (--ignore-certificate-errors-spki-list): the page, its
    scripts and every Connect-ES call go over https, and any other certificate would still fail."""
    assert tls_edge.envoy.base_url.startswith("https://")
    token = token_for(tls_edge.server.settings, f"https-{uuid.uuid4().hex[:8]}")
    env = {
        "BASE_URL": tls_edge.envoy.base_url,
        "TOKEN": token,
        "VIDEO_ID": "flexbox-layout",
        "USER_DATA_DIR": str(tmp_path / "chromium-profile"),
        "SPKI_PINS": tls_edge.server_cert.spki_sha256,
    }
    result = await run_node(DEMO_SCRIPT, "open", env=env, limit_seconds=240)
    opened = result["open"]
    assert opened["who"].startswith("https-")
    assert opened["title"] == "CSS Flexbox Layout"
    assert opened["cues"] > 20
    assert result["consoleErrors"] == []

    # Pinned to another key (the client certificate's), the same page is refused.
    another_key = spki_sha256(tls_edge.certs.client_cert.read_bytes())
    with pytest.raises(AssertionError, match="ERR_CERT_AUTHORITY_INVALID"):
        await run_node(DEMO_SCRIPT, "open", env={**env, "SPKI_PINS": another_key}, limit_seconds=240)


def _render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "envoy" / "render.py"), *args], capture_output=True, text=True, timeout=60
    )


def test_a_plaintext_listener_on_a_network_address_needs_an_explicit_allowance(tmp_path: Path) -> None:
    refused = _render("--listen-address", "0.0.0.0")
    assert refused.returncode == 2
    assert "refusing a plaintext listener on 0.0.0.0" in refused.stderr
    assert _render("--listen-address", "0.0.0.0", "--allow-plaintext").returncode == 0
    with_tls = _render("--listen-address", "0.0.0.0", "--tls-cert", "c.pem", "--tls-key", "k.pem")
    assert with_tls.returncode == 0, with_tls.stderr
    assert '- "h2"' in with_tls.stdout and '- "http/1.1"' in with_tls.stdout
    assert "https://127.0.0.1:8080" in with_tls.stdout
    assert _render("--tls-cert", "c.pem").returncode == 2
