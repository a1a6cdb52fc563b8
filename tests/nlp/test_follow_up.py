"""Whether a question continues the previous turn: the word-level pre-check (`may_follow_up`, no parse) never
rules out a question the parse reads as a follow-up, over every question the demo course and the held-out
course label, their follow-ups, and the shapes that pre-check reads differently from spaCy's tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.nlp.query import analyse_question, may_follow_up

ROOT = Path(__file__).resolve().parents[2]
LABELLED = (ROOT / "server/demo/eval_questions.json", ROOT / "evals/heldout/stats-101/labels.json")
CRAFTED = [
    "and what about the second argument?",
    "What about align-items?",
    "how about it.value then?",
    "why is that?",
    "does it also shrink?",
    "— and the fix?",
    "(so what changes?)",
    "3 and what then?",
    "what's that one-liner doing?",
    "it's the same with those, right?",
    "Also: the cross axis?",
    "then?",
    "useEffect vs useLayoutEffect?",
    "What is a flex container?",
    "Why does min-width: auto stop a flex item from shrinking?",
]


def labelled_questions() -> list[str]:
    questions: list[str] = []
    for path in LABELLED:
        labels = json.loads(path.read_text())
        for key in ("questions", "paraphrased_questions", "unanswerable"):
            questions.extend(item["question"] for item in labels.get(key, []))
        for item in labels.get("follow_ups", []):
            questions.extend((item["first"]["question"], item["follow_up"]["question"]))
    return questions


@pytest.mark.parametrize("question", CRAFTED)
def test_the_pre_check_keeps_every_crafted_follow_up(question: str) -> None:
    assert may_follow_up(question) or not analyse_question(question).follow_up


def test_the_pre_check_keeps_every_labelled_follow_up_and_rules_out_standalone_questions() -> None:
    questions = labelled_questions()
    assert len(questions) > 150
    missed = [
        question for question in questions if analyse_question(question).follow_up and not may_follow_up(question)
    ]
    assert missed == []
    # What it is for: most questions name their own topic and need no parse to know it.
    ruled_out = [question for question in questions if not may_follow_up(question)]
    assert len(ruled_out) > len(questions) / 3


def test_the_labelled_follow_ups_are_follow_ups() -> None:
    for path in LABELLED:
        for item in json.loads(path.read_text())["follow_ups"]:
            assert may_follow_up(item["follow_up"]["question"]), item["id"]
