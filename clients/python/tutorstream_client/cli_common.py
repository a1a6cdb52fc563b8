"""Shared pieces of the `tutorstream` CLI: the typer app, consoles, options, and failures -> exit codes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar

import grpc
import typer
from rich.console import Console

from tutorstream_client import config
from tutorstream_client.client import AsyncTutorstreamClient, tls_credentials
from tutorstream_client.errors import TutorstreamError

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_INVALID = 5
EXIT_EXHAUSTED = 6
EXIT_UNAVAILABLE = 7
EXIT_UNIMPLEMENTED = 8
EXIT_INTERRUPTED = 130
EXIT_CODES = {
    grpc.StatusCode.UNAUTHENTICATED: EXIT_AUTH,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_AUTH,
    grpc.StatusCode.NOT_FOUND: EXIT_NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_INVALID,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_INVALID,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_INVALID,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_INVALID,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXIT_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
    grpc.StatusCode.UNIMPLEMENTED: EXIT_UNIMPLEMENTED,
}

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Talk to a tutorstream server: sign in, ingest transcripts, search, chat, hints, quizzes, progress.",
    epilog=(
        "Exit codes: 0 ok · 1 failed · 2 usage error · 3 not signed in or not allowed · 4 not found · "
        "5 invalid request · 6 rate limit or budget exhausted · 7 server unavailable or too slow · "
        "8 not implemented by this server · 130 interrupted."
    ),
)
analytics_app = typer.Typer(no_args_is_help=True, help="Learning analytics.")
app.add_typer(analytics_app, name="analytics")

TargetOption = Annotated[
    str | None, typer.Option("--target", help="HOST:PORT of the gRPC server (env TUTORSTREAM_TARGET).")
]
TokenOption = Annotated[str | None, typer.Option("--token", help="Bearer token (env TUTORSTREAM_TOKEN).")]


@dataclass
class Connection:
    """The options given before the command: how the channel is secured."""

    tls: config.Tls | None = None


connection = Connection()


@app.callback()
def connect_options(
    tls: Annotated[
        bool, typer.Option("--tls", help="TLS with the system's trusted CAs (env TUTORSTREAM_TLS=1).")
    ] = False,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", help="TLS: the CA the server's certificate chains to (env TUTORSTREAM_CA_FILE)."),
    ] = None,
    cert_file: Annotated[
        Path | None,
        typer.Option("--cert-file", help="TLS: this client's certificate (env TUTORSTREAM_CERT_FILE)."),
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="TLS: the key of --cert-file (env TUTORSTREAM_KEY_FILE).")
    ] = None,
) -> None:
    files = config.Tls(*(str(path) if path is not None else None for path in (ca_file, cert_file, key_file)))
    connection.tls = files if tls or files != config.Tls() else None


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", markup=True)
    return typer.Exit(code)


def run(target: str | None, token: str | None, work: Callable[[AsyncTutorstreamClient], Awaitable[T]]) -> T:
    """Resolve the profile, run `work` with a connected client, and turn failures into exit codes."""
    try:
        profile = config.resolve(target, token, connection.tls)
        credentials = None
        if profile.tls is not None:
            credentials = tls_credentials(profile.tls.ca_file, profile.tls.cert_file, profile.tls.key_file)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        raise fail(f"cannot read {exc.filename}: {exc.strerror}") from exc

    async def main() -> T:
        async with AsyncTutorstreamClient(profile.target, profile.token, credentials=credentials) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except TutorstreamError as exc:
        lines = exc.explain()
        err.print(f"[red]error:[/red] {lines[0]}", markup=True)
        for line in lines[1:]:
            err.print(line, markup=False)
        if exc.code == grpc.StatusCode.UNAUTHENTICATED:
            err.print("  sign in with `tutorstream login --token ...`", markup=False)
        raise typer.Exit(EXIT_CODES.get(exc.code, EXIT_FAILED)) from exc
    except KeyboardInterrupt as exc:
        raise typer.Exit(EXIT_INTERRUPTED) from exc


async def ask_line(prompt: str) -> str:
    """One line from stdin without blocking the event loop; piped input is echoed so the transcript reads
    like an interactive session. Raises EOFError at the end of input."""
    line = await asyncio.to_thread(input, prompt)
    if not sys.stdin.isatty():
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return line
