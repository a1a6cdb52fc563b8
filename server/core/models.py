"""The declarative base shared by every domain's tables, and the `users` table.

The schema itself changes only through the hand-written Alembic migrations in server/migrations;
these classes describe it for the ORM and must stay in step with them (tests compare the two).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, MetaData, Text, func
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

# Deterministic constraint names, so migrations can refer to (and drop) constraints by name.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Plain `str` is TEXT and every timestamp carries a time zone.
    type_annotation_map: ClassVar[dict[Any, TypeEngine[Any]]] = {
        str: Text(),
        datetime: DateTime(timezone=True),
    }


class User(Base):
    """A user known from a verified JWT; `id` is the token's subject."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(server_default="student")
    tier: Mapped[str] = mapped_column(server_default="free")
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    last_seen_time: Mapped[datetime] = mapped_column(server_default=func.now())
