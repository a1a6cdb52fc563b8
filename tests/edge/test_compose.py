"""compose.yaml and the Dockerfile, checked without a container engine: the Compose specification's JSON schema
(vendored by check-jsonschema, offline) plus consistency with the local stack (ports, settings, commands)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from tutorstream_client import cli as client_cli

from server import cli as server_cli
from server.config import ConfigurationError, Settings
from server.core.tls import server_credentials
from tests.edge.support import ROOT, envoy_renderer

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
APP_SERVICES = ("migrate", "seed", "server", "worker")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_matches_the_compose_specification() -> None:
    result = _validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    health_check:\n", 1))
    result = _validate(broken)
    assert result.returncode == 1
    assert "health_check" in result.stdout


def test_the_stack_has_every_part() -> None:
    found = services()
    assert set(found) >= {"postgres", "redis", "migrate", "seed", "server", "worker", "web", "envoy"}
    assert found["postgres"]["image"].startswith("pgvector/pgvector:")
    assert found["redis"]["image"].startswith("redis:")
    assert found["server"]["deploy"]["replicas"] >= 2
    assert found["worker"]["deploy"]["replicas"] >= 1
    assert found["server"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert found["envoy"]["depends_on"]["server"]["condition"] == "service_healthy"
    for name, service in found.items():
        image = service.get("image", "")
        assert not image.endswith(":latest") and ":" in image, f"{name}: pin the image tag"


def test_app_services_run_real_server_commands() -> None:
    commands = set(typer.main.get_command(server_cli.app).commands)  # type: ignore[attr-defined]
    assert {"serve", "migrate", "worker", "seed-demo"} <= commands
    for name in APP_SERVICES:
        command = services()[name]["command"]
        assert command[0] == "tutorstream-server", name
        assert command[1] in commands, f"{name}: no `{command[1]}` command"
    health = services()["server"]["healthcheck"]["test"]
    assert health[1:3] == ["tutorstream", "health"]
    assert "health" in typer.main.get_command(client_cli.app).commands  # type: ignore[attr-defined]


def test_app_environment_names_are_settings() -> None:
    """Every variable the app services set is a field of server.config.Settings (no typo goes unnoticed)."""
    fields = {name.upper() for name in Settings.model_fields}
    for name in APP_SERVICES:
        environment = services()[name]["environment"]
        unknown = set(environment) - fields
        assert not unknown, f"{name}: {unknown}"
    server_env = services()["server"]["environment"]
    assert server_env["RUN_WORKERS_IN_PROCESS"] == "false"
    assert server_env["HOST"] == "0.0.0.0"


def test_the_server_service_passes_the_startup_check_for_plaintext() -> None:
    """HOST=0.0.0.0 without TLS starts only with the explicit allowance: the port is on the compose network,
    reached by Envoy alone, and Envoy is published on the host's loopback."""
    environment = services()["server"]["environment"]
    literal = {name.lower(): value for name, value in environment.items() if not str(value).startswith("${")}
    settings = Settings(_env_file=None, **literal)  # type: ignore[call-arg]
    assert settings.host == "0.0.0.0" and settings.allow_plaintext_non_loopback
    assert server_credentials(settings) is None
    with pytest.raises(ConfigurationError, match="refusing to serve plaintext"):
        server_credentials(settings.model_copy(update={"allow_plaintext_non_loopback": False}))


def test_ports_agree_with_the_local_stack_and_the_edge_config() -> None:
    renderer = envoy_renderer()
    local, containers = renderer.PROFILES["local"], renderer.PROFILES["compose"]
    found = services()
    assert found["server"]["environment"]["PORT"] == str(containers.grpc_port) == str(local.grpc_port)
    assert str(Settings.model_fields["port"].default) == found["server"]["environment"]["PORT"]
    assert found["server"]["expose"] == [str(containers.grpc_port)]
    assert containers.grpc_host == "server" and containers.web_host == "web"
    assert found["web"]["expose"] == [str(containers.web_port)]
    web_command = found["web"]["command"]
    assert web_command[web_command.index("--port") + 1] == str(containers.web_port) == str(local.web_port)
    assert found["envoy"]["ports"] == [f"127.0.0.1:{local.listen_port}:{containers.listen_port}"]
    assert "./envoy/envoy.compose.yaml:/etc/envoy/envoy.yaml:ro" in found["envoy"]["volumes"]
    run_script = (ROOT / "scripts" / "run.sh").read_text()
    assert f"ENVOY_PORT:-{local.listen_port}" in run_script
    assert f"WEB_PORT:-{local.web_port}" in run_script


def _stages() -> list[tuple[str, list[str]]]:
    stages: list[tuple[str, list[str]]] = []
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("FROM "):
            stages.append((line, []))
        elif line and not line.startswith("#") and stages:
            stages[-1][1].append(line)
    return stages


def test_dockerfile_copies_files_that_exist_and_runs_unprivileged() -> None:
    stages = _stages()
    assert stages, "no FROM"
    for header, _ in stages:
        image = header.split()[1]
        assert ":" in image or image in {"runtime"}, header
    for _, lines in stages:
        for line in lines:
            if line.startswith("COPY ") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    final = stages[-1][1]
    assert any(line.startswith("USER ") and "root" not in line for line in final)
    assert final[-1] == 'CMD ["tutorstream-server", "serve"]'
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "node_modules", ".data", "build"} <= set(ignored)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_share_the_image(name: str) -> None:
    assert services()[name]["image"] == "tutorstream:local"
    assert services()[name]["build"]["dockerfile"] == "Dockerfile"


def test_dockerfile_installs_the_way_the_makefile_does() -> None:
    """The same locks and the same installers: Python from requirements/*.lock, npm from package-lock.json."""
    lines = [line for _, stage in _stages() for line in stage]
    makefile = (ROOT / "Makefile").read_text()
    assert "scripts/lock.py sync $(PY) requirements/dev.lock" in makefile
    assert any("scripts/lock.py sync /opt/venv/bin/python requirements/runtime.lock" in line for line in lines)
    assert not any(line.startswith("RUN pip install") for line in lines), "the image must install from the lock"
    npm_installs = [line for line in lines if "npm " in line]
    assert npm_installs == ["RUN npm ci --no-audit --no-fund --loglevel=error"]
    assert "\tnpm ci --no-audit --no-fund --loglevel=error\n" in makefile
