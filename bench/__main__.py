"""`make bench`: run every benchmark module in turn, each in its own process, and keep their reports.

Each module prints its own table of ratios and percentiles next to its targets; the combined output is
written to bench/results/latest.txt.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

MODULES = (
    "bench.bench_limiter",
    "bench.bench_chat",
    "bench.bench_edge",
    "bench.bench_ingest",
    "bench.bench_search",
    "bench.bench_progress",
    "bench.bench_asr",
)


def main() -> int:
    selected = [m for m in MODULES if not sys.argv[1:] or m.rsplit("_", 1)[-1] in sys.argv[1:]]
    root = Path(__file__).resolve().parent.parent
    out_dir = root / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    report: list[str] = []
    failed = 0
    for module in selected:
        started = time.perf_counter()
        print(f"== {module}", flush=True)
        result = subprocess.run([sys.executable, "-m", module], cwd=root, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        section = f"== {module} ({elapsed:.0f} s, exit {result.returncode})\n{result.stdout}"
        if result.returncode != 0:
            failed += 1
            section += f"\n{result.stderr[-4000:]}"
        print(section, flush=True)
        report.append(section)
    (out_dir / "latest.txt").write_text("\n".join(report))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
