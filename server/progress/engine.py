"""The state machine of one watch session and its detectors. Pure: no I/O, time comes from the events
(or the injected clock), so every rule can be scripted in a unit test.

Longer than 400 lines because the detectors share the session's state and its cross-cutting rules (one
intervention per event, the cool-down); a good part of the length is this account of where each rule comes from.

Detectors and where their thresholds come from (all in Settings, `watch_*`):

- Re-watching (HINT, reason REWATCH). Kim et al., "Understanding in-video dropouts and interaction peaks in
  online lecture videos", L@S 2014: peaks of re-watching sessions mark the places students find confusing.
  `watch_rewatch_min_seeks` (2) backward seeks whose landing points lie within `watch_rewatch_span_seconds`
  (30 s) of each other, inside `watch_rewatch_window_seconds` (5 min of event time), are one re-watched stretch.
- Slowed playback plus re-watching (REVIEW, reason SLOW_REWATCH). Li et al., "Watching MOOCs together" /
  "How do in-video interactions reflect perceived video difficulty?", EC-TEL 2015: slower playback,
  frequent and long pauses and re-watching go with perceived difficulty; slowing down *and* going back is the
  strongest sign, so it points to prerequisite content instead of a hint. Slowed: rate at or below
  `watch_slow_rate_threshold` (0.9).
- Frequent pauses in one region (HINT, reason PAUSES). Li et al. 2015 as above: `watch_pause_min_count` (3)
  pauses within a `watch_pause_span_seconds` (30 s) wide region inside `watch_pause_window_seconds` (5 min).
- Continuous watching (BREAK, reason LONG_SESSION). Guo et al., "How video production affects student
  engagement", L@S 2014: engagement drops after about 6 minutes of video; a learning session far past that
  (`watch_break_after_seconds`, 25 min, a Pomodoro-length stretch) earns a break suggestion. A gap without
  playback of `watch_break_gap_seconds` (5 min) counts as a break already taken.
- Checkpoints (QUIZ, reason CHECKPOINT): after each `watch_quiz_interval_seconds[quiz_frequency]` seconds of
  content seen for the first time (low 10 min, medium 5 min, high 3 min; off: never), a quiz on that stretch.

Cross-cutting rules: at most one intervention per event (BREAK > REVIEW > HINT re-watch > HINT pauses > QUIZ);
none within `watch_cooldown_seconds` of the previous one (a held-back checkpoint or break fires once the
cool-down is over); none while the student is inactive (not playing and no interaction for
`watch_inactive_after_seconds`); with auto hints off neither HINT nor REVIEW is offered (both are the tutor
stepping in unasked about a struggle); quiz_frequency off means no QUIZ; a student an experiment holds out
(`proactive` False) is offered nothing.
"""

from __future__ import annotations

import time as time_module
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from server.progress.events import ACKNOWLEDGEMENTS, EventInput, EventKind, Rejection, VideoEvent, check_event

if TYPE_CHECKING:
    from server.config import Settings

Clock = Callable[[], float]

# A backward jump shorter than this is a player correction, not a re-watch.
MIN_BACKWARD_SEEK_SECONDS = 2.0
# Position advance accepted beyond what the elapsed time allows (heartbeat batches share one receive time).
PLAYBACK_SLACK_SECONDS = 5.0
# Bounded history per session: detectors only look a few minutes back; repeats are caught among the latest ids.
MAX_SEEKS = 16
MAX_PAUSES = 16
RECENT_EVENT_IDS = 64
RECENT_INTERVENTIONS = 32


class InterventionKind(StrEnum):
    HINT = "hint"
    QUIZ = "quiz"
    REVIEW = "review"
    BREAK = "break"


@dataclass(frozen=True)
class EngineConfig:
    rewatch_min_seeks: int = 2
    rewatch_span: float = 30.0
    rewatch_window: float = 300.0
    pause_min_count: int = 3
    pause_span: float = 30.0
    pause_window: float = 300.0
    break_after: float = 1500.0
    break_gap: float = 300.0
    slow_rate: float = 0.9
    cooldown: float = 120.0
    inactive_after: float = 120.0
    time_tolerance: float = 2.0
    quiz_intervals: tuple[tuple[str, float], ...] = (("low", 600.0), ("medium", 300.0), ("high", 180.0))

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineConfig:
        return cls(
            rewatch_min_seeks=settings.watch_rewatch_min_seeks,
            rewatch_span=settings.watch_rewatch_span_seconds,
            rewatch_window=settings.watch_rewatch_window_seconds,
            pause_min_count=settings.watch_pause_min_count,
            pause_span=settings.watch_pause_span_seconds,
            pause_window=settings.watch_pause_window_seconds,
            break_after=settings.watch_break_after_seconds,
            break_gap=settings.watch_break_gap_seconds,
            slow_rate=settings.watch_slow_rate_threshold,
            cooldown=settings.watch_cooldown_seconds,
            inactive_after=settings.watch_inactive_after_seconds,
            time_tolerance=settings.watch_event_time_tolerance_seconds,
            quiz_intervals=tuple(sorted(settings.watch_quiz_interval_seconds.items())),
        )

    def quiz_interval(self, frequency: str) -> float | None:
        """Seconds of new content between checkpoints; None when quizzes are off."""
        for name, seconds in self.quiz_intervals:
            if name == frequency:
                return seconds if seconds > 0 else None
        return None


@dataclass(frozen=True, slots=True)
class LearnerPreferences:
    auto_hints_enabled: bool = True
    quiz_frequency: str = "medium"


@dataclass(frozen=True, slots=True)
class Decision:
    """The engine decided to step in: what, why and about which stretch of the video."""

    kind: InterventionKind
    reason: str
    reason_text: str
    position: float
    start: float
    end: float
    time: float


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one event: accepted (maybe with a decision), rejected, or a duplicate (ignored)."""

    event: VideoEvent | None = None
    rejection: Rejection | None = None
    decision: Decision | None = None

    @property
    def duplicate(self) -> bool:
        return self.event is None and self.rejection is None


def _clock_text(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


class ProgressEngine:
    """Per-watch-session state. Feed events with `step`; remember delivered interventions with
    `remember_intervention` so acknowledgements can be checked."""

    __slots__ = (
        "_clock",
        "_config",
        "_last_interaction",
        "_last_intervention",
        "_last_playing",
        "_pauses",
        "_quiz_interval",
        "_recent_id_slot",
        "_recent_ids",
        "_recent_interventions",
        "_run_start",
        "_seeks",
        "duration",
        "high_water",
        "hints_enabled",
        "last_time",
        "new_content",
        "playing",
        "position",
        "proactive",
        "rate",
        "segment_start",
        "terminated",
        "watched_seconds",
    )

    def __init__(
        self,
        config: EngineConfig,
        preferences: LearnerPreferences,
        *,
        duration: float | None = None,
        clock: Clock = time_module.time,
    ) -> None:
        self._config = config
        self._clock = clock
        self.duration = duration if duration and duration > 0 else None
        self.hints_enabled = preferences.auto_hints_enabled
        self._quiz_interval = config.quiz_interval(preferences.quiz_frequency)
        # False for a student an experiment holds out from proactive interventions.
        self.proactive = True
        self.position = 0.0
        self.playing = False
        self.terminated = False
        self.rate = 1.0
        self.last_time: float | None = None
        self._last_playing: float | None = None
        self._last_interaction: float | None = None
        self._run_start: float | None = None
        # Windows are plain lists, created on first use and trimmed by hand: most sessions never seek or
        # pause much, and an empty deque costs ~600 bytes per session.
        self._seeks: list[tuple[float, float, float]] | None = None
        self._pauses: list[tuple[float, float]] | None = None
        self.high_water = 0.0
        self.new_content = 0.0
        self.segment_start = 0.0
        self.watched_seconds = 0.0
        self._last_intervention: float | None = None
        # Hashes of the latest event ids (a repeat is ignored): a ring of machine ints, not a set of strings.
        self._recent_ids: array[int] | None = None
        self._recent_id_slot = 0
        self._recent_interventions: list[str] | None = None

    # --- inputs ------------------------------------------------------------------------------------

    def update_preferences(self, preferences: LearnerPreferences) -> None:
        self.hints_enabled = preferences.auto_hints_enabled
        self._quiz_interval = self._config.quiz_interval(preferences.quiz_frequency)

    def remember_intervention(self, intervention_id: str) -> None:
        if self._recent_interventions is None:
            self._recent_interventions = []
        self._recent_interventions.append(intervention_id)
        del self._recent_interventions[:-RECENT_INTERVENTIONS]

    def step(self, event: EventInput) -> Step:
        received = self._clock()
        problem = check_event(event, self.duration)
        if problem is not None:
            return Step(rejection=Rejection(event.label, problem))
        assert event.kind is not None
        if event.event_id and self._recent_ids is not None and hash(event.event_id) in self._recent_ids:
            return Step()
        when = event.event_time if event.event_time is not None else received
        if self.last_time is not None and when < self.last_time - self._config.time_tolerance:
            return Step(
                rejection=Rejection(
                    event.label,
                    f"out of order: event_time is {self.last_time - when:.1f} s before the previous event",
                )
            )
        if event.kind in ACKNOWLEDGEMENTS and event.intervention_id not in (self._recent_interventions or ()):
            return Step(rejection=Rejection(event.label, "unknown intervention_id for this watch session"))
        when = max(when, self.last_time) if self.last_time is not None else when
        accepted = VideoEvent(
            kind=event.kind,
            position=event.position,
            time=when,
            received=received,
            event_id=event.event_id,
            seek_from=event.seek_from,
            seek_to=event.seek_to,
            rate=event.rate,
            intervention_id=event.intervention_id,
            client_time=event.event_time,
        )
        if event.event_id:
            if self._recent_ids is None:
                self._recent_ids = array("q", bytes(8 * RECENT_EVENT_IDS))
            self._recent_ids[self._recent_id_slot] = hash(event.event_id)
            self._recent_id_slot = (self._recent_id_slot + 1) % RECENT_EVENT_IDS
        return Step(event=accepted, decision=self._apply(accepted))

    # --- the state machine -------------------------------------------------------------------------

    def _apply(self, event: VideoEvent) -> Decision | None:
        now = event.time
        kind = event.kind
        if self.playing and self._last_playing is not None and now - self._last_playing >= self._config.break_gap:
            # Nothing heard for a long while (the laptop slept, the network dropped): a break was taken, and
            # what the playhead did meanwhile is unknown.
            self._run_start = now
        elif self.playing:
            played_until = event.seek_from if kind is EventKind.SEEKED else event.position
            self._advance(played_until, now)
        if kind is not EventKind.HEARTBEAT or self.playing:
            self._last_interaction = now
        self.last_time = now

        candidates: list[Decision] = []
        if kind is EventKind.PLAYED:
            self._start_playing(now)
            self.position = event.position
        elif kind in (EventKind.PAUSED, EventKind.COMPLETED, EventKind.TERMINATED):
            self.playing = False
            self.position = event.position
            if kind is EventKind.TERMINATED:
                self.terminated = True
            if kind is EventKind.PAUSED:
                candidates.extend(self._pauses_detector(now, event.position))
        elif kind is EventKind.SEEKED:
            self.position = event.seek_to
            if event.seek_to < event.seek_from - MIN_BACKWARD_SEEK_SECONDS:
                candidates.extend(self._rewatch_detector(now, event.seek_from, event.seek_to))
        elif kind is EventKind.RATE_CHANGED:
            self.rate = event.rate
            self.position = event.position
        elif kind is EventKind.HEARTBEAT:
            self.position = event.position
        elif kind is EventKind.INITIALIZED:
            self.terminated = False
            self.position = event.position
        if self.playing:
            self._last_playing = now
        candidates.extend(self._break_detector(now))
        candidates.extend(self._checkpoint_detector(now))
        return self._choose(now, candidates)

    def _start_playing(self, now: float) -> None:
        self.terminated = False
        if self._run_start is None or (
            self._last_playing is not None and now - self._last_playing >= self._config.break_gap
        ):
            self._run_start = now
        self.playing = True
        self._last_playing = now

    def _advance(self, position: float, now: float) -> None:
        """Playback moved the playhead from `self.position` to `position` (no seek in between)."""
        elapsed = max(0.0, now - (self._last_playing if self._last_playing is not None else now))
        delta = position - self.position
        if delta <= 0 or delta > elapsed * max(self.rate, 1.0) + PLAYBACK_SLACK_SECONDS:
            return
        self.watched_seconds += delta
        if position > self.high_water:
            self.new_content += position - max(self.position, self.high_water)
            self.high_water = position

    # --- detectors ---------------------------------------------------------------------------------

    def _rewatch_detector(self, now: float, origin: float, landing: float) -> list[Decision]:
        config = self._config
        seeks = self._seeks = [seek for seek in (self._seeks or ()) if now - seek[0] <= config.rewatch_window][
            -(MAX_SEEKS - 1) :
        ]
        seeks.append((now, origin, landing))
        cluster = [
            seek
            for seek in seeks
            if abs(seek[2] - landing) <= config.rewatch_span and seek[2] < origin and landing < seek[1]
        ]
        if len(cluster) < config.rewatch_min_seeks:
            return []
        start = min(seek[2] for seek in cluster)
        end = min(max(seek[1] for seek in cluster), start + 2 * config.rewatch_span)
        for seek in cluster:
            seeks.remove(seek)
        span = f"{_clock_text(start)}–{_clock_text(end)}"
        if self.rate <= config.slow_rate:
            return [
                Decision(
                    InterventionKind.REVIEW,
                    "SLOW_REWATCH",
                    f"You slowed down to {self.rate:g}x and went back over {span} {len(cluster)} times; "
                    "a look at the groundwork may help.",
                    landing,
                    start,
                    end,
                    now,
                )
            ]
        return [
            Decision(
                InterventionKind.HINT,
                "REWATCH",
                f"You went back over {span} {len(cluster)} times.",
                landing,
                start,
                end,
                now,
            )
        ]

    def _pauses_detector(self, now: float, position: float) -> list[Decision]:
        config = self._config
        pauses = self._pauses = [pause for pause in (self._pauses or ()) if now - pause[0] <= config.pause_window][
            -(MAX_PAUSES - 1) :
        ]
        pauses.append((now, position))
        positions = sorted(pause[1] for pause in pauses if abs(pause[1] - position) <= config.pause_span)
        best: list[float] = []
        for index, low in enumerate(positions):
            window = [p for p in positions[index:] if p - low <= config.pause_span]
            if position in window and len(window) > len(best):
                best = window
        if len(best) < config.pause_min_count:
            return []
        for pause in [pause for pause in pauses if best[0] <= pause[1] <= best[-1]]:
            pauses.remove(pause)
        start, end = max(0.0, best[0] - config.pause_span), best[-1]
        return [
            Decision(
                InterventionKind.HINT,
                "PAUSES",
                f"You paused {len(best)} times around {_clock_text(end)}.",
                position,
                start,
                max(end, start + 1.0),
                now,
            )
        ]

    def _break_detector(self, now: float) -> list[Decision]:
        if not self.playing or self._run_start is None:
            return []
        watched = now - self._run_start
        if watched < self._config.break_after:
            return []
        return [
            Decision(
                InterventionKind.BREAK,
                "LONG_SESSION",
                f"You have been watching for {int(watched // 60)} minutes without a break.",
                self.position,
                max(0.0, self.position - watched * self.rate),
                max(self.position, 1.0),
                now,
            )
        ]

    def _checkpoint_detector(self, now: float) -> list[Decision]:
        interval = self._quiz_interval
        if interval is None or self.new_content < interval:
            return []
        start = self.segment_start if self.segment_start < self.position else max(0.0, self.position - interval)
        return [
            Decision(
                InterventionKind.QUIZ,
                "CHECKPOINT",
                f"A quick check on {_clock_text(start)}–{_clock_text(self.position)}.",
                self.position,
                start,
                max(self.position, start + 1.0),
                now,
            )
        ]

    # --- choosing ----------------------------------------------------------------------------------

    def _active(self, now: float) -> bool:
        if self.terminated:
            return False
        if self.playing:
            return True
        return self._last_interaction is not None and now - self._last_interaction < self._config.inactive_after

    def _allowed(self, decision: Decision) -> bool:
        if not self.proactive:
            return False
        if decision.kind in (InterventionKind.HINT, InterventionKind.REVIEW):
            return self.hints_enabled
        if decision.kind is InterventionKind.QUIZ:
            return self._quiz_interval is not None
        return True

    def _choose(self, now: float, candidates: list[Decision]) -> Decision | None:
        allowed = [decision for decision in candidates if self._allowed(decision)]
        if not allowed or not self._active(now):
            return None
        if self._last_intervention is not None and now - self._last_intervention < self._config.cooldown:
            return None
        order = {InterventionKind.BREAK: 0, InterventionKind.REVIEW: 1, InterventionKind.HINT: 2}
        chosen = min(allowed, key=lambda d: (order.get(d.kind, 3), 0 if d.reason == "REWATCH" else 1))
        self._last_intervention = now
        if chosen.kind is InterventionKind.BREAK:
            self._run_start = now
        elif chosen.kind is InterventionKind.QUIZ:
            self.new_content = 0.0
            self.segment_start = self.position
        return chosen
