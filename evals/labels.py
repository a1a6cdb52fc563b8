"""The labelled set: questions with where the lecture answers them, the stretches to quiz on, and the
transcripts' own text to check answers against.

The transcripts are read here from the bundled WebVTT files with a reader of the eval's own rather than the
server's parser, so a parsing fault in the server cannot hide itself from the checks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib.resources import files

from server.demo import DemoCourse, EvalQuestion, load_demo_course, load_eval_questions

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
class LabelledSet:
    course: DemoCourse
    questions: tuple[EvalQuestion, ...]
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


def quiz_stretches() -> tuple[QuizStretch, ...]:
    data = json.loads((files("server.demo") / "eval_questions.json").read_text(encoding="utf-8"))
    return tuple(
        QuizStretch(
            stretch_id=str(item["id"]),
            video_id=str(item["video_id"]),
            start=None if item.get("start") is None else float(item["start"]),
            end=None if item.get("end") is None else float(item["end"]),
            difficulty=str(item["difficulty"]),
            question_count=int(item["question_count"]),
        )
        for item in data["quizzes"]
    )


def load_labelled_set() -> LabelledSet:
    course = load_demo_course()
    transcripts = {
        video.video_id: read_vtt(video.video_id, video.vtt, video.duration_seconds) for video in course.videos
    }
    return LabelledSet(course, load_eval_questions(), quiz_stretches(), transcripts)
