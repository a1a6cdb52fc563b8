"""The users table is filled lazily: the first write on behalf of a token subject creates its row."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.auth import Principal
from server.core.models import User


async def ensure_user(session: AsyncSession, principal: Principal) -> None:
    statement = insert(User).values(id=principal.user_id, role=principal.role.value, tier=principal.tier.value)
    statement = statement.on_conflict_do_update(
        index_elements=[User.id],
        set_={"role": statement.excluded.role, "tier": statement.excluded.tier, "last_seen_time": func.now()},
    )
    await session.execute(statement)


async def ensure_user_id(session: AsyncSession, user_id: str) -> None:
    """A row for a user known only by id (a service acting for them): role and tier stay defaults."""
    await session.execute(insert(User).values(id=user_id).on_conflict_do_nothing(index_elements=[User.id]))
