"""`python -m soak [--seconds 600] [--seed N]`: run the soak test, print its result table and write it, stamped
with the commit it ran, to soak/results/latest.md (`--output` elsewhere), with the memory samples beside it
(latest-samples.csv) and RSS over time drawn (latest-rss.svg)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import tempfile
from pathlib import Path

from evals.stamp import commit
from soak.plot import rss_svg
from soak.run import SoakConfig, run_soak, samples_csv

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.md"


def main() -> int:
    parser = argparse.ArgumentParser(description="Soak test: long mixed load with Redis and upstream faults.")
    parser.add_argument("--seconds", type=float, default=600.0, help="Duration of the load (default 600).")
    parser.add_argument("--seed", type=int, default=SoakConfig.seed, help="Seed of every random choice.")
    parser.add_argument("--workdir", type=Path, help="Keep logs and data here instead of a temporary directory.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Where to write the result table.")
    args = parser.parse_args()
    config = SoakConfig(seconds=args.seconds, seed=args.seed)
    measured = commit(args.output)
    started = datetime.datetime.now(datetime.UTC)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run_soak(config, args.workdir))
        print(f"server log: {args.workdir / 'tutorstream.log'}")
    else:
        with tempfile.TemporaryDirectory(prefix="tutorstream-soak-") as tmp:
            result = asyncio.run(run_soak(config, Path(tmp)))
    table = result.table()
    print(table)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        f"# Soak result\n\n`python -m soak --seconds {args.seconds:g} --seed {args.seed}` started "
        f"{started:%Y-%m-%d %H:%M} UTC at commit `{measured}`.\n\n```\n{table}\n```\n",
        encoding="utf-8",
    )
    samples = args.output.with_name(args.output.stem + "-samples.csv")
    samples.write_text(samples_csv(result.samples), encoding="utf-8")
    plot = args.output.with_name(args.output.stem + "-rss.svg")
    title = f"RSS under load, {args.seconds / 60:g} min soak at {measured}"
    plot.write_text(
        rss_svg(result.samples, result.rss, warmup=result.steady_at, window=result.window_seconds, title=title),
        encoding="utf-8",
    )
    print(f"written to {args.output}, {samples.name} and {plot.name}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
