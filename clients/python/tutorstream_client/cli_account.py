"""Account commands: login, logout, token, health."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from tutorstream_client import config
from tutorstream_client.cli_common import (
    EXIT_AUTH,
    EXIT_UNAVAILABLE,
    TargetOption,
    TokenOption,
    app,
    connection,
    err,
    fail,
    out,
    run,
)


def _describe_claims(claims: dict[str, Any]) -> str:
    expires = datetime.fromtimestamp(int(claims.get("exp", 0)), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    role = claims.get("role", "student")
    tier = claims.get("tier")
    return f"{claims.get('sub', '?')} ({role}{f', {tier}' if tier else ''}), expires {expires}"


@app.command()
def login(
    token: Annotated[
        str | None, typer.Option("--token", help="The token; `-` reads it from stdin; omitted: prompt.")
    ] = None,
    target: TargetOption = None,
) -> None:
    """Check a token against the server and remember it (and the server) for later commands."""
    if token == "-":
        token = sys.stdin.read().strip()
    elif token is None:
        token = typer.prompt("Token", hide_input=True).strip()
    if not token:
        raise fail("no token given", EXIT_AUTH)
    try:
        claims = config.claims(token)
    except ValueError as exc:
        raise fail(str(exc), EXIT_AUTH) from exc
    profile = config.resolve(target, token, connection.tls)
    run(profile.target, token, lambda client: client.get_preferences())
    path = config.save(config.Profile(target=profile.target, token=token, tls=profile.tls))
    out.print(f"Signed in to {profile.target} as {_describe_claims(claims)}")
    err.print(f"saved to {path}", style="dim")


@app.command()
def logout() -> None:
    """Forget the saved token."""
    out.print("Signed out." if config.forget() else "No saved token.")


@app.command("token")
def show_token(
    show_claims: Annotated[bool, typer.Option("--claims", help="Show who the token is for instead.")] = False,
    token: TokenOption = None,
) -> None:
    """Print the token in use (for scripts: `grpcurl -H "authorization: Bearer $(tutorstream token)"`)."""
    profile = config.resolve(None, token)
    if profile.token is None:
        raise fail("not signed in: run `tutorstream login`", EXIT_AUTH)
    if not show_claims:
        typer.echo(profile.token)
        return
    try:
        out.print(_describe_claims(config.claims(profile.token)))
    except ValueError as exc:
        raise fail(str(exc), EXIT_AUTH) from exc


@app.command()
def health(target: TargetOption = None, service: Annotated[str, typer.Option(help="One service.")] = "") -> None:
    """Ask grpc.health.v1 whether the server is serving (exit 7 when it is not)."""
    status = run(target, None, lambda client: client.health(service))
    out.print(status)
    if status != "SERVING":
        raise typer.Exit(EXIT_UNAVAILABLE)
