"""`tutorstream-server`: serve (default), migrate, worker, seed-demo, dev-certs, token."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from server.config import ConfigurationError, Settings
from server.core.auth import Role, Tier, mint_token
from server.core.db import migrate_main

app = typer.Typer(add_completion=False, help="The tutorstream gRPC server.", no_args_is_help=False)


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )


@app.callback(invoke_without_command=True)
def main_callback(context: typer.Context) -> None:
    if context.invoked_subcommand is None:
        serve()


@app.command()
def serve(
    port: Annotated[int | None, typer.Option(help="Override PORT.")] = None,
    host: Annotated[str | None, typer.Option(help="Override HOST.")] = None,
) -> None:
    """Start the gRPC server (and the embedded database when DATABASE_URL is unset)."""
    from server.core.tls import server_credentials

    _configure_logging()
    overrides: dict[str, object] = {}
    if port is not None:
        overrides["port"] = port
    if host is not None:
        overrides["host"] = host
    settings = Settings(**overrides)  # type: ignore[arg-type]
    try:
        # Checked before the server's imports load the language models: a bad certificate fails in a second.
        server_credentials(settings)
        from server.app import serve as run_server

        asyncio.run(run_server(settings))
    except ConfigurationError as exc:
        typer.echo(f"tutorstream-server: {exc}", err=True)
        raise typer.Exit(code=2) from None


@app.command()
def migrate() -> None:
    """Apply all database migrations and exit."""
    _configure_logging()
    revision = migrate_main(Settings())
    typer.echo(f"database at revision {revision}")


@app.command()
def worker() -> None:
    """Run background jobs (transcript ingest, re-embedding) until SIGTERM/SIGINT."""
    from server.worker import run_worker_process

    _configure_logging()
    asyncio.run(run_worker_process(Settings()))


@app.command("seed-demo")
def seed_demo() -> None:
    """Ingest the bundled demo course and wait until it is searchable."""
    from server.seed import seed_demo_main

    _configure_logging()
    jobs = asyncio.run(seed_demo_main(Settings()))
    for job in jobs:
        outcome = "unchanged" if job.unchanged else job.state
        typer.echo(f"{job.video_id}: {outcome}{f' ({job.error_message})' if job.error_message else ''}")
    if any(job.state != "succeeded" for job in jobs):
        raise typer.Exit(code=1)


@app.command("dev-certs")
def dev_certs(
    out: Annotated[Path | None, typer.Option(help="Directory for the files (default: DATA_DIR/tls).")] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(help="A name or address the server certificate is for (repeat; default: this machine's)."),
    ] = None,
) -> None:
    """Make a private CA, a server certificate and a client certificate for trying TLS locally."""
    from server.devcerts import LOCAL_HOSTS, write_dev_certs

    files, server_cert = write_dev_certs(out or Settings().data_dir / "tls", host or LOCAL_HOSTS)
    typer.echo(f"ca:     {files.ca}")
    typer.echo(f"server: {files.server_cert} {files.server_key}")
    typer.echo(f"client: {files.client_cert} {files.client_key}")
    typer.echo(f"server key spki sha256: {server_cert.spki_sha256}")


@app.command()
def token(
    user: Annotated[str, typer.Option(help="User id (the token subject).")],
    role: Annotated[Role, typer.Option(help="student, instructor or service.")] = Role.STUDENT,
    tier: Annotated[Tier | None, typer.Option(help="free or pro (default from the role).")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 12 * 3600,
    private_key: Annotated[Path | None, typer.Option(help="RS256 private key PEM (default: HS256 secret).")] = None,
    key_id: Annotated[str | None, typer.Option(help="`kid` header for RS256 tokens.")] = None,
    course: Annotated[
        list[str] | None,
        typer.Option(help="A course the instructor teaches (the `courses` claim; repeat for several)."),
    ] = None,
) -> None:
    """Mint a development JWT for the configured issuer and audience."""
    pem = private_key.read_text() if private_key is not None else None
    typer.echo(
        mint_token(
            Settings(),
            user_id=user,
            role=role,
            tier=tier,
            ttl_seconds=ttl,
            private_key_pem=pem,
            key_id=key_id,
            courses=course,
        )
    )


def main() -> None:
    app()
