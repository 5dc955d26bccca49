"""What the commands share: how a config file that cannot be used is reported (each
problem with its line), and how a daemon is started from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, NoReturn

import typer
from rich.console import Console

from gateway.config import DeviceConfig, LaneConfig
from gateway.errors import ConfigError, GatewayError
from gateway.logs import LogFormat, configure_logging
from gateway.refusal import report_refusal


def exit_with_problems(exc: ConfigError, console: Console) -> NoReturn:
    """Print the file's problems on ``console`` and exit 2."""
    console.print(f"[bold red]{exc.path}: {len(exc.problems)} problem(s)[/]")
    for problem in exc.problems:
        console.print(f"  [red]✗[/] {problem}", highlight=False)
    raise typer.Exit(2) from None


def run_daemon(
    main: Callable[[], Coroutine[Any, Any, None]],
    log_format: str,
    log_level: str,
    console: Console,
) -> None:
    """Set up logging and run a daemon until it stops; what it refuses to start with
    (unusable secrets or key file, inconsistent state, an unreachable database) exits 2,
    which the systemd unit does not restart (RestartPreventExitStatus=2): a human must
    act. What may clear by itself (a port or the state directory held by a technician's
    tool) exits 75 (EX_TEMPFAIL), and systemd tries again. In JSON log format the
    refusal is one JSON line on stderr, like every other line of the daemon."""
    if log_format not in ("auto", "json", "console"):
        console.print(f"[red]--log-format must be auto, json or console, not {log_format!r}[/]")
        raise typer.Exit(2)
    fmt: LogFormat = log_format  # type: ignore[assignment]
    resolved = configure_logging(fmt, log_level.upper())
    try:
        asyncio.run(main())
    except GatewayError as exc:
        raise typer.Exit(report_refusal(exc, resolved)) from None


#: exit codes of every ``lanegw`` command (docs/cli.md, "Exit codes")
EXIT_OK: Final = 0  # done
EXIT_REFUSED: Final = 1  # the daemon is not running, or refused the command (it says why)
EXIT_USAGE: Final = 2  # a mistake in the command: option, device, channel, config file
EXIT_FAILED: Final = 3  # done, and the result is a failure (a check FAILED, not linear)
EXIT_CANCELLED: Final = 4  # the technician declined a prompt: nothing was changed


def cancelled(console: Console) -> NoReturn:
    """Say that a declined prompt changed nothing, and exit 4."""
    console.print("[yellow]cancelled: nothing was changed[/]")
    raise typer.Exit(EXIT_CANCELLED)


def confirm(prompt: str, console: Console) -> None:
    """Ask; a "no" (or end of input) cancels the command."""
    try:
        answer = typer.confirm(prompt)
    except typer.Abort:
        answer = False
    if not answer:
        cancelled(console)


def ask_daemon(
    state_dir: Path, command: str, args: dict[str, Any], console: Console
) -> dict[str, Any]:
    """One command to the daemon through its control socket; exit 1 with its reason."""
    from gateway.control import request

    try:
        answer = asyncio.run(request(state_dir, command, args))
    except ConnectionError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(EXIT_REFUSED) from None
    if not answer.get("ok"):
        console.print(f"[red]{answer.get('error')}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_REFUSED)
    result: dict[str, Any] = answer["result"]
    return result


def require_device(config: LaneConfig, device: str, console: Console) -> DeviceConfig:
    """The configured device ``device``; exit 2 naming the lane's devices if unknown."""
    for candidate in config.devices:
        if candidate.id == device:
            return candidate
    known = ", ".join(d.id for d in config.devices)
    console.print(f"[red]no device {device!r} in {config.station}/{config.lane} ({known})[/]")
    raise typer.Exit(EXIT_USAGE)
