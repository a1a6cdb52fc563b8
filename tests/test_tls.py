"""TLS on the gRPC port, with real handshakes on loopback: the Python stubs, grpcurl, the client library and its
CLI, each trusting the server's CA or not; mutual TLS; and the startup refusals (plaintext on a network address,
unusable certificate files), which stop the server before it binds anything.

Certificates are made here, per test module, by a throwaway CA (server/devcerts.py on `cryptography`)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tutorstream.v1 import agent_service_pb2, agent_service_pb2_grpc
from tutorstream_client import AsyncTutorstreamClient, TutorstreamError, tls_credentials

from server.app import TutorstreamServer
from server.config import ConfigurationError, Settings
from server.core.tls import is_loopback, server_credentials
from server.devcerts import LOCAL_HOSTS, Authority
from server.embeddings.local import LocalEmbedder
from tests.conftest import TEST_JWT_SECRET, RunningServer, launch, make_settings
from tests.edge.cli import run_cli
from tests.support.clients import token_for
from tests.test_grpcurl import GRPCURL

SERVER_CLI = Path(sys.executable).parent / "tutorstream-server"


@dataclass(frozen=True)
class Certs:
    ca: Path  # issued the server's and the client's certificates
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_ca: Path  # another CA, which issued the stranger's client certificate
    stranger_cert: Path
    stranger_key: Path

    def read(self, name: str) -> bytes:
        path: Path = getattr(self, name)
        return path.read_bytes()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory = tmp_path_factory.mktemp("tls")
    ours, theirs = Authority.create(), Authority.create("stranger CA")
    server = ours.issue("tutorstream server", hosts=LOCAL_HOSTS)
    client = ours.issue("a service", client=True)
    stranger = theirs.issue("a stranger", client=True)
    files = {
        "ca": ours.cert_pem,
        "server_cert": server.cert_pem,
        "server_key": server.key_pem,
        "client_cert": client.cert_pem,
        "client_key": client.key_pem,
        "stranger_ca": theirs.cert_pem,
        "stranger_cert": stranger.cert_pem,
        "stranger_key": stranger.key_pem,
    }
    for name, data in files.items():
        (directory / f"{name}.pem").write_bytes(data)
    return Certs(**{name: directory / f"{name}.pem" for name in files})


async def _serve(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, embedder: LocalEmbedder, **tls: Any
) -> RunningServer:
    return await launch(tmp_path_factory.mktemp("tls-server"), database_url, embedder=embedder, **tls)


@pytest.fixture(scope="module")
async def tls_server(
    certs: Certs, module_database_url: str, local_embedder: LocalEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    running = await _serve(
        tmp_path_factory,
        module_database_url,
        local_embedder,
        tls_cert_file=certs.server_cert,
        tls_key_file=certs.server_key,
    )
    yield running
    await running.server.stop(0)


@pytest.fixture(scope="module")
async def mtls_server(
    certs: Certs, module_database_url: str, local_embedder: LocalEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningServer]:
    running = await _serve(
        tmp_path_factory,
        module_database_url,
        local_embedder,
        tls_cert_file=certs.server_cert,
        tls_key_file=certs.server_key,
        tls_client_ca_file=certs.ca,
    )
    yield running
    await running.server.stop(0)


async def _health(target: str, credentials: grpc.ChannelCredentials | None) -> str:
    """The overall health status, or the status code name when the call fails."""
    channel = aio.insecure_channel(target) if credentials is None else aio.secure_channel(target, credentials)
    async with channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except aio.AioRpcError as error:
            return str(error.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


# --- the gRPC port over TLS -------------------------------------------------------------------------------


async def test_stubs_that_trust_the_ca_are_served(tls_server: RunningServer, certs: Certs) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=certs.read("ca"))
    for host in ("127.0.0.1", "localhost"):
        assert await _health(f"{host}:{tls_server.server.port}", credentials) == "SERVING"
    token = token_for(tls_server.settings, "tls-student")
    async with aio.secure_channel(tls_server.target, credentials) as channel:
        preferences = await agent_service_pb2_grpc.AgentServiceStub(channel).GetPreferences(
            agent_service_pb2.GetPreferencesRequest(name="users/me/preferences"),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
    assert preferences.preferences.name == "users/tls-student/preferences"


async def test_clients_that_do_not_trust_the_ca_or_skip_tls_are_refused(
    tls_server: RunningServer, certs: Certs
) -> None:
    # The system's CAs (what a client uses by default) did not issue the server's certificate.
    assert await _health(tls_server.target, grpc.ssl_channel_credentials()) == "UNAVAILABLE"
    other_ca = grpc.ssl_channel_credentials(root_certificates=certs.read("stranger_ca"))
    assert await _health(tls_server.target, other_ca) == "UNAVAILABLE"
    # Plaintext HTTP/2 to a TLS port never gets an answer.
    assert await _health(tls_server.target, None) == "UNAVAILABLE"


async def test_mutual_tls_requires_a_client_certificate_from_the_configured_ca(
    mtls_server: RunningServer, certs: Certs
) -> None:
    ca = certs.read("ca")
    with_ours = grpc.ssl_channel_credentials(ca, certs.read("client_key"), certs.read("client_cert"))
    without = grpc.ssl_channel_credentials(ca)
    with_strangers = grpc.ssl_channel_credentials(ca, certs.read("stranger_key"), certs.read("stranger_cert"))
    assert await _health(mtls_server.target, with_ours) == "SERVING"
    assert await _health(mtls_server.target, without) == "UNAVAILABLE"
    assert await _health(mtls_server.target, with_strangers) == "UNAVAILABLE"


# --- grpcurl, the client library and its CLI --------------------------------------------------------------


async def grpcurl(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        GRPCURL, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_grpcurl_with_the_ca(tls_server: RunningServer, mtls_server: RunningServer, certs: Certs) -> None:
    code, out, err = await grpcurl("-cacert", str(certs.ca), tls_server.target, "list")
    assert code == 0, err
    assert "tutorstream.v1.ChatService" in out.split()
    code, out, err = await grpcurl("-cacert", str(certs.ca), tls_server.target, "grpc.health.v1.Health/Check")
    assert code == 0, err
    assert json.loads(out) == {"status": "SERVING"}

    code, _, err = await grpcurl(tls_server.target, "list")
    assert code != 0
    assert "certificate signed by unknown authority" in err

    client_cert = ("-cert", str(certs.client_cert), "-key", str(certs.client_key))
    code, out, err = await grpcurl("-cacert", str(certs.ca), *client_cert, mtls_server.target, "list")
    assert code == 0, err
    assert "tutorstream.v1.ChatService" in out.split()
    # grpcurl keeps retrying a refused handshake until its connect timeout (10 s unless given).
    code, _, err = await grpcurl("-connect-timeout", "2", "-cacert", str(certs.ca), mtls_server.target, "list")
    assert code != 0, "the server answered a client without a certificate"


async def test_client_library_over_tls(tls_server: RunningServer, mtls_server: RunningServer, certs: Certs) -> None:
    token = token_for(tls_server.settings, "library-user")
    async with AsyncTutorstreamClient(tls_server.target, token, credentials=tls_credentials(certs.ca)) as client:
        assert (await client.get_preferences()).name == "users/library-user/preferences"
    mutual = tls_credentials(certs.ca, certs.client_cert, certs.client_key)
    async with AsyncTutorstreamClient(mtls_server.target, token, credentials=mutual) as client:
        assert await client.health() == "SERVING"
    async with AsyncTutorstreamClient(mtls_server.target, token, credentials=tls_credentials(certs.ca)) as client:
        with pytest.raises(TutorstreamError) as refused:
            await client.health()
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE


async def test_cli_over_tls_by_option_environment_and_saved_login(
    tls_server: RunningServer, mtls_server: RunningServer, certs: Certs, tmp_path: Path
) -> None:
    result = await run_cli("--ca-file", str(certs.ca), "health", target=tls_server.target)
    assert (result.code, result.stdout.strip()) == (0, "SERVING"), result.output
    result = await run_cli("health", target=tls_server.target)
    assert result.code == 7, result.output

    mutual = ("--ca-file", str(certs.ca), "--cert-file", str(certs.client_cert), "--key-file", str(certs.client_key))
    result = await run_cli(*mutual, "health", target=mtls_server.target)
    assert (result.code, result.stdout.strip()) == (0, "SERVING"), result.output
    result = await run_cli("--ca-file", str(certs.ca), "health", target=mtls_server.target)
    assert result.code == 7, result.output

    # `login` remembers the TLS files with the server, so later commands need neither.
    config_file = tmp_path / "config.json"
    token = token_for(mtls_server.settings, "cli-user")
    result = await run_cli(*mutual, "login", "--token", token, target=mtls_server.target, config_file=config_file)
    assert result.code == 0, result.output
    assert json.loads(config_file.read_text())["tls"]["ca_file"] == str(certs.ca.resolve())
    result = await run_cli("preferences", target=mtls_server.target, config_file=config_file)
    assert result.code == 0, result.output

    missing = await run_cli("--ca-file", str(tmp_path / "absent.pem"), "health", target=tls_server.target)
    assert missing.code == 1
    assert "cannot read" in missing.stderr and "absent.pem" in missing.stderr


def test_the_environment_turns_tls_on_for_the_cli(
    certs: Certs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tutorstream_client import config

    monkeypatch.setenv("TUTORSTREAM_CONFIG", str(tmp_path / "no-login.json"))
    assert config.resolve("127.0.0.1:1", None).tls is None
    monkeypatch.setenv("TUTORSTREAM_CA_FILE", str(certs.ca))
    assert config.resolve("127.0.0.1:1", None).tls == config.Tls(ca_file=str(certs.ca))
    monkeypatch.delenv("TUTORSTREAM_CA_FILE")
    monkeypatch.setenv("TUTORSTREAM_TLS", "1")
    assert config.resolve("127.0.0.1:1", None).tls == config.Tls()


# --- refusals at startup ------------------------------------------------------------------------------------


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return make_settings(tmp_path, "postgresql://unused.invalid/none", **overrides)


def test_plaintext_is_refused_on_a_network_address_unless_allowed(tmp_path: Path, certs: Certs) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.10", "tutor.example"):
        with pytest.raises(ConfigurationError, match=rf"refusing to serve plaintext gRPC on HOST={host}"):
            server_credentials(_settings(tmp_path, host=host))
    assert server_credentials(_settings(tmp_path, host="0.0.0.0", allow_plaintext_non_loopback=True)) is None
    tls = {"tls_cert_file": certs.server_cert, "tls_key_file": certs.server_key}
    assert server_credentials(_settings(tmp_path, host="0.0.0.0", **tls)) is not None
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))


async def test_the_server_refuses_before_opening_anything(tmp_path: Path) -> None:
    # The database URL points nowhere: the refusal comes before the server touches it.
    server = TutorstreamServer(_settings(tmp_path, host="0.0.0.0"))
    with pytest.raises(ConfigurationError, match="ALLOW_PLAINTEXT_NON_LOOPBACK=true"):
        await server.start()


def _bad_files(certs: Certs, tmp_path: Path) -> dict[str, tuple[dict[str, Any], str]]:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    plain_text = tmp_path / "notes.txt"
    plain_text.write_text("not PEM at all")
    pair = {"tls_cert_file": certs.server_cert, "tls_key_file": certs.server_key}
    return {
        "missing certificate": (
            {"tls_cert_file": tmp_path / "absent.pem", "tls_key_file": certs.server_key},
            r"TLS_CERT_FILE=.*absent\.pem: cannot read it \(No such file or directory\)",
        ),
        "key of another certificate": (
            {"tls_cert_file": certs.server_cert, "tls_key_file": certs.client_key},
            "the key does not belong to the certificate",
        ),
        "not PEM": ({**pair, "tls_client_ca_file": plain_text}, r"TLS_CLIENT_CA_FILE=.*notes\.txt: not a PEM file"),
        "broken CA": ({**pair, "tls_client_ca_file": garbage}, r"TLS_CLIENT_CA_FILE=.*: no usable CA certificate"),
        "certificate without key": ({"tls_cert_file": certs.server_cert}, "TLS_CERT_FILE and TLS_KEY_FILE go together"),
        "client CA without TLS": ({"tls_client_ca_file": certs.ca}, "only asked for over TLS"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing certificate",
        "key of another certificate",
        "not PEM",
        "broken CA",
        "certificate without key",
        "client CA without TLS",
    ],
)
def test_unusable_tls_settings_are_named(case: str, certs: Certs, tmp_path: Path) -> None:
    overrides, message = _bad_files(certs, tmp_path)[case]
    with pytest.raises(ConfigurationError, match=message):
        server_credentials(_settings(tmp_path, **overrides))


async def test_serve_prints_one_line_instead_of_a_traceback(certs: Certs, tmp_path: Path) -> None:
    async def serve(**env: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            str(SERVER_CLI),
            "serve",
            env={**os.environ, "JWT_SECRET": TEST_JWT_SECRET, "DATA_DIR": str(tmp_path), **env},
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 120)
        return process.returncode or 0, stderr.decode()

    code, stderr = await serve(HOST="0.0.0.0", PORT="0")
    assert code == 2
    assert stderr.startswith("tutorstream-server: refusing to serve plaintext gRPC on HOST=0.0.0.0"), stderr
    assert "Traceback" not in stderr
    code, stderr = await serve(PORT="0", TLS_CERT_FILE=str(certs.server_cert), TLS_KEY_FILE=str(certs.client_key))
    assert code == 2
    assert "the key does not belong to the certificate" in stderr and "Traceback" not in stderr, stderr
