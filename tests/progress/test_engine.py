"""The watch-session state machine on scripted event sequences (event times from the script, no I/O)."""

from __future__ import annotations

from dataclasses import replace

from server.progress.engine import (
    Decision,
    EngineConfig,
    InterventionKind,
    LearnerPreferences,
    ProgressEngine,
)
from server.progress.events import EventInput, EventKind

CONFIG = EngineConfig()
T0 = 1_700_000_000.0


class Script:
    """Feeds events at scripted times and collects what the engine decides."""

    def __init__(
        self,
        *,
        config: EngineConfig = CONFIG,
        hints: bool = True,
        quiz: str = "off",
        duration: float | None = 3600.0,
    ) -> None:
        self.now = T0
        self.engine = ProgressEngine(config, LearnerPreferences(hints, quiz), duration=duration, clock=lambda: self.now)
        self.decisions: list[Decision] = []
        self.rejections: list[str] = []
        self.position = 0.0
        self._count = 0

    def send(self, kind: EventKind | None, position: float, *, at: float | None = None, **fields: object) -> None:
        """One event `at` seconds into the script (event_time given) or at the clock (at=None)."""
        self._count += 1
        event = EventInput(
            kind=kind,
            position=position,
            label=str(self._count),
            event_time=None if at is None else T0 + at,
            **fields,  # type: ignore[arg-type]
        )
        step = self.engine.step(event)
        if step.rejection is not None:
            self.rejections.append(step.rejection.reason)
        if step.decision is not None:
            self.decisions.append(step.decision)

    def play(self, start: float, seconds: float, *, at: float, rate: float = 1.0, beat: float = 10.0) -> float:
        """PLAYED at `start`, heartbeats every `beat` seconds of wall time; returns the time afterwards."""
        self.send(EventKind.PLAYED, start, at=at)
        elapsed = 0.0
        while elapsed < seconds:
            step = min(beat, seconds - elapsed)
            elapsed += step
            self.send(EventKind.HEARTBEAT, start + elapsed * rate, at=at + elapsed)
        self.position = start + seconds * rate
        return at + seconds

    def seek(self, origin: float, landing: float, *, at: float) -> None:
        self.send(EventKind.SEEKED, landing, at=at, seek_from=origin, seek_to=landing)

    def kinds(self) -> list[tuple[InterventionKind, str]]:
        return [(decision.kind, decision.reason) for decision in self.decisions]


def normal_viewing(script: Script, minutes: float = 20.0) -> None:
    """Straight through, with two well-spaced pauses and a rate change to 1.25x."""
    at = script.play(0.0, 300.0, at=0.0)
    script.send(EventKind.PAUSED, 300.0, at=at)
    at = script.play(300.0, 240.0, at=at + 30.0)
    script.send(EventKind.RATE_CHANGED, 540.0, at=at, rate=1.25)
    at = script.play(540.0, 300.0, at=at + 1.0, rate=1.25)
    script.send(EventKind.PAUSED, script.position, at=at)
    script.play(script.position, minutes * 60 - 840.0, at=at + 20.0)


# --- re-watching ---------------------------------------------------------------------------------


def test_rewatching_one_stretch_twice_asks_for_a_hint_about_that_stretch() -> None:
    script = Script()
    at = script.play(0.0, 130.0, at=0.0)
    script.seek(130.0, 95.0, at=at)
    at = script.play(95.0, 40.0, at=at + 1.0)
    assert script.decisions == []  # one look back is not a struggle
    script.seek(135.0, 100.0, at=at)
    assert script.kinds() == [(InterventionKind.HINT, "REWATCH")]
    hint = script.decisions[0]
    assert (hint.start, hint.end) == (95.0, 135.0)
    assert "2 times" in hint.reason_text


def test_rewatch_detector_is_silent_on_normal_viewing() -> None:
    script = Script()
    normal_viewing(script)
    assert script.decisions == []


def test_backward_seeks_to_different_stretches_or_far_apart_in_time_do_not_count() -> None:
    script = Script()
    at = script.play(0.0, 400.0, at=0.0)
    script.seek(400.0, 100.0, at=at)
    at = script.play(100.0, 300.0, at=at + 1.0)
    script.seek(400.0, 300.0, at=at)  # lands 200 s away from the first: another stretch
    assert script.decisions == []

    script = Script()
    at = script.play(0.0, 130.0, at=0.0)
    script.seek(130.0, 95.0, at=at)
    at = script.play(95.0, 400.0, at=at + 1.0)  # more than the 5-minute window later
    script.seek(495.0, 100.0, at=at)
    assert script.decisions == []


def test_slowed_playback_plus_rewatching_points_to_prerequisites() -> None:
    script = Script()
    at = script.play(0.0, 130.0, at=0.0)
    script.send(EventKind.RATE_CHANGED, 130.0, at=at, rate=0.75)
    script.seek(130.0, 95.0, at=at + 1.0)
    at = script.play(95.0, 40.0, at=at + 2.0, rate=0.75)
    script.seek(125.0, 100.0, at=at)
    assert script.kinds() == [(InterventionKind.REVIEW, "SLOW_REWATCH")]


def test_slow_playback_alone_is_not_a_struggle() -> None:
    script = Script()
    script.send(EventKind.RATE_CHANGED, 0.0, at=0.0, rate=0.5)
    script.play(0.0, 900.0, at=1.0, rate=0.5)
    assert script.decisions == []


# --- pauses --------------------------------------------------------------------------------------


def test_frequent_pauses_in_one_region_ask_for_a_hint() -> None:
    script = Script()
    at = script.play(0.0, 200.0, at=0.0)
    for position in (200.0, 210.0, 222.0):
        script.send(EventKind.PAUSED, position, at=at)
        at = script.play(position, 10.0, at=at + 15.0) if position < 222.0 else at
    assert script.kinds() == [(InterventionKind.HINT, "PAUSES")]
    hint = script.decisions[0]
    assert hint.start == 170.0 and hint.end == 222.0


def test_pauses_spread_over_the_video_are_silent() -> None:
    script = Script()
    at = 0.0
    for start in (0.0, 120.0, 240.0, 360.0):
        at = script.play(start, 120.0, at=at)
        script.send(EventKind.PAUSED, start + 120.0, at=at)
        at += 10.0
    assert script.decisions == []


# --- breaks --------------------------------------------------------------------------------------


def test_watching_for_more_than_25_minutes_suggests_a_break() -> None:
    script = Script()
    script.play(0.0, 26 * 60.0, at=0.0, beat=30.0)
    assert script.kinds() == [(InterventionKind.BREAK, "LONG_SESSION")]
    assert script.decisions[0].time == T0 + 1500.0


def test_a_long_enough_pause_counts_as_a_break() -> None:
    script = Script()
    at = script.play(0.0, 20 * 60.0, at=0.0, beat=30.0)
    script.send(EventKind.PAUSED, 1200.0, at=at)
    script.play(1200.0, 20 * 60.0, at=at + 6 * 60.0, beat=30.0)
    assert script.decisions == []


def test_break_detector_is_silent_on_twenty_minutes() -> None:
    script = Script()
    normal_viewing(script, minutes=20.0)
    assert all(decision.kind is not InterventionKind.BREAK for decision in script.decisions)


# --- checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_quiz_after_each_stretch_of_new_content() -> None:
    script = Script(quiz="medium")
    script.play(0.0, 610.0, at=0.0)
    assert script.kinds() == [(InterventionKind.QUIZ, "CHECKPOINT")] * 2
    first, second = script.decisions
    assert (first.start, first.end) == (0.0, 300.0)
    assert (second.start, second.end) == (300.0, 600.0)


def test_quiz_frequency_sets_the_stretch_and_off_disables_it() -> None:
    high = Script(quiz="high")
    high.play(0.0, 190.0, at=0.0)
    assert [(d.start, d.end) for d in high.decisions] == [(0.0, 180.0)]
    off = Script(quiz="off")
    off.play(0.0, 1200.0, at=0.0)
    assert off.decisions == []


def test_rewatched_content_is_not_new_content() -> None:
    script = Script(quiz="medium")
    at = script.play(0.0, 200.0, at=0.0)
    for _ in range(3):  # going back over old content, slowly enough not to look like a struggle
        script.seek(200.0, 100.0, at=at)
        at = script.play(100.0, 100.0, at=at + 400.0)
    assert script.decisions == []
    script.play(200.0, 110.0, at=at)
    assert script.kinds() == [(InterventionKind.QUIZ, "CHECKPOINT")]


# --- cool-down, preferences, inactivity ----------------------------------------------------------


def test_cooldown_holds_back_the_next_intervention() -> None:
    script = Script(quiz="high")
    at = script.play(0.0, 170.0, at=0.0)
    script.seek(170.0, 130.0, at=at)
    at = script.play(130.0, 30.0, at=at + 1.0)
    script.seek(160.0, 135.0, at=at)
    assert script.kinds() == [(InterventionKind.HINT, "REWATCH")]
    hint_time = script.decisions[0].time
    # The 180 s checkpoint arrives 35 s later, within the 120 s cool-down: held back, not lost.
    at = script.play(135.0, 60.0, at=at + 1.0)
    assert len(script.decisions) == 1
    script.play(script.position, 120.0, at=at)
    assert script.kinds()[1] == (InterventionKind.QUIZ, "CHECKPOINT")
    assert script.decisions[1].time - hint_time >= CONFIG.cooldown


def test_without_cooldown_both_fire() -> None:
    script = Script(quiz="high", config=replace(CONFIG, cooldown=0.0))
    at = script.play(0.0, 170.0, at=0.0)
    script.seek(170.0, 130.0, at=at)
    at = script.play(130.0, 30.0, at=at + 1.0)
    script.seek(160.0, 135.0, at=at)
    script.play(135.0, 60.0, at=at + 1.0)
    assert script.kinds() == [(InterventionKind.HINT, "REWATCH"), (InterventionKind.QUIZ, "CHECKPOINT")]


def test_auto_hints_off_means_no_hint_or_review_but_breaks_still_come() -> None:
    script = Script(hints=False)
    at = script.play(0.0, 130.0, at=0.0)
    script.seek(130.0, 95.0, at=at)
    at = script.play(95.0, 40.0, at=at + 1.0)
    script.seek(135.0, 100.0, at=at)
    for position in (150.0, 155.0, 160.0):
        script.send(EventKind.PAUSED, position, at=at + 5.0)
        at = script.play(position, 5.0, at=at + 6.0)
    script.play(script.position, 26 * 60.0, at=at, beat=30.0)
    assert script.kinds() == [(InterventionKind.BREAK, "LONG_SESSION")]


def test_preferences_can_change_mid_session() -> None:
    script = Script(quiz="off")
    at = script.play(0.0, 200.0, at=0.0)
    script.engine.update_preferences(LearnerPreferences(True, "high"))
    script.play(200.0, 10.0, at=at)
    assert script.kinds() == [(InterventionKind.QUIZ, "CHECKPOINT")]


def test_nothing_while_inactive() -> None:
    script = Script(quiz="high", config=replace(CONFIG, cooldown=600.0))
    at = script.play(0.0, 130.0, at=0.0)
    script.seek(130.0, 95.0, at=at)
    at = script.play(95.0, 40.0, at=at + 1.0)
    script.seek(135.0, 100.0, at=at)
    assert len(script.decisions) == 1
    at = script.play(100.0, 150.0, at=at + 1.0)  # the checkpoint is due but cooling down
    script.send(EventKind.PAUSED, script.position, at=at)
    # Paused for ten minutes; the player keeps reporting its (unchanged) position.
    for minute in range(1, 11):
        script.send(EventKind.HEARTBEAT, script.position, at=at + 60.0 * minute)
    assert len(script.decisions) == 1
    script.send(EventKind.PLAYED, script.position, at=at + 660.0)
    assert script.kinds()[1] == (InterventionKind.QUIZ, "CHECKPOINT")


def test_nothing_after_the_player_is_closed() -> None:
    script = Script(config=replace(CONFIG, cooldown=0.0))
    at = script.play(0.0, 130.0, at=0.0)
    script.send(EventKind.TERMINATED, 130.0, at=at)
    script.seek(130.0, 95.0, at=at + 1.0)
    script.seek(130.0, 96.0, at=at + 2.0)
    assert script.decisions == []


# --- validation ----------------------------------------------------------------------------------


def test_impossible_events_are_rejected_one_by_one() -> None:
    script = Script(duration=600.0)
    script.send(EventKind.PLAYED, 0.0, at=0.0)
    script.send(EventKind.HEARTBEAT, -1.0, at=1.0)
    script.send(EventKind.HEARTBEAT, 700.0, at=2.0)
    script.send(EventKind.SEEKED, 10.0, at=3.0, seek_from=10.0, seek_to=900.0)
    script.send(None, 10.0, at=4.0)
    script.send(EventKind.RATE_CHANGED, 10.0, at=5.0, rate=9.0)
    script.send(EventKind.ACCEPTED, 10.0, at=6.0)
    script.send(EventKind.ACCEPTED, 10.0, at=6.0, intervention_id="nope")
    script.send(EventKind.HEARTBEAT, 10.0, at=10.0)
    assert len(script.rejections) == 7
    assert "negative" in script.rejections[0]
    assert "beyond the video's duration" in script.rejections[1]
    assert "seek_to_seconds" in script.rejections[2]
    assert "unknown" in script.rejections[3]
    assert "playback_rate" in script.rejections[4]
    assert "intervention_id is required" in script.rejections[5]
    assert "unknown intervention_id" in script.rejections[6]
    assert script.engine.position == 10.0


def test_out_of_order_events_are_rejected_beyond_the_tolerance() -> None:
    script = Script()
    script.send(EventKind.PLAYED, 0.0, at=100.0)
    script.send(EventKind.HEARTBEAT, 10.0, at=99.0)  # within the 2 s tolerance
    script.send(EventKind.HEARTBEAT, 20.0, at=90.0)
    assert len(script.rejections) == 1 and "out of order" in script.rejections[0]
    assert script.engine.last_time == T0 + 100.0


def test_event_time_defaults_to_the_server_clock_and_duplicates_are_ignored() -> None:
    script = Script()
    script.now = T0 + 42.0
    step = script.engine.step(EventInput(kind=EventKind.PLAYED, position=0.0, label="a", event_id="a"))
    assert step.event is not None and step.event.time == T0 + 42.0 and step.event.client_time is None
    again = script.engine.step(EventInput(kind=EventKind.PLAYED, position=0.0, label="a", event_id="a"))
    assert again.duplicate


def test_known_interventions_can_be_acknowledged() -> None:
    script = Script()
    script.engine.remember_intervention("iv-1")
    script.send(EventKind.ACCEPTED, 0.0, at=0.0, intervention_id="iv-1")
    script.send(EventKind.DISMISSED, 0.0, at=1.0, intervention_id="iv-1")
    assert script.rejections == []


def test_watched_seconds_count_playback_not_jumps() -> None:
    script = Script()
    at = script.play(0.0, 100.0, at=0.0)
    script.seek(100.0, 500.0, at=at)
    script.play(500.0, 50.0, at=at + 1.0)
    assert script.engine.watched_seconds == 150.0
    assert script.engine.high_water == 550.0
