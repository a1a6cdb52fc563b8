"""SQL for the chat domain. Functions flush, never commit: the service owns the transaction.

Every read of a session filters by its owner, so a session id guessed or leaked from another user finds
nothing (AIP-211: answered as NOT_FOUND by the service).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

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


async def touch_session(session: AsyncSession, session_id: str) -> None:
    await session.execute(update(ChatSession).where(ChatSession.id == session_id).values(update_time=func.now()))


async def add_message(session: AsyncSession, **values: Any) -> tuple[int, datetime]:
    """Insert a message; returns its (seq, create_time)."""
    statement = insert(StoredMessage).values(**values).returning(StoredMessage.seq, StoredMessage.create_time)
    row = (await session.execute(statement)).one()
    return int(row.seq), row.create_time


async def recent_ungrounded(session: AsyncSession, session_id: str, answers: int) -> int:
    """How many of the session's last `answers` answers were not grounded."""
    recent = (
        select(StoredMessage.grounded)
        .where(StoredMessage.session_id == session_id, StoredMessage.role == "assistant")
        .order_by(StoredMessage.seq.desc())
        .limit(answers)
        .subquery()
    )
    return int((await session.execute(select(func.count()).select_from(recent).where(~recent.c.grounded))).scalar_one())


async def list_messages(
    session: AsyncSession, session_id: str, *, after_seq: int | None, limit: int
) -> list[StoredMessage]:
    """Oldest first."""
    statement = select(StoredMessage).where(StoredMessage.session_id == session_id)
    if after_seq is not None:
        statement = statement.where(StoredMessage.seq > after_seq)
    statement = statement.order_by(StoredMessage.seq).limit(limit)
    return list((await session.execute(statement)).scalars())


async def recent_messages(session: AsyncSession, session_id: str, *, limit: int) -> list[StoredMessage]:
    """The session's last `limit` messages, oldest first."""
    statement = (
        select(StoredMessage)
        .where(StoredMessage.session_id == session_id)
        .order_by(StoredMessage.seq.desc())
        .limit(limit)
    )
    newest_first = list((await session.execute(statement)).scalars())
    return newest_first[::-1]


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
