"""The one shape every benchmark reports in: lines of (area, metric, value, unit, target, met).

A module calls `publish(lines)` at the end of its run. Run alone, that prints the module's lines as a table;
run by `make bench` (`python -m bench`), the lines are also appended as JSON to the file named by
`BENCH_RESULTS_FILE`, and `bench/__main__.py` prints every module's lines as one table.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS_FILE_ENV = "BENCH_RESULTS_FILE"


@dataclass(frozen=True)
class Line:
    """One measured figure next to its target.

    `value` is the figure itself (a ratio, a percentile, a rate). `target` is how it is judged, written for
    people ("<= 1 ms", ">= 0.99x"); `met` is None for figures shown for context with no target of their own.
    `baseline` says what the figure was measured against in the same run, when it is a comparison.
    """

    area: str
    metric: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None
    baseline: str = ""

    def shown_value(self) -> str:
        magnitude = abs(self.value)
        if self.unit == "x":
            return f"{self.value:.3f}x"
        digits = 0 if magnitude >= 1000 else 1 if magnitude >= 100 else 2 if magnitude >= 1 else 3
        return f"{self.value:,.{digits}f} {self.unit}".rstrip()

    def verdict(self) -> str:
        return "" if self.met is None else "met" if self.met else "NOT MET"


def at_most(area: str, metric: str, value: float, unit: str, limit: float, *, baseline: str = "") -> Line:
    shown = f"<= {limit:g}x" if unit == "x" else f"<= {limit:g} {unit}".rstrip()
    return Line(area, metric, value, unit, shown, value <= limit, baseline)


def at_least(area: str, metric: str, value: float, unit: str, limit: float, *, baseline: str = "") -> Line:
    shown = f">= {limit:g}x" if unit == "x" else f">= {limit:g} {unit}".rstrip()
    return Line(area, metric, value, unit, shown, value >= limit, baseline)


def context(area: str, metric: str, value: float, unit: str, *, baseline: str = "") -> Line:
    return Line(area, metric, value, unit, baseline=baseline)


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); the median for q = 50."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    if q == 50:
        return float(statistics.median(ordered))
    return float(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))])


# A figure with a target that moved this much the wrong way since the previous run is flagged.
REGRESSION = 0.2


def change(line: Line, before: Line | None) -> str:
    """How `line` compares with the same figure of the previous run: its value then, and "worse by N %" when it
    has a target and moved more than `REGRESSION` away from it (figures without a target have no direction)."""
    if before is None or before.unit != line.unit:
        return ""
    shown = f"was {before.shown_value()}"
    lower_is_better = line.target.startswith("<=")
    if not line.target or before.value == 0:
        return shown
    worse = (line.value - before.value) / abs(before.value)
    if not lower_is_better:
        worse = -worse
    return f"{shown}, WORSE by {worse:.0%}" if worse > REGRESSION else shown


def render(lines: Iterable[Line], previous: Sequence[Line] | None = None) -> str:
    """A Markdown table: area, metric, measured, target, verdict, baseline; with `previous` (the last run's
    lines), a column with each figure's earlier value and a flag on regressions."""
    earlier = {(ln.area, ln.metric): ln for ln in previous or ()}
    header = ("area", "metric", "measured", "target", "", "measured against (same run)")
    rows = [header + (("previous run",) if previous is not None else ())]
    for ln in lines:
        row = (ln.area, ln.metric, ln.shown_value(), ln.target, ln.verdict(), ln.baseline)
        rows.append(row + ((change(ln, earlier.get((ln.area, ln.metric))),) if previous is not None else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def shown(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([shown(rows[0]), rule, *(shown(row) for row in rows[1:])])


def publish(lines: Sequence[Line]) -> None:
    """Print the lines as a table; append them to $BENCH_RESULTS_FILE when `make bench` collects them."""
    print()
    print(render(lines), flush=True)
    destination = os.environ.get(RESULTS_FILE_ENV)
    if destination:
        with Path(destination).open("a", encoding="utf-8") as sink:
            for line in lines:
                sink.write(json.dumps(asdict(line)) + "\n")


def load(path: Path) -> list[Line]:
    if not path.exists():
        return []
    return [Line(**json.loads(row)) for row in path.read_text(encoding="utf-8").splitlines() if row.strip()]
