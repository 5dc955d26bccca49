"""``lanegw station user``: the flow's accounts from the command line (the first admin
has no page to be created on)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.common import exit_with_problems
from gateway.errors import ConfigError, GatewayError
from station.config import load_station_config
from station.flow.auth import MIN_PASSWORD, ROLES, Session, hash_password
from station.flow.store import FlowStore

user_app = typer.Typer(help="Accounts of the station's flow pages (docs/station-flow.md).",
                       no_args_is_help=True)  # fmt: skip
out = Console()
err = Console(stderr=True)
ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="station config YAML")]
DEFAULT_CONFIG = Path("/etc/lanegw/station.yaml")
CLI_SESSION = Session(token_hash="", csrf="", username="cli", name="命令行", role="admin")


def _with_store(config_path: Path, job: Any) -> Any:
    try:
        config = load_station_config(config_path)
    except ConfigError as exc:
        exit_with_problems(exc, err)

    async def run() -> Any:
        from station.flow.runner import open_flow_store  # the web server's imports: only here

        store = await open_flow_store(config, f"{config.client_id}-cli")
        try:
            return await job(store)
        finally:
            await store.records.close()

    try:
        return asyncio.run(run())
    except GatewayError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        err.print(f"[red]a password has at least {MIN_PASSWORD} characters[/]")
        raise typer.Exit(2)
    return password


@user_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="login name (letters, digits, _)")],
    role: Annotated[str, typer.Option(help="registrar, inspector, chief or admin")],
    name: Annotated[str | None, typer.Option(help="full name shown on pages and reports")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Create an account (argon2id hash stored; the action audited).

    Example: [bold]lanegw station user add admin --role admin --name 王管理[/]
    """
    if role not in ROLES:
        err.print(f"[red]unknown role {role!r}: one of {', '.join(ROLES)}[/]")
        raise typer.Exit(2)
    if not username.isidentifier() or len(username) > 32:
        err.print("[red]a username is 1-32 letters, digits or _[/]")
        raise typer.Exit(2)
    digest = hash_password(_password(password_stdin))

    async def job(store: FlowStore) -> bool:
        added = await store.add_user(username, name or username, role, digest)
        if added:
            await store.audit(CLI_SESSION, "user_added", username, "cli", role=role)
        return added

    if not _with_store(config, job):
        err.print(f"[red]user {username} exists already[/]")
        raise typer.Exit(1)
    out.print(f"[green]✓[/] {username} ({ROLES[role]}) added")


@user_app.command("passwd")
def passwd(
    username: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Set a new password."""
    digest = hash_password(_password(password_stdin))

    async def job(store: FlowStore) -> bool:
        done = await store.set_user(username, password_hash=digest)
        if done:
            await store.audit(CLI_SESSION, "password_set", username, "cli")
        return done

    if not _with_store(config, job):
        err.print(f"[red]no user {username}[/]")
        raise typer.Exit(1)
    out.print(f"[green]✓[/] password of {username} set")


@user_app.command("disable")
def disable(
    username: Annotated[str, typer.Argument()], config: ConfigOption = DEFAULT_CONFIG
) -> None:
    """Disable an account (its sessions end; it stays named in the audit)."""

    async def job(store: FlowStore) -> bool:
        done = await store.set_user(username, active=False)
        if done:
            await store.audit(CLI_SESSION, "user_disabled", username, "cli")
        return done

    if not _with_store(config, job):
        err.print(f"[red]no user {username}[/]")
        raise typer.Exit(1)
    out.print(f"[green]✓[/] {username} disabled")


@user_app.command("list")
def list_users(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every account, its role and whether it is active."""

    async def job(store: FlowStore) -> Any:
        return await store.users()

    users = _with_store(config, job)
    if as_json:
        rows = [{"username": u.username, "name": u.name, "role": u.role, "active": u.active}
                for u in users]  # fmt: skip
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("username", "name", "role", "active")
    for u in users:
        table.add_row(u.username, u.name, ROLES.get(u.role, u.role), "yes" if u.active else "no")
    out.print(table)
