"""Records in, rates out: one table of metric rows by (course, engine) columns, the targets for the held-out
course, and what each column got wrong."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from evals.checks import normalized
from evals.runs import ChatRecord, HintRecord, QuizRecord, SearchRecord

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rate:
    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def shown(self) -> str:
        return f"{self.value:.2f} ({self.hits}/{self.total})" if self.total else "—"


@dataclass(frozen=True, slots=True)
class Count:
    """A number of things that should not happen (0 is the target)."""

    found: int
    of: int

    def shown(self) -> str:
        return f"{self.found} of {self.of}" if self.of else "—"


@dataclass(frozen=True, slots=True)
class EngineResult:
    """Everything one engine scored on one course."""

    engine: str  # "offline" or the model's name
    model: str  # what the server reports as the author of this engine's answers and quizzes
    course: str  # "dev" or "held-out"
    search: tuple[SearchRecord, ...]
    chat: tuple[ChatRecord, ...]
    hints: tuple[HintRecord, ...]
    quizzes: tuple[QuizRecord, ...]

    @property
    def column(self) -> str:
        return f"{self.course}: {self.engine}"


# Targets on the held-out course for the offline engine (higher is better for rates; counts must be 0).
TARGETS = {
    "chat citation accuracy, paraphrased (playhead ≥ 2 min away)": ">= 0.90",
    "unanswerable questions answered honestly": ">= 0.90",
    "hints giving away a quiz answer or the blanked term": "0",
    "repeated hint climbs a rung with a new text (1 → 2 → 3)": "1.00",
    "quiz validity (valid / generated questions)": "1.00",
    "answers that are noun phrases (spaCy)": "1.00",
    "distractors related but not synonyms, same kind": "1.00",
    "grammatical stems": "1.00",
    "questions sharing an answer within a quiz": "0",
    "same question in overlapping stretches": "0",
}


def _rate(records: Sequence[T], passed: Callable[[T], bool]) -> Rate:
    return Rate(sum(1 for record in records if passed(record)), len(records))


def _repeats_across_overlaps(quizzes: Sequence[QuizRecord]) -> Count:
    """Identical questions in two quizzes whose stretches of the same video overlap."""
    found = pairs = 0
    for first_index, first in enumerate(quizzes):
        for second in quizzes[first_index + 1 :]:
            if not first.items or not second.items or first.items[0][0].video_id != second.items[0][0].video_id:
                continue
            a, b = first.items[0][0].stretch, second.items[0][0].stretch
            if not (a[0] < b[1] and b[0] < a[1]):
                continue
            pairs += 1
            stems = {normalized(item.stem) for item, _, _ in first.items}
            found += sum(1 for item, _, _ in second.items if normalized(item.stem) in stems)
    return Count(found, pairs)


def _shared_answers(quizzes: Sequence[QuizRecord]) -> Count:
    found = 0
    for quiz in quizzes:
        answers = [
            normalized(item.options[item.scored_correct.index(True)])
            for item, _, _ in quiz.items
            if sum(item.scored_correct) == 1
        ]
        found += len(answers) - len(set(answers))
    return Count(found, len(quizzes))


def metrics(result: EngineResult) -> dict[str, Rate | Count]:
    """The table's rows for one column, in display order."""
    chat = result.chat

    def of(kind: str, playhead: str | None = None) -> list[ChatRecord]:
        return [r for r in chat if r.kind == kind and (playhead is None or r.playhead == playhead)]

    answered = [r for r in chat if r.kind in ("direct", "paraphrased", "follow-up") and not r.says_not_covered]
    items = [entry for quiz in result.quizzes for entry in quiz.items]
    qualities = [quality for _, _, quality in items if quality is not None]
    hints = result.hints
    return {
        "search hit@3, course scope, direct questions": _rate(
            [r for r in result.search if r.scope == "course" and r.kind == "direct"], lambda r: r.hit
        ),
        "search hit@3, course scope, paraphrased questions": _rate(
            [r for r in result.search if r.scope == "course" and r.kind == "paraphrased"], lambda r: r.hit
        ),
        "chat citation accuracy, direct, playhead just after the answer": _rate(
            of("direct", "after"), lambda r: r.cites_expected
        ),
        "chat citation accuracy, direct, playhead 2 min away": _rate(
            of("direct", "elsewhere"), lambda r: r.cites_expected
        ),
        "chat citation accuracy, paraphrased (playhead ≥ 2 min away)": _rate(
            of("paraphrased"), lambda r: r.cites_expected
        ),
        "paraphrased questions answered without a hedge": _rate(of("paraphrased"), lambda r: not r.says_not_covered),
        "unanswerable questions answered honestly": _rate(of("unanswerable"), lambda r: r.says_not_covered),
        "follow-up questions citing the right place": _rate(of("follow-up"), lambda r: r.cites_expected),
        "answers with a check-for-understanding question": _rate(answered, lambda r: r.checks_understanding),
        "chat answers from the offline fallback": _rate(chat, lambda r: r.fallback),
        "hints that ask a question or say what to do": _rate(hints, lambda r: r.questions_or_directives),
        "first hint points into the labelled stretch": _rate(hints, lambda r: r.grounded),
        "hints giving away a quiz answer or the blanked term": Count(sum(1 for r in hints if r.leaks), len(hints)),
        "repeated hint climbs a rung with a new text (1 → 2 → 3)": _rate(hints, lambda r: r.climbs),
        "quiz validity (valid / generated questions)": _rate(items, lambda entry: entry[1].valid),
        "quiz questions generated / asked for": Rate(len(items), sum(quiz.asked for quiz in result.quizzes)),
        "answers that are noun phrases (spaCy)": _rate(qualities, lambda q: q.answer_is_concept),
        "distractors related but not synonyms, same kind": _rate(qualities, lambda q: q.distractors_plausible),
        "grammatical stems": _rate(qualities, lambda q: q.grammatical),
        "questions sharing an answer within a quiz": _shared_answers(result.quizzes),
        "same question in overlapping stretches": _repeats_across_overlaps(result.quizzes),
        # A model's quiz that fails validation twice is replaced by the offline generator's.
        "quizzes written by this engine": _rate(result.quizzes, lambda quiz: quiz.model == result.model),
    }


def render_table(results: Sequence[EngineResult]) -> str:
    """A Markdown table: one row per metric, one column per (course, engine), and the held-out targets."""
    columns = [metrics(result) for result in results]
    header = ["metric", *(result.column for result in results), "held-out target (offline)"]
    rows = [header] + [
        [name, *(column[name].shown() for column in columns), TARGETS.get(name, "")] for name in columns[0]
    ]
    widths = [max(len(row[index]) for row in rows) for index in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def misses(result: EngineResult) -> list[str]:
    """What the column got wrong, one line each, for reading next to the table."""
    found = [f"search miss ({r.kind}): {r.question_id}" for r in result.search if r.scope == "course" and not r.hit]
    for r in result.chat:
        if r.kind == "unanswerable":
            if not r.says_not_covered:
                found.append(f"unanswerable answered as if covered: {r.question_id}")
        elif not r.cites_expected:
            cited = ", ".join(f"{video} {start:.0f}-{end:.0f}s" for video, start, end in r.citations) or "nothing"
            found.append(f"chat citation miss ({r.kind}, {r.playhead}): {r.question_id}, cited {cited}")
    for hint in result.hints:
        if hint.leaks:
            found.append(f"hint leak ({hint.moment_id}): {', '.join(hint.leaks)}")
        if not hint.climbs:
            found.append(f"hint ladder ({hint.moment_id}): levels {hint.levels}")
        if not hint.grounded:
            found.append(f"hint points elsewhere ({hint.moment_id})")
    for quiz in result.quizzes:
        for item, verdict, quality in quiz.items:
            problems = [*verdict.failures, *(quality.problems if quality is not None else ())]
            if problems:
                found.append(f"quiz question ({quiz.stretch_id}): {item.stem!r}: {'; '.join(problems)}")
    return found
