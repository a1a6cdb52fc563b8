"""The experiments domain's values: what its service returns and the servicer maps to protos."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from server.experiments.assignment import Lever
from server.experiments.stats import ArmEstimate, Comparison


@dataclass(frozen=True)
class Arm:
    name: str
    weight: float


@dataclass(frozen=True)
class ExperimentView:
    course_id: str
    experiment_id: str
    display_name: str
    lever: Lever
    arms: tuple[Arm, ...]
    video_ids: tuple[str, ...]
    state: str
    created_by: str
    create_time: datetime
    start_time: datetime | None
    stop_time: datetime | None
    exposures: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OutcomeView:
    metric: str
    description: str
    kind: str  # "proportion" or "mean"
    arms: tuple[tuple[str, ArmEstimate], ...]
    comparisons: tuple[tuple[str, Comparison], ...]


@dataclass(frozen=True)
class ReportView:
    experiment: ExperimentView
    outcomes: tuple[OutcomeView, ...]
    notes: tuple[str, ...]
