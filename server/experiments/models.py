"""Tables of experiments on the tutor (the schema itself is migration 0012)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base


class Experiment(Base):
    """`courses/{course_id}/experiments/{experiment_id}`: arms (`[{name, weight}]`, the first is the control)
    on one lever of the tutor. `salt` keys the hash that assigns students to arms."""

    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint("state IN ('draft', 'running', 'stopped')", name="ck_experiments_state"),
        Index(
            "uq_experiments_running_lever",
            "course_id",
            "lever",
            unique=True,
            postgresql_where=text("state = 'running'"),
        ),
    )

    course_id: Mapped[str] = mapped_column(primary_key=True)
    experiment_id: Mapped[str] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(server_default="")
    lever: Mapped[str]
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # The videos whose outcomes count (empty: every video of the course).
    video_ids: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    state: Mapped[str] = mapped_column(server_default="draft")
    salt: Mapped[str]
    created_by: Mapped[str]
    create_time: Mapped[datetime] = mapped_column(server_default=func.now())
    start_time: Mapped[datetime | None]
    stop_time: Mapped[datetime | None]


class ExperimentExposure(Base):
    """A student's arm, recorded the first time the experiment changed (or could have changed) what they saw;
    never re-assigned."""

    __tablename__ = "experiment_exposures"
    __table_args__ = (
        ForeignKeyConstraint(
            ["course_id", "experiment_id"],
            ["experiments.course_id", "experiments.experiment_id"],
            ondelete="CASCADE",
        ),
        Index("ix_experiment_exposures_user_id", "user_id"),
    )

    course_id: Mapped[str] = mapped_column(primary_key=True)
    experiment_id: Mapped[str] = mapped_column(primary_key=True)
    user_id: Mapped[str] = mapped_column(primary_key=True)
    arm: Mapped[str]
    exposure_time: Mapped[datetime] = mapped_column(server_default=func.now())
