"""The server under test: a real `tutorstream-server serve` process, its health, memory, metrics and log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "soak-secret-" + "x" * 40
STARTUP_SECONDS = 180.0
STOP_SECONDS = 60.0
TASKS_METRIC = "tutorstream_asyncio_tasks"
LOG_LEVELS = ("WARNING", "ERROR", "CRITICAL")


class ServerProcess:
    """`serve` in a subprocess with its own process group, a log file and fixed ports."""

    def __init__(self, workdir: Path, *, database_url: str, redis_url: str, upstream_url: str, api_key: str) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log_path = workdir / "tutorstream.log"
        self.target = f"127.0.0.1:{self.port}"
        self.env = {
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "METRICS_PORT": str(self.metrics_port),
            "DATA_DIR": str(workdir / "data"),
            "DATABASE_URL": database_url,
            "MIGRATE_ON_START": "true",
            "REDIS_URL": redis_url,
            "JWT_SECRET": JWT_SECRET,
            "OPENAI_API_KEY": api_key,
            "OPENAI_BASE_URL": upstream_url,
            "EMBEDDING_PROVIDER": "openai",
            "SEED_DEMO_ON_START": "false",
            "RUN_WORKERS_IN_PROCESS": "true",
            "JOB_POLL_SECONDS": "1",
            "SHUTDOWN_NOTICE_SECONDS": "0.2",
            "GRACE_SECONDS": "10",
            # The soak measures the server under faults, not the per-user limits: keep them out of the way.
            "RATE_CHAT_PER_MINUTE": "100000",
            "RATE_HINT_PER_MINUTE": "100000",
            "RATE_QUIZ_PER_MINUTE": "100000",
            "RATE_AGENT_PER_MINUTE": "100000",
            "RATE_INGEST_PER_MINUTE": "100000",
            "RATE_DEFAULT_PER_MINUTE": "100000",
            "DAILY_TOKEN_BUDGET": "1000000000",
            "MONTHLY_TOKEN_BUDGET": "1000000000",
            "MAX_CHAT_STREAMS_PER_USER": "20",
            "MAX_WATCH_STREAMS_PER_USER": "20",
            # Idle watch sessions stay loaded this long: short enough that their number levels off within
            # the warm-up (the default, 10 minutes, is longer than a whole run).
            "WATCH_SESSION_IDLE_SECONDS": "20",
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-c", "from server.cli import app; app(['serve'])"]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""

    async def wait_serving(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_SECONDS
        while loop.time() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError("tutorstream exited during startup:\n" + self.log_tail())
            if await self.health() == "SERVING":
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("tutorstream did not become ready:\n" + self.log_tail())

    async def health(self) -> str:
        """The overall grpc.health.v1 status, or the RPC's error code name."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            except grpc.aio.AioRpcError as error:
                code: str = error.code().name
                return code
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return name

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line for the server process")

    async def asyncio_tasks(self, http: httpx.AsyncClient) -> int | None:
        """`tutorstream_asyncio_tasks` from the metrics endpoint; None when the endpoint does not answer."""
        try:
            response = await http.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        for family in text_string_to_metric_families(response.text):
            if family.name == TASKS_METRIC:
                for sample in family.samples:
                    return int(sample.value)
        return None

    def terminate(self) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL to the group if it hangs: reported as -9)."""
        process = self._process
        if process is None:
            raise RuntimeError("the server was never started")
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def kill(self) -> None:
        """Last-resort cleanup for a run that failed before terminate()."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def log_levels(self) -> tuple[Counter[str], list[str]]:
        """Log lines at WARNING and above by level, and the first few ERROR/CRITICAL lines."""
        levels: Counter[str] = Counter()
        errors: list[str] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            fields = line.split(" ", 3)
            if len(fields) >= 3 and fields[2] in LOG_LEVELS:
                levels[fields[2]] += 1
                if fields[2] != "WARNING" and len(errors) < 5:
                    errors.append(line[:300])
            elif line.startswith("Traceback"):
                levels["Traceback"] += 1
        return levels, errors
