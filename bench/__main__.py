"""`make bench`: run every benchmark module, each in its own process, and print one table.

Every module measures tutorstream side by side with a baseline in the same run and publishes its figures as
`bench.report.Line`s; this runner collects them into one table, prints it, and writes it with the machine's
description to bench/results/latest.md (each module's detailed output goes to bench/results/details.txt), the one
generated table: README.md and bench/README.md link it. Every figure is kept with its module, commit and time in
bench/results/latest.jsonl: a run of some modules replaces their figures and keeps the others' from their own
last run (the description says which run each comes from), and each new figure is shown beside its previous
value, flagged when it got more than 20 % worse against its target.

    python -m bench                 # everything
    python -m bench chat search     # only bench_chat and bench_search; the other modules' figures are kept
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.report import RESULTS_FILE_ENV, Line, load, render

MODULES = (
    "bench.bench_unary",
    "bench.bench_limiter",
    "bench.bench_chat",
    "bench.bench_pii",
    "bench.bench_edge",
    "bench.bench_ingest",
    "bench.bench_search",
    "bench.bench_tutor",
    "bench.bench_progress",
    "bench.bench_asr",
)
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FIGURES = RESULTS / "latest.jsonl"


def short_name(module: str) -> str:
    return module.removeprefix("bench.bench_")


def cpu_model() -> str:
    for row in Path("/proc/cpuinfo").read_text().splitlines():
        if row.startswith("model name"):
            return row.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def git_revision() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def run_module(module: str, sink: Path) -> tuple[list[Line], str, float, int]:
    """Run one module with its figures appended to `sink`; its lines, output, seconds and exit code."""
    started = time.perf_counter()
    environment = {**os.environ, RESULTS_FILE_ENV: str(sink)}
    result = subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    output = result.stdout + (f"\n{result.stderr[-4000:]}" if result.returncode else "")
    lines = load(sink)
    if result.returncode:
        lines.append(Line(short_name(module), "module run", result.returncode, "exit code", "exit 0", False))
    return lines, output, elapsed, result.returncode


@dataclass(frozen=True)
class Figure:
    """One line of a module's run, with the run it comes from."""

    module: str
    commit: str
    at: str
    line: Line


def load_figures(path: Path = FIGURES) -> list[Figure]:
    if not path.exists():
        return []
    rows = [json.loads(row) for row in path.read_text(encoding="utf-8").splitlines() if row.strip()]
    return [Figure(row["module"], row["commit"], row["at"], Line(**row["line"])) for row in rows]


def save_figures(figures: list[Figure], path: Path = FIGURES) -> None:
    rows = [json.dumps({**asdict(figure), "line": asdict(figure.line)}) for figure in figures]
    path.write_text("".join(f"{row}\n" for row in rows), encoding="utf-8")


def merge(previous: list[Figure], fresh: list[Figure], ran: list[str]) -> list[Figure]:
    """The modules run now with their fresh figures, every other module with its figures from before, in
    the order of MODULES."""
    merged: list[Figure] = []
    for module in MODULES:
        name = short_name(module)
        merged += [figure for figure in (fresh if module in ran else previous) if figure.module == name]
    return merged


def describe_run(
    started: datetime.datetime, timings: list[tuple[str, float, int]], load_before: str, kept: list[Figure]
) -> str:
    load_after = " ".join(f"{value:.2f}" for value in os.getloadavg())
    ran = ", ".join(f"{short_name(m)} {s:.0f} s" + (f" (exit {code})" if code else "") for m, s, code in timings)
    lines = [
        f"Run {started:%Y-%m-%d %H:%M} UTC at commit {git_revision()}, on {os.cpu_count()} cores "
        f"({cpu_model()}), Python {platform.python_version()}.",
        f"Load average before / after: {load_before} / {load_after}. Modules: {ran}.",
    ]
    runs: dict[tuple[str, str], list[str]] = {}
    for figure in kept:
        modules = runs.setdefault((figure.at, figure.commit), [])
        if figure.module not in modules:
            modules.append(figure.module)
    for (at, commit), modules in runs.items():
        lines.append(f"Not re-run, kept from the run of {at} at commit {commit}: {', '.join(modules)}.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks and print one table.")
    parser.add_argument("only", nargs="*", help="module short names (e.g. chat search); default: all")
    arguments = parser.parse_args()
    unknown = set(arguments.only) - {short_name(m) for m in MODULES}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    selected = [m for m in MODULES if not arguments.only or short_name(m) in arguments.only]

    started = datetime.datetime.now(datetime.UTC)
    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())
    stamp = f"{started:%Y-%m-%d %H:%M} UTC"
    revision = git_revision()
    fresh: list[Figure] = []
    details: list[str] = []
    timings: list[tuple[str, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        for index, module in enumerate(selected):
            print(f"[{index + 1}/{len(selected)}] {module} …", flush=True)
            module_lines, output, elapsed, code = run_module(module, Path(scratch) / f"{short_name(module)}.jsonl")
            fresh += [Figure(short_name(module), revision, stamp, line) for line in module_lines]
            timings.append((module, elapsed, code))
            details.append(f"== {module} ({elapsed:.0f} s, exit {code})\n{output}")
            print(f"    {elapsed:.0f} s, exit {code}", flush=True)

    previous = load_figures()
    figures = merge(previous, fresh, selected)
    kept = [f for f in figures if f not in fresh]
    rerun = {short_name(module) for module in selected}
    table = render([f.line for f in figures], [f.line for f in previous if f.module in rerun])
    description = describe_run(started, timings, load_before, kept)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "details.txt").write_text("\n".join(details), encoding="utf-8")
    (RESULTS / "latest.md").write_text(f"# Benchmark results\n\n{description}\n\n{table}\n", encoding="utf-8")
    save_figures(figures)
    print()
    print(description)
    print()
    print(table)
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}/latest.md (module output: details.txt)")
    return 1 if any(code for _, _, code in timings) else 0


if __name__ == "__main__":
    raise SystemExit(main())
