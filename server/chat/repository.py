"""SQL for the chat domain. Functions flush, never commit: the service owns the transaction.

Every read of a session filters by its owner, so a session id guessed or leaked from another user finds
nothing (AIP-211: answered as NOT_FOUND by the service).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from server.chat.domain import LearningContext
from server.chat.models import ChatSession, StoredMessage, TranscriptReference


async def get_session(session: AsyncSession, session_id: str, user_id: str) -> ChatSession | None:
    statement = select(ChatSession).where(ChatSession.id == session_id, ChatSession.user_id == user_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def touch_owned_session(session: AsyncSession, session_id: str, user_id: str) -> ChatSession | None:
    """Mark the caller's session as changed now and return it (locked until the transaction ends), or None
    when the caller has no such session. One round trip for the ownership check, the lock and the touch."""
    statement = (
        update(ChatSession)
        .where(ChatSession.id == session_id, ChatSession.user_id == user_id)
        .values(update_time=func.now())
        .returning(ChatSession)
    )
    return (await session.execute(statement)).scalar_one_or_none()


# Touch the caller's session, add the question, and read what the turn needs, in one statement (so one
# round trip in autocommit). Every part of a statement sees the snapshot taken before it ran: the history and the
# answers read here are those before this question; when the caller has no such session nothing is added and
# no row comes back.
ADD_QUESTION = text(
    """
    WITH touched AS (
        UPDATE chat_sessions SET update_time = now()
        WHERE id = :session_id AND user_id = :user_id
        RETURNING id, course_id, video_id, position_seconds, selected_start_seconds, selected_end_seconds
    ), added AS (
        INSERT INTO chat_messages (id, session_id, role, content)
        SELECT :message_id, id, 'user', :content FROM touched
    )
    SELECT t.course_id, t.video_id, t.position_seconds, t.selected_start_seconds, t.selected_end_seconds,
        (SELECT coalesce(jsonb_agg(jsonb_build_array(m.role, m.content) ORDER BY m.seq), '[]'::jsonb)
         FROM (SELECT role, content, seq FROM chat_messages WHERE session_id = t.id
               ORDER BY seq DESC LIMIT :history_limit) m) AS history,
        (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'id', r.id, 'video_id', r.video_id, 'start_seconds', r.start_seconds,
                    'end_seconds', r.end_seconds, 'text', r.text, 'create_time', r.create_time)
                ORDER BY r.create_time, r.id), '[]'::jsonb)
         FROM chat_references r WHERE r.session_id = t.id) AS "references",
        (SELECT count(*) FROM (SELECT grounded FROM chat_messages WHERE session_id = t.id AND role = 'assistant'
               ORDER BY seq DESC LIMIT :answers) a WHERE NOT a.grounded) AS ungrounded
    FROM touched t
    """
)


@dataclass(frozen=True, slots=True)
class AddedQuestion:
    """The session a question was added to, as it was before: its learning context, its last messages as
    (role, content) oldest first, its references (column -> value, `create_time` an ISO string) and how many of
    its last answers were not grounded."""

    context: LearningContext
    history: list[tuple[str, str]]
    references: list[dict[str, Any]]
    ungrounded: int


async def add_question(
    connection: AsyncConnection,
    *,
    session_id: str,
    user_id: str,
    message_id: str,
    content: str,
    history_limit: int,
    answers: int,
) -> AddedQuestion | None:
    """Add a user's question to their session (one statement; `connection` in autocommit commits it), or
    None when they have no such session. `answers`: how many of the last answers `ungrounded` looks at."""
    values = {
        "session_id": session_id,
        "user_id": user_id,
        "message_id": message_id,
        "content": content,
        "history_limit": history_limit,
        "answers": answers,
    }
    row = (await connection.execute(ADD_QUESTION, values)).one_or_none()
    if row is None:
        return None
    start, end = row.selected_start_seconds, row.selected_end_seconds
    return AddedQuestion(
        context=LearningContext(
            course_id=row.course_id,
            video_id=row.video_id,
            position_seconds=row.position_seconds,
            selected_range=(start, end) if start is not None and end is not None else None,
        ),
        history=[(role, content) for role, content in row.history],
        references=list(row.references),
        ungrounded=int(row.ungrounded),
    )


# A turn's end in one statement (one round trip in autocommit): its interaction row (the analytics domain's
# `ai_interactions`, the columns `server.analytics.repository.record_interaction` writes) and, when the turn has an
# answer, the answer and the session's touch. A session deleted during the turn takes no answer: no row is
# added and `answered` comes back false; the interaction (what the turn cost) is kept.
ADD_ANSWER = text(
    """
    WITH interaction AS (
        INSERT INTO ai_interactions
            (id, user_id, agent_type, trigger, course_id, video_id, position_seconds, model, prompt_tokens,
             completion_tokens, cost_usd, latency_ms, cached, attributes)
        VALUES (:interaction_id, :user_id, 'chat', 'user', :course_id, :video_id, :position_seconds, :model,
                :prompt_tokens, :completion_tokens, :cost_usd, :latency_ms, :cached, CAST(:attributes AS jsonb))
    ), touched AS (
        UPDATE chat_sessions SET update_time = now()
        WHERE id = :session_id AND :answer
        RETURNING id
    ), added AS (
        INSERT INTO chat_messages
            (id, session_id, role, content, model, prompt_tokens, completion_tokens, cost_usd, incomplete, cached,
             fallback, latency_ms, time_to_first_token_ms, finish_reason, citations, grounded, interaction_id)
        SELECT :message_id, id, 'assistant', :content, :model, :prompt_tokens, :completion_tokens, :cost_usd,
               :incomplete, :cached, :fallback, :latency_ms, :time_to_first_token_ms, :finish_reason,
               CAST(:citations AS jsonb), :grounded, :interaction_id
        FROM touched
        RETURNING id
    )
    SELECT EXISTS (SELECT 1 FROM added) AS answered
    """
)


@dataclass(frozen=True, slots=True)
class FinishedTurn:
    """What a chat turn stores as it ends: the interaction's columns, and the answer's (`message_id` empty for a
    turn that leaves no answer)."""

    interaction_id: str
    user_id: str
    session_id: str
    course_id: str
    video_id: str
    position_seconds: float
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: int
    cached: bool
    attributes: dict[str, str]
    message_id: str
    content: str
    incomplete: bool
    fallback: bool
    time_to_first_token_ms: int
    finish_reason: str
    citations: list[dict[str, Any]]
    grounded: bool


async def add_answer(connection: AsyncConnection, turn: FinishedTurn) -> bool:
    """Store a turn's interaction and answer (one statement; `connection` in autocommit commits it); whether the
    answer was added (false when there is none, or its session was deleted meanwhile)."""
    # Shallow: `asdict` would deep-copy the attributes and citations only for them to be replaced by their JSON.
    values = {
        **{column.name: getattr(turn, column.name) for column in fields(turn)},
        "attributes": json.dumps(turn.attributes),
        "citations": json.dumps(turn.citations),
        "answer": bool(turn.message_id),
    }
    return bool((await connection.execute(ADD_ANSWER, values)).scalar_one())


async def list_sessions(
    session: AsyncSession, user_id: str, *, after: tuple[datetime, str] | None, limit: int
) -> list[ChatSession]:
    """Newest first; `after` is the (create_time, id) of the last session of the previous page."""
    statement = select(ChatSession).where(ChatSession.user_id == user_id)
    if after is not None:
        statement = statement.where(tuple_(ChatSession.create_time, ChatSession.id) < tuple_(*after))
    statement = statement.order_by(ChatSession.create_time.desc(), ChatSession.id.desc()).limit(limit)
    return list((await session.execute(statement)).scalars())


async def message_counts(session: AsyncSession, session_ids: Sequence[str]) -> dict[str, int]:
    if not session_ids:
        return {}
    statement = (
        select(StoredMessage.session_id, func.count())
        .where(StoredMessage.session_id.in_(session_ids))
        .group_by(StoredMessage.session_id)
    )
    counts = {row[0]: int(row[1]) for row in (await session.execute(statement)).all()}
    return {session_id: counts.get(session_id, 0) for session_id in session_ids}


async def references_of(session: AsyncSession, session_ids: Sequence[str]) -> dict[str, list[TranscriptReference]]:
    found: dict[str, list[TranscriptReference]] = {session_id: [] for session_id in session_ids}
    if not session_ids:
        return found
    statement = (
        select(TranscriptReference)
        .where(TranscriptReference.session_id.in_(session_ids))
        .order_by(TranscriptReference.create_time, TranscriptReference.id)
    )
    for reference in (await session.execute(statement)).scalars():
        found[reference.session_id].append(reference)
    return found


async def delete_session(session: AsyncSession, session_id: str, user_id: str) -> bool:
    statement = delete(ChatSession).where(ChatSession.id == session_id, ChatSession.user_id == user_id)
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def list_messages(
    session: AsyncSession, session_id: str, *, after_seq: int | None, limit: int
) -> list[StoredMessage]:
    """Oldest first."""
    statement = select(StoredMessage).where(StoredMessage.session_id == session_id)
    if after_seq is not None:
        statement = statement.where(StoredMessage.seq > after_seq)
    statement = statement.order_by(StoredMessage.seq).limit(limit)
    return list((await session.execute(statement)).scalars())


async def clear_messages(session: AsyncSession, session_id: str) -> int:
    result = await session.execute(delete(StoredMessage).where(StoredMessage.session_id == session_id))
    return int(getattr(result, "rowcount", 0))


async def add_reference(session: AsyncSession, reference: TranscriptReference) -> TranscriptReference:
    session.add(reference)
    await session.flush()
    await session.refresh(reference, ["create_time"])
    return reference


async def remove_reference(session: AsyncSession, session_id: str, reference_id: str) -> bool:
    statement = delete(TranscriptReference).where(
        TranscriptReference.session_id == session_id, TranscriptReference.id == reference_id
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


# The user message right before each assistant message citing the stretch (GIN index on citations).
CITING_QUESTIONS = text(
    """
    SELECT q.id, q.session_id, q.content, q.create_time, s.user_id, cited.start_seconds
    FROM chat_messages a
    JOIN chat_sessions s ON s.id = a.session_id
    CROSS JOIN LATERAL (
        SELECT min(CAST(c ->> 'start_seconds' AS float8)) AS start_seconds
        FROM jsonb_array_elements(a.citations) AS c
        WHERE c ->> 'video_id' = :video
          AND CAST(c ->> 'start_seconds' AS float8) < :end AND CAST(c ->> 'end_seconds' AS float8) > :start
    ) AS cited
    CROSS JOIN LATERAL (
        SELECT m.id, m.session_id, m.content, m.create_time FROM chat_messages m
        WHERE m.session_id = a.session_id AND m.seq < a.seq AND m.role = 'user'
        ORDER BY m.seq DESC LIMIT 1
    ) AS q
    WHERE a.role = 'assistant' AND a.citations @> CAST(:contains AS jsonb) AND cited.start_seconds IS NOT NULL
      AND (CAST(:user AS text) IS NULL OR s.user_id = :user)
    ORDER BY a.seq DESC
    LIMIT :scan
    """
)


async def citing_questions(
    session: AsyncSession, video_id: str, start: float, end: float, *, user_id: str | None, scan: int
) -> Sequence[Row[Any]]:
    """The questions whose answers cited [start, end) of the video, newest first, at most `scan` of them; only
    `user_id`'s when given."""
    params: dict[str, Any] = {
        "video": video_id,
        "start": start,
        "end": end,
        "contains": json.dumps([{"video_id": video_id}]),
        "user": user_id,
        "scan": scan,
    }
    return (await session.execute(CITING_QUESTIONS, params)).all()
