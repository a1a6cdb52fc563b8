"""The commit a results file measured: `git describe`, marked `-dirty` only when tracked files other than the
results themselves differ from it (re-running an eval rewrites its own output, which is not a change to what
was measured)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def commit(*outputs: Path) -> str:
    try:
        described = subprocess.run(
            ["git", "describe", "--always"], capture_output=True, text=True, check=True
        ).stdout.strip()
        excluded = [f":(exclude){output.resolve()}" for output in outputs]
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{described}-dirty" if changed else described
