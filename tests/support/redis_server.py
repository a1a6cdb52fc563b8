"""A throwaway redis-server on a loopback port, owned by the test process that starts it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_port

STARTUP_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 5.0


class RedisServer:
    """Runs `redis-server` without persistence on 127.0.0.1.

    The port is chosen once, so `url` is known before start() and stays the same across restart().
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RedisServer:
        """Launch the server and wait until it answers PING; does nothing if already running."""
        if self.running:
            return self
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed or not on PATH (on Debian: apt-get install redis-server)")
        self._workdir = tempfile.TemporaryDirectory(prefix="tutorstream-redis-")
        log_path = Path(self._workdir.name) / "redis.log"
        command = [
            executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._workdir.name,
            "--logfile", str(log_path),
        ]  # fmt: skip
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._answers_ping():
            if self._process.poll() is not None or time.monotonic() >= deadline:
                log = log_path.read_text(errors="replace") if log_path.exists() else ""
                self.stop()
                raise RuntimeError(f"redis-server did not come up on port {self.port}:\n{log[-2000:]}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Terminate the server this object started, if any."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def restart(self) -> RedisServer:
        """Stop and start again on the same port; all data is gone afterwards."""
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False
