"""``lanegw check`` and ``lanegw lockouts``: daily equipment checks and what they lock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from gateway.cli.status import DEFAULT_CONFIG, ConfigOption, err
from gateway.config import load_config
from gateway.control import request
from gateway.errors import ConfigError
from gateway.maintenance.checks import FivePointGases, check_spec
from gateway.maintenance.lockouts import FIVE_POINT

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


def _values(pairs: list[str]) -> dict[str, float]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            if not sep or not name:
                raise ValueError(pair)
            values[name] = float(value)
        except ValueError:
            err.print(f"[red]--value expects NAME=NUMBER, got {pair!r}[/]")
            raise typer.Exit(2) from None
    return values


def check(
    device: Annotated[str, typer.Argument(help="device id")],
    kind: Annotated[
        str,
        typer.Argument(
            help="leak, zero, low_flow, span, five_point (analyser); zero, filter (opacimeter)"
        ),
    ],
    value: Annotated[list[str] | None, typer.Option(help="reference value NAME=VALUE")] = None,
    gases: Annotated[
        Path | None,
        typer.Option(help="five_point: YAML list of the five cylinders (see docs/cli.md)"),
    ] = None,
    technician: Annotated[str | None, typer.Option(help="who performs the check")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run a daily check on a device through the daemon; the result is a must-deliver record.

    Examples: [bold]lanegw check analyser leak --technician T042[/];
    [bold]lanegw check analyser span --value c3h8_ppm=1000 --value co_pct_vol=3.5
    --value co2_pct_vol=14 --value no_ppm=2000[/]; [bold]lanegw check analyser five_point
    --gases cylinders.yaml[/]; [bold]lanegw check opacimeter filter --value nominal_n_pct=50[/]
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
    base = {"device": device, "kind": kind, "technician": technician}
    if spec.kind == FIVE_POINT:
        results = _five_point(lane.state_dir, base, _cylinders(gases), yes)
    else:
        if not yes and not typer.confirm(f"{spec.summary} on {device}. {spec.confirm} Start?"):
            raise typer.Exit(1)
        with err.status(f"{spec.summary} running on {device}…"):
            results = [_ask(lane.state_dir, "check", base | {"values": _values(value or [])})]
    _show(device, kind, results, as_json)
    if not all(result["passed"] for result in results):
        raise typer.Exit(3)


def _cylinders(path: Path | None) -> list[dict[str, Any]]:
    """The five cylinders of a five-point check, validated."""
    if path is None:
        err.print("[red]five_point needs --gases FILE: the five cylinders' concentrations[/]")
        raise typer.Exit(2)
    try:
        cylinders = FivePointGases.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        err.print(f"[red]{path}: {exc}[/]")
        raise typer.Exit(2) from None
    return [c.model_dump() for c in cylinders.root]


def _five_point(
    state_dir: Path, base: dict[str, Any], cylinders: list[dict[str, Any]], yes: bool
) -> list[dict[str, Any]]:
    """Run the five points in turn, asking for each cylinder; stop at the first failure."""
    results = []
    for point, cylinder in enumerate(cylinders, start=1):
        name = cylinder.pop("name")
        gas = ", ".join(f"{k} {v:g}" for k, v in cylinder.items())
        prompt = f"Point {point}/5: connect cylinder {name!r} ({gas}). Start?"
        if not yes and not typer.confirm(prompt):
            raise typer.Exit(1)
        with err.status(f"five-point check, point {point}/5 ({name}) running…"):
            values = {k: float(v) for k, v in cylinder.items()} | {"point": float(point)}
            results.append(_ask(state_dir, "check", base | {"values": values}))
        if not results[-1]["passed"]:
            break
    return results


def _show(device: str, kind: str, results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for result in results:
            print(json.dumps(result, ensure_ascii=False))
        return
    for result in results:
        mark = "[green]PASSED[/]" if result["passed"] else "[red]FAILED[/]"
        out.print(f"{device} {kind} check {mark} (record {result['record_id']}) {result['note']}")
    for reason in results[-1]["locked"]:
        out.print(f"  [red]locked:[/] {reason}")


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
