"""Records in, rates out: one table of metric rows by engine columns, plus what each engine got wrong."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from evals.runs import ChatRecord, QuizRecord, SearchRecord

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rate:
    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 0.0

    def shown(self) -> str:
        return f"{self.value:.2f} ({self.hits}/{self.total})"


@dataclass(frozen=True, slots=True)
class EngineResult:
    """Everything one engine scored."""

    engine: str  # the column's name: "offline" or the model's name
    model: str  # what the server reports as the author of this engine's answers and quizzes
    search: tuple[SearchRecord, ...]
    chat: tuple[ChatRecord, ...]
    quizzes: tuple[QuizRecord, ...]


def _rate(records: Sequence[T], passed: Callable[[T], bool]) -> Rate:
    return Rate(sum(1 for record in records if passed(record)), len(records))


def metrics(result: EngineResult) -> dict[str, Rate]:
    """The table's rows for one engine, in display order."""
    chat_after = [record for record in result.chat if record.playhead == "after"]
    chat_away = [record for record in result.chat if record.playhead == "elsewhere"]
    items = [verdict for quiz in result.quizzes for _, verdict in quiz.items]
    return {
        "search hit@3, course scope": _rate(
            [record for record in result.search if record.scope == "course"], lambda r: r.hit
        ),
        "search hit@3, video scope": _rate(
            [record for record in result.search if record.scope == "video"], lambda r: r.hit
        ),
        "chat citation accuracy, playhead just after the answer": _rate(chat_after, lambda r: r.cites_expected),
        "chat citation accuracy, playhead 2 min away": _rate(chat_away, lambda r: r.cites_expected),
        "chat answers with at least one citation": _rate(result.chat, lambda r: bool(r.citations)),
        "chat answers saying every answer keyword": _rate(result.chat, lambda r: r.mentions_keywords),
        "chat answers from the offline fallback": _rate(result.chat, lambda r: r.fallback),
        "quiz validity (valid / generated questions)": _rate(items, lambda verdict: verdict.valid),
        "quiz questions generated / asked for": Rate(len(items), sum(quiz.asked for quiz in result.quizzes)),
        # A model's quiz that fails validation twice is replaced by the offline generator's.
        "quizzes written by this engine": _rate(result.quizzes, lambda quiz: quiz.model == result.model),
    }


def render_table(results: Sequence[EngineResult]) -> str:
    """A Markdown table: one row per metric, one column per engine."""
    columns = [metrics(result) for result in results]
    header = ["metric", *(result.engine for result in results)]
    rows = [header] + [[name, *(column[name].shown() for column in columns)] for name in columns[0]]
    widths = [max(len(row[index]) for row in rows) for index in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def misses(result: EngineResult) -> list[str]:
    """What the engine got wrong, one line each, for reading next to the table."""
    found = [f"search miss ({r.scope}): {r.question_id}" for r in result.search if not r.hit]
    found += [
        f"chat citation miss ({r.playhead}): {r.question_id}, cited "
        + (", ".join(f"{video} {start:.0f}-{end:.0f}s" for video, start, end in r.citations) or "nothing")
        for r in result.chat
        if not r.cites_expected
    ]
    for quiz in result.quizzes:
        for item, verdict in quiz.items:
            if not verdict.valid:
                found.append(f"invalid quiz question ({quiz.stretch_id}): {item.stem!r}: {'; '.join(verdict.failures)}")
    return found
