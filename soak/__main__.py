"""`python -m soak [--seconds 600] [--seed N]`: run the soak test and print its result table."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from soak.run import SoakConfig, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description="Soak test: long mixed load with Redis and upstream faults.")
    parser.add_argument("--seconds", type=float, default=600.0, help="Duration of the load (default 600).")
    parser.add_argument("--seed", type=int, default=SoakConfig.seed, help="Seed of every random choice.")
    parser.add_argument("--workdir", type=Path, help="Keep logs and data here instead of a temporary directory.")
    args = parser.parse_args()
    config = SoakConfig(seconds=args.seconds, seed=args.seed)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run_soak(config, args.workdir))
        print(f"server log: {args.workdir / 'tutorstream.log'}")
    else:
        with tempfile.TemporaryDirectory(prefix="tutorstream-soak-") as tmp:
            result = asyncio.run(run_soak(config, Path(tmp)))
    print(result.table())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
