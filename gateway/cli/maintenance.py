"""``lanegw check`` and ``lanegw lockouts``: daily equipment checks and what they lock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.status import DEFAULT_CONFIG, ConfigOption, err
from gateway.config import load_config
from gateway.control import request
from gateway.errors import ConfigError
from gateway.maintenance.checks import check_spec

out = Console()


def _ask(state_dir: Path, command: str, args: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = asyncio.run(request(state_dir, command, args))
    except ConnectionError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if not answer.get("ok"):
        err.print(f"[red]{answer.get('error')}[/]")
        raise typer.Exit(1)
    result: dict[str, Any] = answer["result"]
    return result


def _values(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            err.print(f"[red]--value expects NAME=VALUE, got {pair!r}[/]")
            raise typer.Exit(2)
        values[name] = value
    return values


def check(
    device: Annotated[str, typer.Argument(help="device id")],
    kind: Annotated[
        str, typer.Argument(help="leak, zero, span (analyser); zero, filter (opacimeter)")
    ],
    value: Annotated[list[str] | None, typer.Option(help="reference value NAME=VALUE")] = None,
    technician: Annotated[str | None, typer.Option(help="who performs the check")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run a daily check on a device through the daemon; the result is a must-deliver record.

    Examples: [bold]lanegw check analyser leak --technician T042[/];
    [bold]lanegw check analyser span --value c3h8_ppm=1000 --value co_pct_vol=3.5
    --value co2_pct_vol=14 --value no_ppm=2000[/]; [bold]lanegw check opacimeter filter
    --value nominal_n_pct=50[/]
    """
    try:
        lane = load_config(config)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    configured = {d.id: d for d in lane.devices}
    if device not in configured:
        err.print(f"[red]no device {device!r} (devices: {', '.join(configured)})[/]")
        raise typer.Exit(2)
    try:
        spec = check_spec(configured[device].device_class, kind)
    except KeyError as exc:
        err.print(f"[red]{str(exc).strip(chr(34))}[/]")
        raise typer.Exit(2) from None
    if not yes and not typer.confirm(f"{spec.summary} on {device}. {spec.confirm} Start?"):
        raise typer.Exit(1)
    args = {
        "device": device,
        "kind": kind,
        "values": _values(value or []),
        "technician": technician,
    }
    with err.status(f"{spec.summary} running on {device}…"):
        result = _ask(lane.state_dir, "check", args)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        mark = "[green]PASSED[/]" if result["passed"] else "[red]FAILED[/]"
        out.print(f"{device} {kind} check {mark} (record {result['record_id']}) {result['note']}")
        for reason in result["locked"]:
            out.print(f"  [red]locked:[/] {reason}")
    if not result["passed"]:
        raise typer.Exit(3)


def lockouts(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Devices the daemon refuses to test with, and why.

    Example: [bold]lanegw lockouts -c /etc/lanegw/lane.yaml[/]
    """
    try:
        state_dir = load_config(config).state_dir
    except ConfigError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    locked: dict[str, list[str]] = _ask(state_dir, "lockouts", {})["locked"]
    if as_json:
        print(json.dumps(locked, ensure_ascii=False))
        return
    if not locked:
        out.print("[green]no device is locked[/]")
        return
    table = Table("device", "why it is locked", title="lockouts")
    for device, reasons in locked.items():
        table.add_row(device, "\n".join(reasons))
    out.print(table)
