"""Tutor preferences: defaults for a new user, partial updates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from server.agents.models import Preference
from server.core.auth import Principal
from server.core.db import Database
from server.core.users import ensure_user, ensure_user_id

PERSONALITIES = ("friendly", "professional", "peer")
RESPONSE_LENGTHS = ("short", "medium", "detailed")
QUIZ_FREQUENCIES = ("off", "low", "medium", "high")
UPDATABLE_FIELDS = (
    "personality",
    "response_length",
    "auto_hints_enabled",
    "quiz_frequency",
    "reflection_prompts_enabled",
    "no_spoilers",
)


@dataclass(frozen=True)
class PreferenceValues:
    user_id: str
    personality: str = "friendly"
    response_length: str = "medium"
    auto_hints_enabled: bool = True
    quiz_frequency: str = "medium"
    reflection_prompts_enabled: bool = True
    no_spoilers: bool = False
    update_time: datetime | None = None


def _values(row: Preference) -> PreferenceValues:
    return PreferenceValues(
        user_id=row.user_id,
        personality=row.personality,
        response_length=row.response_length,
        auto_hints_enabled=row.auto_hints_enabled,
        quiz_frequency=row.quiz_frequency,
        reflection_prompts_enabled=row.reflection_prompts_enabled,
        no_spoilers=row.no_spoilers,
        update_time=row.update_time,
    )


class PreferencesService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: str) -> PreferenceValues:
        """Stored preferences, or the defaults for a user who never changed them (nothing is written)."""
        async with self._db.reader() as session:
            row = await session.get(Preference, user_id)
            return _values(row) if row is not None else PreferenceValues(user_id=user_id)

    async def update(self, principal: Principal, user_id: str, changes: dict[str, Any]) -> PreferenceValues:
        """Apply `changes` (already validated field -> value) atomically; other fields keep their values."""
        unknown = set(changes) - set(UPDATABLE_FIELDS)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        async with self._db.transaction() as session:
            if user_id == principal.user_id:
                await ensure_user(session, principal)
            else:
                await ensure_user_id(session, user_id)
            statement = insert(Preference).values(user_id=user_id, **changes)
            if changes:
                statement = statement.on_conflict_do_update(
                    index_elements=[Preference.user_id], set_={**changes, "update_time": func.now()}
                )
            else:
                statement = statement.on_conflict_do_nothing(index_elements=[Preference.user_id])
            await session.execute(statement)
            row = (await session.execute(select(Preference).where(Preference.user_id == user_id))).scalar_one()
            return _values(row)
