"""The bundled demo course parses cleanly, has lecture-length videos, and its eval labels are right."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from server.demo import DemoVideo, EvalQuestion, load_demo_course, load_eval_questions
from server.transcripts.chunking import chunk_cues
from server.transcripts.parsing import ParsedTranscript, TranscriptFormat, parse_transcript

COURSE = load_demo_course()
QUESTIONS = load_eval_questions()


def parsed(video: DemoVideo) -> ParsedTranscript:
    return parse_transcript(video.vtt, TranscriptFormat.WEBVTT, duration_seconds=video.duration_seconds)


def test_manifest() -> None:
    assert COURSE.course_id == "webdev-101"
    assert COURSE.title == "Modern Web Development Fundamentals"
    assert len(COURSE.videos) >= 3
    ids = [video.video_id for video in COURSE.videos]
    assert len(set(ids)) == len(ids)
    assert COURSE.video("flexbox-layout").title == "CSS Flexbox Layout"
    with pytest.raises(KeyError):
        COURSE.video("missing")
    for position, video in enumerate(COURSE.videos):
        assert video.concepts
        assert set(video.prerequisites) <= set(ids[:position]), "prerequisites come earlier in the course"
    assert any(video.prerequisites for video in COURSE.videos)


def test_data_files_are_package_resources() -> None:
    root = files("server.demo")
    manifest = json.loads((root / "course" / "course.json").read_text(encoding="utf-8"))
    for entry in manifest["videos"]:
        assert (root / "course" / entry["file"]).is_file()
    assert (root / "eval_questions.json").is_file()


@pytest.mark.parametrize("video", COURSE.videos, ids=lambda video: video.video_id)
def test_video_is_a_clean_lecture_of_six_to_nine_minutes(video: DemoVideo) -> None:
    transcript = parsed(video)
    assert transcript.warnings == []
    assert transcript.language == "en"
    cues = transcript.cues
    assert 360 <= cues[-1].end <= video.duration_seconds <= 9 * 60
    words = sum(len(cue.text.split()) for cue in cues)
    assert 900 <= words <= 1300
    words_per_minute = words / (cues[-1].end / 60)
    assert 120 <= words_per_minute <= 165
    assert all(2.0 <= cue.duration <= 6.0 for cue in cues)
    assert cues[0].speaker == "Instructor"
    assert all("<" not in cue.text and "&" not in cue.text for cue in cues)
    for concept in video.concepts:
        assert concept.lower() in " ".join(cue.text.lower() for cue in cues)


@pytest.mark.parametrize("video", COURSE.videos, ids=lambda video: video.video_id)
def test_video_chunk_count_is_sensible(video: DemoVideo) -> None:
    transcript = parsed(video)
    chunks = chunk_cues(transcript.cues)
    assert video.duration_seconds / 60 <= len(chunks) <= video.duration_seconds / 30 + 1
    assert all(chunk.duration <= 60 and chunk.token_count <= 220 for chunk in chunks)
    assert chunks[-1].cue_end_index == len(transcript.cues) - 1


def test_later_lessons_build_on_earlier_ones() -> None:
    react = " ".join(cue.text for cue in parsed(COURSE.video("react-state-effects")).cues)
    caching = " ".join(cue.text for cue in parsed(COURSE.video("http-caching")).cues)
    assert "async and await from the previous lesson" in react
    assert "Promises lesson" in caching
    assert "React effects" in caching
    assert {cue.speaker for cue in parsed(COURSE.video("react-state-effects")).cues} >= {"Instructor", "Student"}


def test_eval_questions_cover_every_video() -> None:
    assert len(QUESTIONS) >= 15
    assert len({question.question_id for question in QUESTIONS}) == len(QUESTIONS)
    for video in COURSE.videos:
        assert sum(question.video_id == video.video_id for question in QUESTIONS) >= 3


@pytest.mark.parametrize("question", QUESTIONS, ids=lambda question: question.question_id)
def test_eval_answer_is_spoken_in_the_labelled_range(question: EvalQuestion) -> None:
    video = COURSE.video(question.video_id)
    assert 0 <= question.expected_start < question.expected_end <= video.duration_seconds
    assert question.expected_end - question.expected_start <= 60
    cues = parsed(video).cues
    assert any(cue.start == question.expected_start for cue in cues), "the range starts on a cue boundary"
    assert any(cue.end == question.expected_end for cue in cues), "the range ends on a cue boundary"
    spoken = " ".join(
        cue.text for cue in cues if cue.start >= question.expected_start and cue.end <= question.expected_end
    ).lower()
    for keyword in question.answer_keywords:
        assert keyword.lower() in spoken, f"{keyword!r} is not spoken in {question.question_id}'s range"
