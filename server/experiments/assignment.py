"""Which arm a student is in: a keyed hash of (experiment, user) — HMAC-SHA256 of the user id under the
experiment's random salt, read as a number in [0, 1) and placed on the arms' cumulative weights — recorded
on first exposure and never re-assigned (the stored arm wins over any later computation)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from server.core.auth import Principal, Role
from server.core.db import Database
from server.experiments import repository as repo


class Lever(StrEnum):
    """What an experiment changes, arm by arm.

    INTERVENTIONS: `holdout` gets no proactive interventions (no hint, review, quiz or break offered by the
    watch engine; hints, quizzes and chat asked for still work), `interventions` gets them as usual.
    HINT_LADDER: `hint_ladder` climbs the hint ladder as usual (a first hint asks a guiding question, asking
    again climbs), `direct_hint` gets the top rung at once (the key idea named, quoted from the lecture).
    NO_SPOILERS: `as_preferred` follows the student's own no-spoilers preference, `no_spoilers` has it on for
    chat and hints whatever the preference (nothing said later in the video is quoted)."""

    INTERVENTIONS = "interventions"
    HINT_LADDER = "hint_ladder"
    NO_SPOILERS = "no_spoilers"


HOLDOUT = "holdout"
DIRECT_HINT = "direct_hint"
NO_SPOILERS_ARM = "no_spoilers"
LEVER_ARMS: dict[Lever, frozenset[str]] = {
    Lever.INTERVENTIONS: frozenset({"interventions", HOLDOUT}),
    Lever.HINT_LADDER: frozenset({"hint_ladder", DIRECT_HINT}),
    Lever.NO_SPOILERS: frozenset({"as_preferred", NO_SPOILERS_ARM}),
}


def choose_arm(salt: str, user_id: str, arms: Sequence[dict[str, Any]]) -> str:
    digest = hmac.new(bytes.fromhex(salt), user_id.encode(), hashlib.sha256).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(float(arm["weight"]) for arm in arms)
    reached = 0.0
    for arm in arms:
        reached += float(arm["weight"]) / total
        if point < reached:
            return str(arm["name"])
    return str(arms[-1]["name"])


@dataclass(frozen=True)
class Exposure:
    experiment_id: str
    arm: str


class Assignments:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def expose(self, principal: Principal, course_id: str, lever: Lever) -> Exposure | None:
        """The student's arm in the course's running experiment on `lever` (recorded now if this is their
        first exposure), or None: no such experiment, no course, or not a student."""
        if principal.role is not Role.STUDENT or not course_id:
            return None
        # Two statements, each on its own (no BEGIN/COMMIT round trips): the exposure is one statement, and an
        # experiment stopped in between is exposed to no more than a turn that began a moment earlier would be.
        async with self._db.autocommit() as connection:
            running = await repo.running_experiment(connection, course_id, lever.value)
            if running is None:
                return None
            arm = choose_arm(running.salt, principal.user_id, running.arms)
            stored = await repo.expose(connection, course_id, running.experiment_id, principal.user_id, arm)
        # None only when a concurrent first exposure of the same student committed meanwhile: the hash gave it
        # the same arm.
        return Exposure(running.experiment_id, str(stored or arm))

    async def in_arm(self, principal: Principal, course_id: str, lever: Lever, arm: str) -> bool:
        """Whether the student is (now exposed) in `arm` of the course's running experiment on `lever`."""
        exposure = await self.expose(principal, course_id, lever)
        return exposure is not None and exposure.arm == arm
