"""Edge processes for tests and benchmarks: Envoy rendered for free ports, the demo's static server, the web
build and the Node grpc-web probe. Each helper owns the processes it starts and stops only those."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ENVOY = VENV_BIN / "envoy"
NODE = shutil.which("node") or "node"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
WEB_BUILD = ROOT / "build" / "web"
READY_TIMEOUT = 60.0


def envoy_renderer() -> ModuleType:
    """envoy/render.py as a module (the directory is not a package: `envoy` is the Envoy wheel's name)."""
    name = "tutorstream_envoy_render"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "envoy" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def render_envoy(out: Path, **options: Any) -> Path:
    """Render envoy/envoy.yaml.in with envoy/render.py (the same path scripts/run.sh takes)."""
    arguments = [sys.executable, str(ROOT / "envoy" / "render.py"), "--out", str(out)]
    for key, value in options.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            arguments += [f"--{key.replace('_', '-')}", str(item)]
    subprocess.run(arguments, check=True, cwd=ROOT)
    return out


def validate_envoy(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config), "--disable-hot-restart", "-l", "warning"],
        capture_output=True,
        text=True,
        timeout=120,
    )


class EnvoyProcess:
    """One Envoy in its own session (it must outlive nothing but this object)."""

    def __init__(self, workdir: Path, *, grpc_port: int, web_port: int = 0, **render_options: Any) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.admin_port = free_port()
        self.config = render_envoy(
            workdir / "envoy.yaml",
            listen_port=self.port,
            admin_port=self.admin_port,
            grpc_address=f"127.0.0.1:{grpc_port}",
            web_address=f"127.0.0.1:{web_port or free_port()}",
            health_interval="0.5s",
            **render_options,
        )
        self.scheme = "https" if render_options.get("tls_cert") else "http"
        self.log_path = workdir / "envoy.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> None:
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                str(ENVOY),
                "-c",
                str(self.config),
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "-l",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    async def wait_ready(self) -> None:
        """Until the admin endpoint reports the gRPC upstream healthy (its grpc.health.v1 check passed)."""
        deadline = time.monotonic() + READY_TIMEOUT
        marker = "tutorstream_grpc::127.0.0.1"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(f"envoy exited: {self.log_path.read_text()[-3000:]}")
                try:
                    response = await client.get(f"{self.admin_url}/clusters")
                    healthy = [
                        line
                        for line in response.text.splitlines()
                        if line.startswith(marker) and "::health_flags::healthy" in line
                    ]
                    if healthy:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"envoy upstream not healthy: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class StaticWebServer:
    """clients/web/serve.py on a free port, serving the built demo."""

    def __init__(self, root: Path = WEB_BUILD) -> None:
        self.root = root
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "clients" / "web" / "serve.py"),
                "--port",
                str(self.port),
                "--root",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/index.html", timeout=1.0).raise_for_status()
                return
            except httpx.HTTPError:
                if self._process.poll() is not None:
                    raise RuntimeError("static web server exited") from None
                time.sleep(0.05)
        raise TimeoutError("static web server did not start")

    def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def build_web() -> None:
    """The demo bundle plus the third-party descriptors the probe also imports."""
    subprocess.run([NODE, str(ROOT / "clients" / "web" / "build.mjs")], check=True, cwd=ROOT, timeout=300)


def bundle_probe(out_dir: Path) -> Path:
    """tests/edge/node/probe.ts as one Node ESM file (esbuild; the web build generated its imports)."""
    out = out_dir / "probe.mjs"
    subprocess.run(
        [
            str(ESBUILD),
            str(ROOT / "tests" / "edge" / "node" / "probe.ts"),
            "--bundle",
            "--platform=node",
            "--format=esm",
            "--log-level=warning",
            f"--outfile={out}",
        ],
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    return out


async def run_node(script: Path, *args: str, env: dict[str, str], limit_seconds: float = 120.0) -> dict[str, Any]:
    """Run a Node script (without blocking the event loop the server under test runs on) and parse its JSON."""
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(script),
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit_seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise AssertionError(f"node {script.name} {args} exited {process.returncode}: {stderr.decode()[-4000:]}")
    result: dict[str, Any] = json.loads(stdout.decode())
    return result
