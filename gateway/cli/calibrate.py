"""``lanegw calibrate``: guided zero and span calibration of one channel of a device."""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.status import DEFAULT_CONFIG, ConfigOption, err, state_dir_of
from gateway.control import request

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


def _measure(state_dir: Path, device: str, channel: str, samples: int) -> float:
    readings = _ask(state_dir, "sample", {"device": device, "count": samples})["readings"]
    values = [r.get(channel) for r in readings]
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        known = ", ".join(k for k, v in readings[0].items() if isinstance(v, int | float))
        err.print(f"[red]{device} has no numeric channel {channel!r} (channels: {known})[/]")
        raise typer.Exit(2)
    return statistics.fmean(numbers)


def calibrate(
    device: Annotated[str, typer.Argument(help="device id")],
    channel: Annotated[str, typer.Argument(help="the value to calibrate, e.g. force_left_dan")],
    reference: Annotated[
        list[float] | None,
        typer.Option(help="reference value (repeat: 0 for a zero, two or more for a span)"),
    ] = None,
    reading: Annotated[
        list[float] | None,
        typer.Option(
            help="the raw reading at each reference (scripts); measured live when omitted"
        ),
    ] = None,
    samples: Annotated[int, typer.Option(help="live samples averaged per reference")] = 10,
    technician: Annotated[str | None, typer.Option(help="who calibrates")] = None,
    certificate: Annotated[str | None, typer.Option(help="certificate number")] = None,
    next_due: Annotated[str | None, typer.Option(help="next calibration due (YYYY-MM-DD)")] = None,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="return to the previous one")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Calibrate a channel against reference values; shows the fit and asks before applying.

    Examples: [bold]lanegw calibrate brake force_left_dan --reference 0[/] (zero);
    [bold]lanegw calibrate brake force_left_dan --reference 0 --reference 200 --reference 500
    --technician T042 --certificate GZJL-2026-1[/] (span, prompts to apply each weight);
    [bold]lanegw calibrate brake force_left_dan --rollback[/]
    """
    state_dir = state_dir_of(config)
    base = {"device": device, "channel": channel, "technician": technician}
    if rollback:
        if not yes and not typer.confirm(f"Return {device} {channel} to its previous calibration?"):
            raise typer.Exit(1)
        result = _ask(state_dir, "rollback", base)
        _print(result, as_json)
        return
    references = reference or []
    if not references:
        err.print("[red]give at least one --reference (0 for a zero calibration)[/]")
        raise typer.Exit(2)
    if reading is not None and len(reading) != len(references):
        err.print("[red]give one --reading per --reference, or none to measure live[/]")
        raise typer.Exit(2)
    raw = (
        list(reading)
        if reading is not None
        else _live(state_dir, device, channel, references, samples, yes)
    )
    args = base | {
        "references": references,
        "readings": raw,
        "certificate": certificate,
        "next_due": next_due,
    }
    preview = _ask(state_dir, "calibrate", args)
    if not as_json:
        _show_fit(references, raw, preview)
    if not preview["linear_ok"]:
        err.print(f"[red]linearity outside ±{preview['tolerance_pct']} %: not applied[/]")
        raise typer.Exit(3)
    if not yes and not typer.confirm("Apply this calibration now?"):
        raise typer.Exit(1)
    _print(_ask(state_dir, "calibrate", args | {"apply": True}), as_json)


def _live(
    state_dir: Path, device: str, channel: str, references: list[float], samples: int, yes: bool
) -> list[float]:
    raw = []
    for value in references:
        if not yes:
            typer.confirm(
                f"Apply the reference {value:g} to {device} {channel}; ready?", abort=True
            )
        # progress goes to stderr, so --json output stays clean on stdout
        with err.status(f"sampling {channel} ({samples} readings)…"):
            raw.append(_measure(state_dir, device, channel, samples))
        err.print(f"  reference {value:g}: reading {raw[-1]:.3f}")
    return raw


def _show_fit(references: list[float], raw: list[float], fit: dict[str, Any]) -> None:
    table = Table(
        "reference",
        "raw reading",
        "corrected",
        "error %",
        title=f"{fit['device']} {fit['channel']}: gain {fit['gain']:.5f}, "
        f"offset {fit['offset']:+.3f}",
    )
    for ref, value, error in zip(references, raw, fit["errors_pct"], strict=True):
        corrected = fit["gain"] * value + fit["offset"]
        colour = "green" if abs(error) <= fit["tolerance_pct"] else "red"
        table.add_row(f"{ref:g}", f"{value:.3f}", f"{corrected:.3f}", f"[{colour}]{error:+.2f}[/]")
    out.print(table)


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        out.print(
            f"[green]✓[/] {result['device']} {result['channel']}: gain {result['gain']:.5f}, "
            f"offset {result['offset']:+.3f} (record {result.get('record_id')})"
        )
