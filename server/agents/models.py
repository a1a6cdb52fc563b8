"""Tables of the agents domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, func, true
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base


class Preference(Base):
    """A user's tutor preferences. Values are short lowercase words; the service maps proto enums."""

    __tablename__ = "preferences"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    personality: Mapped[str] = mapped_column(server_default="friendly")
    response_length: Mapped[str] = mapped_column(server_default="medium")
    auto_hints_enabled: Mapped[bool] = mapped_column(server_default=true())
    quiz_frequency: Mapped[str] = mapped_column(server_default="medium")
    reflection_prompts_enabled: Mapped[bool] = mapped_column(server_default=true())
    update_time: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
