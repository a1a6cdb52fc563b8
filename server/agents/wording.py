"""Sentences about a student's own data, shared by the learning path and the reflection: counts said as they
are, and help said the way it happened (asked for, or offered by the tutor on its own)."""

from __future__ import annotations

from collections.abc import Sequence

from server.agents.domain import USER_TRIGGER
from server.agents.mastery import STRUGGLING_BELOW
from server.agents.repository import HelpSpot


def counted(count: int, noun: str) -> str:
    """`1 quiz question`, `2 quiz questions`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def listing(items: Sequence[str]) -> str:
    """`“a”`, `“a” and “b”`, `“a”, “b” and “c”`."""
    quoted = [f"“{item}”" for item in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def quiz_record(concept: str, correct: int, questions: int) -> str:
    """`1 of 3 quiz questions on “x” right on the first try`: mastery counts only the first answer to each
    question (later ones follow the revealed answer)."""
    return f"{correct} of {counted(questions, 'quiz question')} on “{concept}” right on the first try"


def is_weak(probability: float, attempts: int) -> bool:
    """Mastery below the struggling line, backed by at least one counted answer."""
    return attempts > 0 and probability < STRUGGLING_BELOW


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def help_phrase(spots: Sequence[HelpSpot]) -> str:
    """What happened at these spots, from the records: `you asked for 2 hints and the tutor stepped in once`.

    A hint or a chat message with the user trigger was asked for; everything else (a hint or a review pointer
    from a watch-session intervention) was the tutor stepping in unasked.
    """
    hints = sum(1 for spot in spots if spot.agent_type == "hint" and spot.trigger == USER_TRIGGER)
    questions = sum(1 for spot in spots if spot.agent_type == "chat")
    offered = len(spots) - hints - questions
    parts: list[str] = []
    if hints:
        parts.append("you asked for a hint" if hints == 1 else f"you asked for {hints} hints")
    if questions:
        parts.append(
            "you asked the tutor a question" if questions == 1 else f"you asked the tutor {questions} questions"
        )
    if offered:
        parts.append(f"the tutor stepped in {_times(offered)}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def sentence_start(text: str) -> str:
    return text[:1].upper() + text[1:]


def normalize_text(text: str) -> str:
    """Case-folded with whitespace collapsed: for telling whether two short texts say the same thing."""
    return " ".join(text.casefold().split())
