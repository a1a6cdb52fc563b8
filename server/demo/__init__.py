"""The bundled demo course, "Modern Web Development Fundamentals" (``webdev-101``).

Four short lectures with WebVTT transcripts, a manifest (``course/course.json``) and labelled retrieval
questions (``eval_questions.json``). Everything is read through ``importlib.resources`` so it works from a
source checkout and from an installed wheel alike.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

__all__ = ["DemoCourse", "DemoVideo", "EvalQuestion", "load_demo_course", "load_eval_questions", "read_course"]


@dataclass(frozen=True, slots=True)
class DemoVideo:
    video_id: str
    title: str
    file: str
    vtt: str
    duration_seconds: float
    concepts: tuple[str, ...]
    prerequisites: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DemoCourse:
    course_id: str
    title: str
    videos: tuple[DemoVideo, ...]

    def video(self, video_id: str) -> DemoVideo:
        for video in self.videos:
            if video.video_id == video_id:
                return video
        raise KeyError(video_id)


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    question_id: str
    question: str
    video_id: str
    expected_start: float
    expected_end: float
    answer_keywords: tuple[str, ...]


def _package_root() -> Traversable:
    return files(__name__)


def _read_json(resource: Traversable) -> Any:
    return json.loads(resource.read_text(encoding="utf-8"))


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"demo course: {what} must be a list of strings")
    return tuple(value)


@functools.cache
def load_demo_course() -> DemoCourse:
    """The demo course with every video's WebVTT text; raises ValueError if the bundled data is broken."""
    return read_course(_package_root() / "course")


def read_course(course_dir: Traversable) -> DemoCourse:
    """A course in the demo's layout: `course.json` (course id, title, videos with their WebVTT file,
    duration, concepts and prerequisites) beside the WebVTT files."""
    manifest = _read_json(course_dir / "course.json")
    videos: list[DemoVideo] = []
    for entry in manifest["videos"]:
        video_id = str(entry["video_id"])
        videos.append(
            DemoVideo(
                video_id=video_id,
                title=str(entry["title"]),
                file=str(entry["file"]),
                vtt=(course_dir / str(entry["file"])).read_text(encoding="utf-8"),
                duration_seconds=float(entry["duration_seconds"]),
                concepts=_strings(entry["concepts"], f"{video_id}.concepts"),
                prerequisites=_strings(entry["prerequisites"], f"{video_id}.prerequisites"),
            )
        )
    known: set[str] = set()
    for video in videos:
        missing = [prerequisite for prerequisite in video.prerequisites if prerequisite not in known]
        if missing:
            raise ValueError(f"demo course: {video.video_id} needs {missing} listed before it")
        known.add(video.video_id)
    return DemoCourse(course_id=str(manifest["course_id"]), title=str(manifest["title"]), videos=tuple(videos))


@functools.cache
def load_eval_questions() -> tuple[EvalQuestion, ...]:
    """Labelled questions on the demo course: where in which video each answer is spoken."""
    data = _read_json(_package_root() / "eval_questions.json")
    return tuple(
        EvalQuestion(
            question_id=str(item["id"]),
            question=str(item["question"]),
            video_id=str(item["video_id"]),
            expected_start=float(item["expected_start"]),
            expected_end=float(item["expected_end"]),
            answer_keywords=_strings(item["answer_keywords"], f"{item['id']}.answer_keywords"),
        )
        for item in data["questions"]
    )
