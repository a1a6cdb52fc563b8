"""Run the `tutorstream` console script as a user would, against a server running in the test's loop."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

TUTORSTREAM = Path(sys.executable).parent / "tutorstream"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


async def run_cli(
    *args: str,
    target: str,
    token: str | None = None,
    config_file: Path | None = None,
    stdin: str | None = None,
    limit_seconds: float = 120.0,
) -> CliResult:
    env = {
        **os.environ,
        "TUTORSTREAM_TARGET": target,
        "TUTORSTREAM_CONFIG": str(config_file or Path(os.devnull).with_name("tutorstream-none.json")),
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    env.pop("TUTORSTREAM_TOKEN", None)
    if token is not None:
        env["TUTORSTREAM_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        str(TUTORSTREAM),
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else b""), limit_seconds
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return CliResult(process.returncode or 0, stdout.decode(), stderr.decode())
