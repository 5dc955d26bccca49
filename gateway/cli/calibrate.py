"""``lanegw calibrate``: guided zero and span calibration of one channel of a device."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    ask_daemon,
    confirm,
    require_device,
)
from gateway.cli.status import DEFAULT_CONFIG, ConfigOption, err, lane_of

out = Console()


def _measure(state_dir: Path, device: str, channel: str, samples: int) -> float:
    args = {"device": device, "count": samples, "channel": channel}
    readings = ask_daemon(state_dir, "sample", args, err)["readings"]
    values = [r.get(channel) for r in readings]
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        known = ", ".join(
            k for k, v in readings[0].items() if isinstance(v, int | float) and k != "ts"
        )
        err.print(f"[red]{device} has no numeric channel {channel!r} (channels: {known})[/]")
        raise typer.Exit(EXIT_USAGE)
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
    """Calibrate a channel against reference values; shows the fit, the coefficients in
    force and asks before applying. Refused while an inspection runs or the device is in
    use, and beyond the channel's bounds (docs/cli.md).

    Examples: [bold]lanegw calibrate brake force_left_dan --reference 0 --technician T042
    --certificate GZJL-2026-1[/] (zero: nothing on the rollers);
    [bold]lanegw calibrate weigher weight_kg --reference 0 --reference 500
    --reference 1000 --technician T042 --certificate GZJL-2026-2[/] (span, prompts to
    apply each weight); [bold]lanegw calibrate weigher weight_kg --rollback
    --technician T042[/]
    """
    lane = lane_of(config)
    require_device(lane, device, err)
    state_dir = lane.state_dir
    base = {"device": device, "channel": channel, "technician": technician}
    if not technician:
        err.print("[red]--technician is required: who calibrates is part of the record[/]")
        raise typer.Exit(EXIT_USAGE)
    if rollback:
        if not yes:
            confirm(f"Return {device} {channel} to its previous calibration?", err)
        result = ask_daemon(state_dir, "rollback", base, err)
        _print(result, as_json)
        return
    references = reference or []
    if not references:
        err.print("[red]give at least one --reference (0 for a zero calibration)[/]")
        raise typer.Exit(EXIT_USAGE)
    if not certificate:
        err.print(
            "[red]--certificate is required: the certificate of the reference weights or "
            "gases (for a zero: of the zero standard)[/]"
        )
        raise typer.Exit(EXIT_USAGE)
    if reading is not None and len(reading) != len(references):
        err.print("[red]give one --reading per --reference, or none to measure live[/]")
        raise typer.Exit(EXIT_USAGE)
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
    preview = ask_daemon(state_dir, "calibrate", args, err)
    if not as_json:
        _show_fit(references, raw, preview)
    if not preview["linear_ok"]:
        err.print(
            f"[red]linearity outside ±{preview['tolerance_pct']} % of the span: not applied[/]"
        )
        raise typer.Exit(EXIT_FAILED)
    if not yes:
        confirm("Apply this calibration now?", err)
    _print(ask_daemon(state_dir, "calibrate", args | {"apply": True}, err), as_json)


def _live(
    state_dir: Path, device: str, channel: str, references: list[float], samples: int, yes: bool
) -> list[float]:
    raw = []
    for value in references:
        if not yes:
            confirm(f"Apply the reference {value:g} to {device} {channel}; ready?", err)
        # progress goes to stderr, so --json output stays clean on stdout
        with err.status(f"sampling {channel} ({samples} readings)…"):
            raw.append(_measure(state_dir, device, channel, samples))
        err.print(f"  reference {value:g}: reading {raw[-1]:.3f}")
    return raw


def _show_fit(references: list[float], raw: list[float], fit: dict[str, Any]) -> None:
    previous, bounds = fit["previous"], fit["bounds"]
    unit = bounds["unit"]
    table = Table(
        "reference",
        "raw reading",
        "corrected",
        "error, % of span",
        title=f"{fit['device']} {fit['channel']} ({unit}): gain {fit['gain']:.5f}, "
        f"offset {fit['offset']:+.3f}",
    )
    for ref, value, error in zip(references, raw, fit["errors_pct"], strict=True):
        corrected = fit["gain"] * value + fit["offset"]
        colour = "green" if abs(error) <= fit["tolerance_pct"] else "red"
        table.add_row(f"{ref:g}", f"{value:.3f}", f"{corrected:.3f}", f"[{colour}]{error:+.2f}[/]")
    out.print(table)
    out.print(
        f"in force now: gain {previous['gain']:.5f}, offset {previous['offset']:+.3f} {unit}; "
        f"bounds: offset within ±{bounds['max_offset']:g} {unit} "
        f"(range {bounds['range']:g} {unit}), gain {bounds['gain_range'][0]:g}-"
        f"{bounds['gain_range'][1]:g}",
        highlight=False,
        soft_wrap=True,
    )


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    previous = result["previous"]
    out.print(
        f"[green]✓[/] {result['device']} {result['channel']}: gain {result['gain']:.5f}, "
        f"offset {result['offset']:+.3f} (was gain {previous['gain']:.5f}, "
        f"offset {previous['offset']:+.3f})",
        highlight=False,
    )
    out.print(
        f"  saved in {result['history_file']}; calibration record {result.get('record_id')} "
        "goes to the station (must-deliver)",
        highlight=False,
        soft_wrap=True,
    )
