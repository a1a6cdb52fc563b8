"""`tutorstream`: the command-line client (typer + rich).

Exit codes: 0 ok · 1 failed (e.g. an ingest job failed) · 2 usage error · 3 not signed in / not allowed ·
4 not found · 5 invalid request · 6 rate limit or budget exhausted · 7 server unavailable or too slow ·
8 not implemented by this server · 130 interrupted.
"""

from __future__ import annotations

# Importing the command modules registers their commands on `app`.
from tutorstream_client import cli_account, cli_content, cli_progress, cli_tutor
from tutorstream_client.cli_common import app

__all__ = ["app", "cli_account", "cli_content", "cli_progress", "cli_tutor", "main"]


def main() -> None:
    app()
