"""Personal-data redaction per chat turn: Presidio (server/llm/pii.py) against the regular expressions it replaced.

    python -m bench.bench_pii [--turns 300]

The baseline is the regex module as it was at `REGEX_REVISION`, read from git and run in this process beside
the current one. Both redact the same turns, interleaved turn by turn so drift hits them alike: each turn is
one of the demo course's labelled questions (made unique, as a new question is), redacted when the turn begins,
then the previous question, then the whole prompt a turn sends (the system message with ~10 KB of the demo
transcripts, a different window each turn, two earlier questions and answers as history, and the question).
Presidio keeps its recent results, so the question and the history are analysed once, as in the server; the
regex module had no such cache. Most of the demo questions name nothing (`What does flex: 1 mean?`), so
Presidio skips the named-entity recogniser for them; the same question opened with "In JavaScript," is timed
apart, as a question that names something. Timed in this thread, as the server's worker thread runs them.

Published (bench.report): the p50 of redacting one question (target <= 5 ms: a quarter of the ~20 ms a turn
spends before its upstream call), of a question that names something and of a whole turn's redaction, each
beside the regex baseline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.report import Line, at_most, context, percentile, publish
from server.demo import load_demo_course, load_eval_questions
from server.llm import pii
from server.llm.provider import ChatMessage

REGEX_REVISION = "12688eb"
IMPLEMENTATIONS = ("regex", "presidio")
ROOT = Path(__file__).resolve().parent.parent
SYSTEM_CHARS = 10_000  # SOURCE_TOKEN_BUDGET (2,500 tokens) of transcript text, at ~4 characters a token
ANSWER = "The lecture explains it at 03:15: the browser keeps running while the request is pending [c1]."


def regex_module() -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{REGEX_REVISION}:server/llm/pii.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType("pii_regex")
    sys.modules[module.__name__] = module  # dataclasses look their module up while the class is built
    exec(compile(source, f"{REGEX_REVISION}:server/llm/pii.py", "exec"), module.__dict__)
    return module


def transcript_text() -> str:
    lines = []
    for video in load_demo_course().videos:
        for line in video.vtt.splitlines():
            line = line.strip()
            if line and line != "WEBVTT" and "-->" not in line and not line.isdigit():
                lines.append(line)
    return " ".join(lines)


class Turns:
    """The texts of turn `n`, the same for both implementations."""

    def __init__(self) -> None:
        self.questions = [question.question for question in load_eval_questions()]
        self.transcript = transcript_text()

    def question(self, n: int) -> str:
        return f"{self.questions[n % len(self.questions)]} (asked in turn {n})"

    def naming_question(self, n: int) -> str:
        """The question with a proper noun in it, so the named-entity recogniser runs."""
        question = self.question(n)
        return f"In JavaScript, {question[0].lower()}{question[1:]}"

    def system(self, n: int) -> str:
        start = (n * 997) % max(1, len(self.transcript) - SYSTEM_CHARS)
        return (
            f"You are a tutor.\n<transcript_data>\n{self.transcript[start : start + SYSTEM_CHARS]}\n</transcript_data>"
        )

    def prompt(self, n: int) -> list[ChatMessage]:
        history: list[ChatMessage] = []
        for earlier in (n - 2, n - 1):
            if earlier >= 0:
                history += [ChatMessage("user", self.question(earlier)), ChatMessage("assistant", ANSWER)]
        return [ChatMessage("system", self.system(n)), *history, ChatMessage("user", self.question(n))]


Redact = Callable[[str], Any]
RedactMessages = Callable[[Sequence[ChatMessage]], Any]


def one_turn(turns: Turns, n: int, redact: Redact, redact_messages: RedactMessages) -> dict[str, float]:
    """Milliseconds for turn `n`: the question, the whole turn (what the chat turn redacts, in its order), and a
    question that names something."""
    started = time.perf_counter()
    redact(turns.question(n))
    asked = time.perf_counter()
    redact(turns.question(n - 1) if n else "")
    redact_messages(turns.prompt(n))
    done = time.perf_counter()
    redact(turns.naming_question(n))
    named = time.perf_counter()
    return {"q": (asked - started) * 1000, "turn": (done - started) * 1000, "named": (named - done) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=300)
    args = parser.parse_args()

    regex = regex_module()
    pii.warm_up()
    turns = Turns()
    warm = 20
    samples: dict[str, dict[str, list[float]]] = {name: {"q": [], "turn": [], "named": []} for name in IMPLEMENTATIONS}
    for n in range(warm + args.turns):
        for name, redact, redact_messages in (
            ("regex", regex.redact, regex.redact_messages),
            ("presidio", pii.redact, pii.redact_messages),
        ):
            timings = one_turn(turns, n, redact, redact_messages)
            if n >= warm:
                for what, milliseconds in timings.items():
                    samples[name][what].append(milliseconds)

    def p(name: str, what: str, q: float = 50) -> float:
        return percentile(samples[name][what], q)

    for what, label in (("q", "one question"), ("named", "naming question"), ("turn", "a whole turn")):
        print(
            f"  {label:<16} regex p50 {p('regex', what):7.3f} ms  p99 {p('regex', what, 99):7.3f} ms   "
            f"presidio p50 {p('presidio', what):7.3f} ms  p99 {p('presidio', what, 99):7.3f} ms"
        )
    regex_baseline = f"regexes at {REGEX_REVISION}"
    lines: list[Line] = [
        at_most("PII redaction", "one question, Presidio p50", p("presidio", "q"), "ms", 5.0, baseline=regex_baseline),
        context("PII redaction", "one question, regex p50", p("regex", "q"), "ms"),
        context("PII redaction", "one question, Presidio/regex", p("presidio", "q") / p("regex", "q"), "x"),
        context("PII redaction", "question naming something, Presidio p50", p("presidio", "named"), "ms"),
        context("PII redaction", "question naming something, regex p50", p("regex", "named"), "ms"),
        context("PII redaction", "whole turn, Presidio p50", p("presidio", "turn"), "ms", baseline=regex_baseline),
        context("PII redaction", "whole turn, regex p50", p("regex", "turn"), "ms"),
        context("PII redaction", "whole turn, Presidio p99", p("presidio", "turn", 99), "ms"),
    ]
    publish(lines)


if __name__ == "__main__":
    main()
