"""``lanegw check`` and ``lanegw lockouts``: daily equipment checks and what they lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from gateway.cli.common import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_USAGE,
    ask_daemon,
    confirm,
    require_device,
)
from gateway.cli.status import DEFAULT_CONFIG, ConfigOption, err, lane_of
from gateway.display import value_label
from gateway.maintenance.checks import FivePointGases, check_spec
from gateway.maintenance.lockouts import FIVE_POINT

out = Console()


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
            raise typer.Exit(EXIT_USAGE) from None
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
    technician: Annotated[
        str | None,
        typer.Option("--technician", "-t", help="who performs the check (required, on its record)"),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run a daily check on a device through the daemon; the result is a must-deliver record.

    Shows what the check measured, passed or failed. Examples: [bold]lanegw check analyser
    leak --technician T042[/]; [bold]lanegw check analyser span --value c3h8_ppm=1000
    --value co_pct_vol=3.5 --value co2_pct_vol=14 --value no_ppm=2000 --technician T042[/];
    [bold]lanegw check analyser five_point --gases cylinders.yaml --technician T042[/];
    [bold]lanegw check opacimeter filter --value nominal_n_pct=50 --technician T042[/]
    """
    lane = lane_of(config)
    configured = require_device(lane, device, err)
    try:
        spec = check_spec(configured.device_class, kind)
    except KeyError as exc:
        err.print(f"[red]{str(exc).strip(chr(34))}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    if not technician:
        err.print("[red]--technician is required: who performs the check is on its record[/]")
        raise typer.Exit(EXIT_USAGE)
    base = {"device": device, "kind": kind, "technician": technician}
    if spec.kind == FIVE_POINT:
        results, declined = _five_point(lane.state_dir, base, _cylinders(gases), yes)
    else:
        if not yes:
            confirm(f"{spec.summary} on {device}. {spec.confirm} Start?", err)
        with err.status(f"{spec.summary} running on {device}…"):
            args = base | {"values": _values(value or [])}
            results, declined = [ask_daemon(lane.state_dir, "check", args, err)], None
    _show(device, kind, results, as_json)
    if declined is not None:
        done = f"points 1-{declined - 1} are recorded" if declined > 1 else "no point was run"
        err.print(f"[yellow]cancelled at point {declined}/5: {done}; nothing else changed[/]")
        raise typer.Exit(EXIT_CANCELLED)
    if not all(result["passed"] for result in results):
        raise typer.Exit(EXIT_FAILED)


def _cylinders(path: Path | None) -> list[dict[str, Any]]:
    """The five cylinders of a five-point check, validated."""
    if path is None:
        err.print("[red]five_point needs --gases FILE: the five cylinders' concentrations[/]")
        raise typer.Exit(EXIT_USAGE)
    try:
        cylinders = FivePointGases.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        err.print(f"[red]{path}: {exc}[/]")
        raise typer.Exit(EXIT_USAGE) from None
    return [c.model_dump() for c in cylinders.root]


def _five_point(
    state_dir: Path, base: dict[str, Any], cylinders: list[dict[str, Any]], yes: bool
) -> tuple[list[dict[str, Any]], int | None]:
    """Run the five points in turn, asking for each cylinder; stop at the first failure.
    The results so far, and the point the technician declined (None if none was)."""
    results: list[dict[str, Any]] = []
    for point, cylinder in enumerate(cylinders, start=1):
        name = cylinder.pop("name")
        gas = ", ".join(f"{k} {v:g}" for k, v in cylinder.items())
        prompt = f"Point {point}/5: connect cylinder {name!r} ({gas}). Start?"
        if not yes and not _agree(prompt):
            return results, point
        with err.status(f"five-point check, point {point}/5 ({name}) running…"):
            values = {k: float(v) for k, v in cylinder.items()} | {"point": float(point)}
            results.append(ask_daemon(state_dir, "check", base | {"values": values}, err))
        if not results[-1]["passed"]:
            break
    return results, None


def _agree(prompt: str) -> bool:
    try:
        return bool(typer.confirm(prompt))
    except typer.Abort:  # end of input
        return False


def _show(device: str, kind: str, results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for result in results:
            print(json.dumps(result, ensure_ascii=False))
        return
    for result in results:
        mark = "[green]PASSED[/]" if result["passed"] else "[red]FAILED[/]"
        note = f" {result['note']}" if result["note"] else ""
        out.print(
            f"{device} {kind} check {mark} (record {result['record_id']}){note}", soft_wrap=True
        )
        table = Table("measured", "value", "unit", "verdict", box=None, padding=(0, 2))
        for m in result["measurements"]:
            label = value_label(m["name"])
            verdict = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]"}.get(m["verdict"], "")
            table.add_row(label.en, _value(m["value"]), m.get("unit") or label.unit or "", verdict)
        out.print(table)
    if results:
        for reason in results[-1]["locked"]:
            out.print(f"  [red]locked:[/] {reason}")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def lockouts(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Devices the daemon refuses to test with, and why.

    Example: [bold]lanegw lockouts -c /etc/lanegw/lane.yaml[/]
    """
    state_dir = lane_of(config).state_dir
    locked: dict[str, list[str]] = ask_daemon(state_dir, "lockouts", {}, err)["locked"]
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
