"""What the commands share: how a config file that cannot be used is reported (each
problem with its line), and how a daemon is started from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

import typer
from rich.console import Console

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
