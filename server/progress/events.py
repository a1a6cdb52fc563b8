"""The player events a watch session consumes, and the checks every event passes on its own.

Events follow the xAPI video profile (initialized, played, paused, seeked, rate changed, heartbeat,
completed, terminated) plus the student's answer to an intervention (accepted, dismissed). Checks that need
the session's history (order, duplicates, known interventions) live in the engine; the ones here need only
the event and the video's duration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

# Playback rates a player may report (RATE_CHANGED).
MIN_PLAYBACK_RATE = 0.25
MAX_PLAYBACK_RATE = 4.0
# Players report the end of a video a little past its nominal duration (rounding, encoder padding).
DURATION_TOLERANCE_SECONDS = 1.0
MAX_EVENT_ID_LENGTH = 128
MAX_INTERVENTION_ID_LENGTH = 64


class EventKind(StrEnum):
    INITIALIZED = "initialized"
    PLAYED = "played"
    PAUSED = "paused"
    SEEKED = "seeked"
    RATE_CHANGED = "rate_changed"
    HEARTBEAT = "heartbeat"
    COMPLETED = "completed"
    TERMINATED = "terminated"
    ACCEPTED = "intervention_accepted"
    DISMISSED = "intervention_dismissed"


ACKNOWLEDGEMENTS = frozenset({EventKind.ACCEPTED, EventKind.DISMISSED})


@dataclass(frozen=True, slots=True)
class EventInput:
    """An event as the client sent it. `kind` is None for a type the server does not know;
    `event_time` is the client's clock in epoch seconds, None when unset; `label` names the event in a
    rejection (its id, or its index in the batch)."""

    kind: EventKind | None
    position: float
    label: str
    event_id: str = ""
    seek_from: float = 0.0
    seek_to: float = 0.0
    rate: float = 0.0
    intervention_id: str = ""
    event_time: float | None = None


@dataclass(frozen=True, slots=True)
class VideoEvent:
    """An accepted event. `time` is the effective event time (epoch seconds) the detectors use: the
    client's event_time when given, else the server's receive time, never earlier than the event before."""

    kind: EventKind
    position: float
    time: float
    received: float
    event_id: str = ""
    seek_from: float = 0.0
    seek_to: float = 0.0
    rate: float = 0.0
    intervention_id: str = ""
    client_time: float | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    event_id: str
    reason: str


def _position_problem(name: str, value: float, duration: float | None) -> str | None:
    if not math.isfinite(value):
        return f"{name} must be a finite number"
    if value < 0:
        return f"{name} {value:g} is negative"
    if duration is not None and duration > 0 and value > duration + DURATION_TOLERANCE_SECONDS:
        return f"{name} {value:g} is beyond the video's duration of {duration:g} seconds"
    return None


def check_event(event: EventInput, duration: float | None) -> str | None:
    """Why `event` cannot be accepted on its own merits, or None. `duration` None: unknown."""
    if event.kind is None:
        return "unknown or unspecified event type"
    if len(event.event_id) > MAX_EVENT_ID_LENGTH:
        return f"event_id is longer than {MAX_EVENT_ID_LENGTH} characters"
    problem = _position_problem("position_seconds", event.position, duration)
    if problem is not None:
        return problem
    if event.event_time is not None and not math.isfinite(event.event_time):
        return "event_time is not a valid time"
    if event.kind is EventKind.SEEKED:
        for name, value in (("seek_from_seconds", event.seek_from), ("seek_to_seconds", event.seek_to)):
            problem = _position_problem(name, value, duration)
            if problem is not None:
                return problem
    elif event.kind is EventKind.RATE_CHANGED:
        if not (MIN_PLAYBACK_RATE <= event.rate <= MAX_PLAYBACK_RATE):
            return f"playback_rate {event.rate:g} is outside {MIN_PLAYBACK_RATE:g} to {MAX_PLAYBACK_RATE:g}"
    elif event.kind in ACKNOWLEDGEMENTS:
        if not event.intervention_id:
            return "intervention_id is required to acknowledge an intervention"
        if len(event.intervention_id) > MAX_INTERVENTION_ID_LENGTH:
            return "intervention_id is too long"
    return None
