"""The batched writer of player events, interventions and acknowledgements (one per process).

Rows are buffered in memory and written in one transaction per batch: every `watch_flush_interval_seconds`,
as soon as `watch_flush_batch` rows wait, when a stream ends (`flush()`), and on shutdown (`close()`, a
runtime closer). Each table gets one set-based INSERT ... SELECT FROM jsonb_array_elements(...) per batch.

Never lost, never unbounded: when the database is slow or down, a failed batch is kept (in order) and
retried with backoff; once `watch_writer_max_pending` rows wait, `wait_for_room` waits. Event intake
therefore slows to the database's pace (a WatchVideo stream stops reading, so HTTP/2 flow control pushes back
on the client; PublishVideoEvents answers later) instead of growing memory or dropping events.

Rows of a watch session that no longer exists (its user was deleted meanwhile) are skipped by the INSERTs
(`WHERE EXISTS`), so they cannot wedge the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any

from sqlalchemy import text

from server.core import metrics
from server.core.db import Database

log = logging.getLogger("tutorstream.progress")

MAX_RETRY_DELAY_SECONDS = 5.0
CLOSE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class EventRow:
    watch_session_id: str
    user_id: str
    video_id: str
    event_id: str
    type: str
    position: float
    seek_from: float | None
    seek_to: float | None
    rate: float | None
    intervention_id: str
    event_time: float
    client_time: float | None
    receive_time: float


@dataclass(frozen=True, slots=True)
class InterventionRecord:
    id: str
    watch_session_id: str
    user_id: str
    video_id: str
    course_id: str
    type: str
    reason: str
    reason_text: str
    position: float
    start: float
    end: float
    content: str
    citation: str | None  # JSON text
    quiz: str
    interaction_id: str
    status: str
    trigger_time: float


@dataclass(frozen=True, slots=True)
class AckRow:
    intervention_id: str
    watch_session_id: str
    user_id: str
    action: str
    event_time: float


@dataclass
class _Batch:
    events: list[EventRow] = field(default_factory=list)
    interventions: list[InterventionRecord] = field(default_factory=list)
    acks: list[AckRow] = field(default_factory=list)
    progress: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.events) + len(self.interventions) + len(self.acks)

    def empty(self) -> bool:
        return not len(self) and not self.progress

    def prepend(self, older: _Batch) -> None:
        self.events[:0] = older.events
        self.interventions[:0] = older.interventions
        self.acks[:0] = older.acks
        self.progress = {**older.progress, **self.progress}


# Each batch travels as one JSON array of rows (arrays in column order: the row dataclass's field order) per
# statement: serialising it is a single C call, where one parameter per column has the driver convert every value
# of every column in Python.
# Every number in a row is finite (the engine accepted nothing else), so each is valid JSON.
_INSERT_EVENTS = text(
    """
    INSERT INTO video_events (watch_session_id, user_id, video_id, event_id, type, position_seconds,
        seek_from_seconds, seek_to_seconds, playback_rate, intervention_id, event_time, client_time, receive_time)
    SELECT t.r->>0, t.r->>1, t.r->>2, t.r->>3, t.r->>4, CAST(t.r->>5 AS float8), CAST(t.r->>6 AS float8),
        CAST(t.r->>7 AS float8), CAST(t.r->>8 AS float8), t.r->>9, to_timestamp(CAST(t.r->>10 AS float8)),
        to_timestamp(CAST(t.r->>11 AS float8)), to_timestamp(CAST(t.r->>12 AS float8))
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS t(r, n)
    WHERE EXISTS (SELECT 1 FROM watch_sessions w WHERE w.id = t.r->>0)
    ORDER BY t.n
    ON CONFLICT (watch_session_id, event_id) WHERE event_id <> '' DO NOTHING
    """
)

_INSERT_INTERVENTIONS = text(
    """
    INSERT INTO interventions (id, watch_session_id, user_id, video_id, course_id, type, reason, reason_text,
        position_seconds, start_seconds, end_seconds, content, citation, quiz, interaction_id, status, trigger_time)
    SELECT t.r->>0, t.r->>1, t.r->>2, t.r->>3, t.r->>4, t.r->>5, t.r->>6, t.r->>7, CAST(t.r->>8 AS float8),
        CAST(t.r->>9 AS float8), CAST(t.r->>10 AS float8), t.r->>11, CAST(t.r->>12 AS jsonb), t.r->>13, t.r->>14,
        t.r->>15, to_timestamp(CAST(t.r->>16 AS float8))
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS t(r)
    WHERE EXISTS (SELECT 1 FROM watch_sessions w WHERE w.id = t.r->>1)
    ON CONFLICT (id) DO NOTHING
    """
)

_INSERT_ACKS = text(
    """
    INSERT INTO intervention_acks (intervention_id, watch_session_id, user_id, action, event_time)
    SELECT t.r->>0, t.r->>1, t.r->>2, t.r->>3, to_timestamp(CAST(t.r->>4 AS float8))
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS t(r)
    WHERE EXISTS (SELECT 1 FROM interventions i WHERE i.id = t.r->>0)
    ON CONFLICT (intervention_id, action) DO NOTHING
    RETURNING (SELECT i.type FROM interventions i WHERE i.id = intervention_acks.intervention_id), action
    """
)

_UPDATE_PROGRESS = text(
    """
    UPDATE watch_sessions w SET watched_seconds = greatest(w.watched_seconds, CAST(t.r->>1 AS float8)),
        last_position_seconds = CAST(t.r->>2 AS float8), update_time = now()
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS t(r)
    WHERE w.id = t.r->>0
    """
)


# A row's values in its dataclass's field order, which is the column order its statement reads.
_COLUMNS: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    row_type: attrgetter(*(column.name for column in fields(row_type)))
    for row_type in (EventRow, InterventionRecord, AckRow)
}


def _json_rows(rows: Sequence[EventRow | InterventionRecord | AckRow]) -> str:
    """`rows` (all of one type) as the JSON array of arrays their statement reads."""
    if not rows:
        return "[]"
    values = _COLUMNS[type(rows[0])]
    return json.dumps([values(row) for row in rows])


class EventWriter:
    def __init__(
        self,
        database: Database,
        *,
        flush_interval: float = 1.0,
        batch_size: int = 500,
        max_pending: int = 20_000,
    ) -> None:
        self._db = database
        self._interval = flush_interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._pending = _Batch()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._flushed = asyncio.Condition()
        self._requested = 0
        self._completed = 0
        self._write_lock = asyncio.Lock()
        self._in_flight = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.rows_written = 0

    @property
    def pending(self) -> int:
        """Rows not yet written: buffered plus the batch being written."""
        return len(self._pending) + self._in_flight

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="progress-event-writer")

    # --- intake ------------------------------------------------------------------------------------

    async def wait_for_room(self) -> None:
        """Returns once the buffer has room (backpressure). Callers then add their rows without awaiting in
        between, so a cancellation can never fall between "the engine took the events" and "they are
        buffered"; the buffer may thus exceed `max_pending` by one request's events."""
        while self.pending >= self._max_pending and not self._closed:
            self._room.clear()
            self._wake.set()
            await self._room.wait()

    def add_events(self, rows: list[EventRow]) -> None:
        if not rows:
            return
        self._pending.events.extend(rows)
        if len(self._pending) >= self._batch_size:
            self._wake.set()

    def add_intervention(self, record: InterventionRecord) -> None:
        """Interventions are few (one per cool-down per session) and never wait."""
        self._pending.interventions.append(record)

    def add_acknowledgement(self, row: AckRow) -> None:
        self._pending.acks.append(row)

    def note_progress(self, watch_session_id: str, watched_seconds: float, position: float) -> None:
        """The session's latest totals (coalesced: one row per session per batch)."""
        self._pending.progress[watch_session_id] = (watched_seconds, position)

    def pending_watched_seconds(self, watch_session_id: str) -> float | None:
        """The session's watched total noted but not yet handed to a write, if any."""
        noted = self._pending.progress.get(watch_session_id)
        return None if noted is None else noted[0]

    # --- writing -----------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything buffered before this call; concurrent callers share one write."""
        if self._task is None or self._task.done():
            await self._write_pending()
            return
        self._requested += 1
        target = self._requested
        self._wake.set()
        async with self._flushed:
            await self._flushed.wait_for(lambda: self._completed >= target or self._task is None)

    async def close(self) -> None:
        """Stop the background loop and write what is left (retrying a few times)."""
        self._closed = True
        self._stopping.set()
        self._room.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            # The loop ends after its current write (a cancellation could land in the middle of one).
            with contextlib.suppress(Exception):
                await task
        for attempt in range(CLOSE_ATTEMPTS):
            try:
                await self._write_pending(raise_errors=True)
                break
            except Exception:
                log.exception("final write of buffered progress rows failed (attempt %d)", attempt + 1)
                await asyncio.sleep(min(MAX_RETRY_DELAY_SECONDS, 0.2 * 2**attempt))
        async with self._flushed:
            self._flushed.notify_all()

    async def _run(self) -> None:
        delay = 0.2
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            target = self._requested
            if await self._write_pending():
                delay = 0.2
                async with self._flushed:
                    self._completed = max(self._completed, target)
                    self._flushed.notify_all()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
                delay = min(MAX_RETRY_DELAY_SECONDS, delay * 2)
                self._wake.set()

    async def _write_pending(self, *, raise_errors: bool = False) -> bool:
        """One batch; on failure the rows go back to the front of the buffer. True on success."""
        async with self._write_lock:
            batch, self._pending = self._pending, _Batch()
            if batch.empty():
                return True
            self._in_flight = len(batch)
            try:
                await self._write(batch)
            except BaseException as error:
                self._pending.prepend(batch)
                if raise_errors or not isinstance(error, Exception):
                    raise
                log.exception("writing %d progress rows failed; will retry", len(batch))
                return False
            finally:
                self._in_flight = 0
                if self.pending < self._max_pending:
                    self._room.set()
            self.rows_written += len(batch)
            return True

    async def _write(self, batch: _Batch) -> None:
        acknowledged: list[Any] = []
        async with self._db.transaction() as session:
            if batch.interventions:
                await session.execute(_INSERT_INTERVENTIONS, {"rows": _json_rows(batch.interventions)})
            if batch.events:
                await session.execute(_INSERT_EVENTS, {"rows": _json_rows(batch.events)})
            if batch.acks:
                acknowledged = list(await session.execute(_INSERT_ACKS, {"rows": _json_rows(batch.acks)}))
            if batch.progress:
                progress = [(sid, watched, position) for sid, (watched, position) in batch.progress.items()]
                await session.execute(_UPDATE_PROGRESS, {"rows": json.dumps(progress)})
        # Counted once committed: a failed batch is retried, and a repeated acknowledgement inserts nothing.
        for kind, action in acknowledged:
            metrics.count_intervention(kind, action)
