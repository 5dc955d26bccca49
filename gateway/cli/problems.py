"""How every command reports a config file it cannot use: each problem with its line."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from gateway.errors import ConfigError


def exit_with_problems(exc: ConfigError, console: Console) -> NoReturn:
    """Print the file's problems on ``console`` and exit 2."""
    console.print(f"[bold red]{exc.path}: {len(exc.problems)} problem(s)[/]")
    for problem in exc.problems:
        console.print(f"  [red]✗[/] {problem}", highlight=False)
    raise typer.Exit(2) from None
