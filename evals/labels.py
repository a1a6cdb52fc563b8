"""The labelled sets: questions with where the lecture answers them (asked directly, or paraphrased with
few of the lecture's words, with the playhead at least two minutes away), questions the lectures never
answer, two-turn follow-ups, moments a student is stuck at, the stretches to quiz on, and the transcripts'
own text to check answers against.

Two courses: the demo course `webdev-101` (the DEV set: the engine may be tuned on it) and `stats-101` in
`evals/heldout/` (HELD OUT: written separately, never tuned on, reported in its own column).

The transcripts are read here from the WebVTT files with a reader of the eval's own rather than the
server's parser, so a parsing fault in the server cannot hide itself from the checks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from server.demo import DemoCourse, EvalQuestion, load_demo_course, read_course

HELD_OUT_DIR = Path(__file__).parent / "heldout" / "stats-101"

_TIMING = re.compile(r"^(\S+)\s+-->\s+(\S+)")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True, slots=True)
class QuizStretch:
    """A stretch of a video to generate a quiz for; `start`/`end` None means the whole video."""

    stretch_id: str
    video_id: str
    start: float | None
    end: float | None
    difficulty: str
    question_count: int


@dataclass(frozen=True, slots=True)
class Cue:
    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class Transcript:
    video_id: str
    duration: float
    cues: tuple[Cue, ...]

    def text_between(self, start: float, end: float) -> str:
        """The text of every cue overlapping [start, end], in order."""
        return " ".join(cue.text for cue in self.cues if cue.start < end and cue.end > start)

    @property
    def text(self) -> str:
        return " ".join(cue.text for cue in self.cues)


@dataclass(frozen=True, slots=True)
class Paraphrased:
    """A question worded with few of the lecture's words, asked with the playhead at `playhead`."""

    question: EvalQuestion
    playhead: float


@dataclass(frozen=True, slots=True)
class Unanswerable:
    question_id: str
    question: str
    video_id: str
    playhead: float


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Two turns in one session: the second only makes sense after the first."""

    follow_up_id: str
    video_id: str
    playhead: float
    first: EvalQuestion
    second: EvalQuestion


@dataclass(frozen=True, slots=True)
class HintMoment:
    """A student stuck at `position` (saying `struggle`, maybe nothing); a good hint points into the range."""

    moment_id: str
    video_id: str
    position: float
    struggle: str
    expected_start: float
    expected_end: float


@dataclass(frozen=True, slots=True)
class LabelledSet:
    name: str  # "dev" or "held-out"
    course: DemoCourse
    questions: tuple[EvalQuestion, ...]
    paraphrased: tuple[Paraphrased, ...]
    unanswerable: tuple[Unanswerable, ...]
    follow_ups: tuple[FollowUp, ...]
    hint_moments: tuple[HintMoment, ...]
    quizzes: tuple[QuizStretch, ...]
    transcripts: dict[str, Transcript]

    @property
    def course_id(self) -> str:
        return self.course.course_id


def _seconds(stamp: str) -> float:
    parts = stamp.replace(",", ".").split(":")
    total = 0.0
    for part in parts:
        total = total * 60 + float(part)
    return total


def read_vtt(video_id: str, vtt: str, duration: float) -> Transcript:
    """Cues of a WebVTT file: timing lines, then text lines up to a blank line (voice tags removed)."""
    cues: list[Cue] = []
    lines = vtt.splitlines()
    index = 0
    while index < len(lines):
        timing = _TIMING.match(lines[index].strip())
        index += 1
        if timing is None:
            continue
        body: list[str] = []
        while index < len(lines) and lines[index].strip():
            body.append(_TAG.sub("", lines[index]).strip())
            index += 1
        cues.append(Cue(_seconds(timing.group(1)), _seconds(timing.group(2)), " ".join(body)))
    return Transcript(video_id, duration, tuple(cues))


def _question(item: dict[str, Any], video_id: str = "") -> EvalQuestion:
    return EvalQuestion(
        question_id=str(item.get("id", "")),
        question=str(item["question"]),
        video_id=str(item.get("video_id", video_id)),
        expected_start=float(item["expected_start"]),
        expected_end=float(item["expected_end"]),
        answer_keywords=tuple(str(keyword) for keyword in item.get("answer_keywords", ())),
    )


def _labelled(
    name: str, course: DemoCourse, data: dict[str, Any], direct_key: str, paraphrased_key: str
) -> LabelledSet:
    transcripts = {
        video.video_id: read_vtt(video.video_id, video.vtt, video.duration_seconds) for video in course.videos
    }
    return LabelledSet(
        name=name,
        course=course,
        questions=tuple(_question(item) for item in data.get(direct_key, ())),
        paraphrased=tuple(
            Paraphrased(_question(item), float(item["playhead_seconds"])) for item in data.get(paraphrased_key, ())
        ),
        unanswerable=tuple(
            Unanswerable(str(item["id"]), str(item["question"]), str(item["video_id"]), float(item["playhead_seconds"]))
            for item in data.get("unanswerable", ())
        ),
        follow_ups=tuple(
            FollowUp(
                str(item["id"]),
                str(item["video_id"]),
                float(item["playhead_seconds"]),
                _question({"id": f"{item['id']}-1", **item["first"]}, str(item["video_id"])),
                _question({"id": f"{item['id']}-2", **item["follow_up"]}, str(item["video_id"])),
            )
            for item in data.get("follow_ups", ())
        ),
        hint_moments=tuple(
            HintMoment(
                str(item["id"]),
                str(item["video_id"]),
                float(item["position_seconds"]),
                str(item.get("struggle", "")),
                float(item["expected_start"]),
                float(item["expected_end"]),
            )
            for item in data.get("hint_moments", ())
        ),
        quizzes=tuple(
            QuizStretch(
                stretch_id=str(item["id"]),
                video_id=str(item["video_id"]),
                start=None if item.get("start") is None else float(item["start"]),
                end=None if item.get("end") is None else float(item["end"]),
                difficulty=str(item["difficulty"]),
                question_count=int(item["question_count"]),
            )
            for item in data.get("quizzes", ())
        ),
        transcripts=transcripts,
    )


def _json(resource: Traversable | Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return loaded


def load_labelled_set() -> LabelledSet:
    """The DEV set: the demo course (the engine may be tuned on it)."""
    data = _json(files("server.demo") / "eval_questions.json")
    return _labelled("dev", load_demo_course(), data, "questions", "paraphrased_questions")


def load_held_out_set() -> LabelledSet:
    """The HELD-OUT set: `stats-101`, written apart from the engine and never tuned on. Its questions are all
    paraphrased."""
    return _labelled("held-out", read_course(HELD_OUT_DIR), _json(HELD_OUT_DIR / "labels.json"), "", "questions")
