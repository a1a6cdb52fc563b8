"""Acknowledged versus stored: every write in the ledger looked up in the database (after the server stopped,
so buffered progress events and the final writes of interrupted turns have had their chance)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import psycopg

from server.core.db import libpq_conninfo
from soak.ledger import CancelledTurn, CompletedTurn, Ledger


@dataclass
class Tally:
    """One kind of write: how many were acknowledged, how many of those are stored, and a few that are not."""

    kind: str
    acknowledged: int = 0
    stored: int = 0
    missing: list[str] = field(default_factory=list)

    def check(self, present: bool, label: str) -> None:
        self.acknowledged += 1
        if present:
            self.stored += 1
        elif len(self.missing) < 5:
            self.missing.append(label)

    @property
    def passed(self) -> bool:
        return self.stored == self.acknowledged


@dataclass(frozen=True, slots=True)
class _Message:
    id: str
    session_id: str
    role: str
    content: str
    incomplete: bool


def _present(cursor: psycopg.Cursor[tuple[str]], sql: str, ids: list[str]) -> set[str]:
    cursor.execute(sql, (ids,))
    return {row[0] for row in cursor.fetchall()}


def verify(database_url: str, ledger: Ledger) -> list[Tally]:
    with psycopg.connect(libpq_conninfo(database_url)) as connection, connection.cursor() as cursor:
        sessions = sorted(
            {turn.session_id for turn in ledger.completed_turns} | {turn.session_id for turn in ledger.cancelled_turns}
        )
        cursor.execute(
            "SELECT id, session_id, role, content, incomplete FROM chat_messages"
            " WHERE session_id = ANY(%s) ORDER BY seq",
            (sessions,),
        )
        messages = [_Message(*row) for row in cursor.fetchall()]
        interactions = _present(
            cursor, "SELECT id FROM ai_interactions WHERE id = ANY(%s)", sorted(ledger.interactions)
        )
        turn_interactions = _present(
            cursor,
            "SELECT id FROM ai_interactions WHERE id = ANY(%s)",
            [turn.interaction_id for turn in ledger.completed_turns],
        )
        attempts = _present(
            cursor, "SELECT attempt_id FROM quiz_attempts WHERE attempt_id = ANY(%s)", sorted(ledger.quiz_attempts)
        )
        cursor.execute(
            "SELECT watch_session_id || '/' || event_id FROM video_events WHERE watch_session_id = ANY(%s)",
            (sorted(ledger.events),),
        )
        events = {row[0] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT t.video_id FROM transcripts t JOIN transcript_chunks c ON c.video_id = t.video_id"
            " WHERE t.video_id = ANY(%s) GROUP BY t.video_id, t.chunk_count"
            " HAVING t.chunk_count > 0 AND count(c.id) = t.chunk_count",
            (sorted(ledger.transcripts),),
        )
        transcripts = {row[0] for row in cursor.fetchall()}

    completed = Tally("chat turns completed (question, answer, interaction)")
    by_id = {message.id: message for message in messages}
    for turn in ledger.completed_turns:
        completed.check(_completed_stored(turn, by_id, turn_interactions), f"{turn.session_id}: {turn.question[:40]}")
    cancelled = Tally("chat turns cancelled (question, answer so far)")
    by_session: defaultdict[str, list[_Message]] = defaultdict(list)
    for message in messages:
        by_session[message.session_id].append(message)
    for cancelled_turn in ledger.cancelled_turns:
        cancelled.check(
            _partial_stored(cancelled_turn, by_session[cancelled_turn.session_id]),
            f"{cancelled_turn.session_id}: {cancelled_turn.question[:40]}",
        )
    progress = Tally("progress events")
    for watch_session_id, event_ids in sorted(ledger.events.items()):
        for event_id in sorted(event_ids):
            label = f"{watch_session_id}/{event_id}"
            progress.check(label in events, label)
    tracked = Tally("interactions (tracked and agent calls)")
    for interaction_id in sorted(ledger.interactions):
        tracked.check(interaction_id in interactions, interaction_id)
    answers = Tally("quiz answers")
    for attempt_id in sorted(ledger.quiz_attempts):
        answers.check(attempt_id in attempts, attempt_id)
    ingested = Tally("transcripts ingested (all chunks)")
    for video_id in sorted(ledger.transcripts):
        ingested.check(video_id in transcripts, video_id)
    return [completed, cancelled, progress, tracked, answers, ingested]


def _completed_stored(turn: CompletedTurn, by_id: dict[str, _Message], interactions: set[str]) -> bool:
    question = by_id.get(turn.user_message_id)
    if question is None or question.content != turn.question or question.session_id != turn.session_id:
        return False
    if turn.interaction_id not in interactions:
        return False
    if not turn.assistant_message_id:
        return turn.answer == ""
    answer = by_id.get(turn.assistant_message_id)
    return answer is not None and answer.content == turn.answer and answer.incomplete == turn.cut_off


def _partial_stored(turn: CancelledTurn, session: list[_Message]) -> bool:
    """The question, and after it an answer that begins with what the client saw (incomplete, unless the server
    finished just as the client cancelled). A turn cancelled before any text may have ended before its question
    was taken; a question that was stored has its answer."""
    for index, message in enumerate(session):
        if message.role == "user" and message.content == turn.question:
            return any(
                later.role == "assistant" and later.content.startswith(turn.received) for later in session[index + 1 :]
            )
    return not turn.received
