"""``lanegw probe PORT``: which known protocol, at which line settings, answers on a port.

For each byte-stream protocol in the driver registry and each candidate baud rate (the
protocol's default first), open the port, ask the driver for one harmless reading
(``poll()``) and note what happened; it stops at the first that answers (``--all`` tries
every pair). A port that does not exist or cannot be opened is said so at once, not
tried 30 times. The port is locked for the duration, so the probe never fights the
daemon or another technician for it.
"""

from __future__ import annotations

import asyncio
import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from drivers.bus import StreamBus
from drivers.devices.base import DriverContext, DriverSpec
from drivers.errors import DriverError, PortUnavailable
from drivers.registry import driver_specs
from drivers.transport import LineSettings
from gateway.cli.common import EXIT_FAILED, EXIT_REFUSED, EXIT_USAGE
from gateway.portlock import PortBusy, locked

out = Console()
err = Console(stderr=True)

#: baud rates tried after a protocol's own default (the common Chinese instrument rates)
COMMON_BAUDS = (9600, 2400, 19200, 38400, 4800)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One protocol at one line setting, and what came back."""

    protocol: str
    line: str
    answered: bool
    detail: str  # what went wrong, or the reading in short
    reading: dict[str, Any] | None = None  # what the device answered

    def as_json(self) -> dict[str, Any]:
        """The attempt as one JSON object (the reading as an object, not a string)."""
        return {
            "protocol": self.protocol,
            "line": self.line,
            "answered": self.answered,
            "detail": None if self.answered else self.detail,
            "reading": self.reading,
        }


def probe(
    port: Annotated[
        str, typer.Argument(help="/dev/ttyUSB0, /dev/serial/by-id/..., socket://host:port")
    ],
    protocol: Annotated[list[str] | None, typer.Option(help="only these protocols")] = None,
    baud: Annotated[list[int] | None, typer.Option(help="only these baud rates")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 0.5,
    every: Annotated[
        bool, typer.Option("--all", help="try every pair, not only up to the first answer")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per attempt")] = False,
) -> None:
    """Try the known protocols and line settings on a port; stops at the first that
    answers. Exit 0 when one answered, 3 when none did, 2 for a port that does not exist.

    Example: [bold]lanegw probe /dev/ttyUSB0 --baud 9600 --baud 2400[/]
    """
    specs = _specs(protocol)
    _require_port(port)
    try:
        with locked(port, "lanegw probe"):
            attempts = asyncio.run(_probe_all(port, specs, baud, timeout, as_json, every))
    except PortBusy as exc:
        err.print(f"[red]{exc}[/]: stop it first (e.g. systemctl stop lanegw)")
        raise typer.Exit(EXIT_REFUSED) from None
    if as_json:
        for a in attempts:
            print(json.dumps(a.as_json(), ensure_ascii=False, default=str))
    else:
        _show(port, attempts)
    if attempts and attempts[-1].detail.startswith("PortUnavailable"):
        err.print(f"[red]cannot open {port}: {attempts[-1].detail}[/]")
        raise typer.Exit(EXIT_REFUSED)
    if not any(a.answered for a in attempts):
        raise typer.Exit(EXIT_FAILED)


def _require_port(port: str) -> None:
    """A serial port must exist: say which do, rather than try 30 settings on nothing."""
    if port.startswith(("socket://", "tcp://", "rfc2217://")) or Path(port).exists():
        return
    here = sorted(glob.glob("/dev/serial/by-id/*") or glob.glob("/dev/tty[USA]*[0-9]"))
    known = ", ".join(here[:8]) or "none found"
    err.print(f"[red]no such port {port}[/] (serial ports here: {known})")
    raise typer.Exit(EXIT_USAGE)


def _specs(names: list[str] | None) -> list[DriverSpec]:
    streams = {n: s for n, s in driver_specs().items() if s.bus_kind == "stream"}
    if not names:
        return list(streams.values())
    unknown = [n for n in names if n not in streams]
    if unknown:
        err.print(f"[red]unknown protocol(s) {', '.join(unknown)}; known: {', '.join(streams)}[/]")
        raise typer.Exit(EXIT_USAGE)
    return [streams[n] for n in names]


def _lines(spec: DriverSpec, bauds: list[int] | None) -> list[LineSettings]:
    default = spec.default_line
    rates = bauds or list(dict.fromkeys((default.baudrate, *COMMON_BAUDS)))
    return [LineSettings(r, default.bytesize, default.parity, default.stopbits) for r in rates]


async def _probe_all(
    port: str,
    specs: list[DriverSpec],
    bauds: list[int] | None,
    timeout: float,
    quiet: bool,
    every: bool,
) -> list[Attempt]:
    plan = [(spec, line) for spec in specs for line in _lines(spec, bauds)]
    attempts: list[Attempt] = []
    with Progress(console=err, transient=True, disable=quiet) as progress:
        task = progress.add_task("probing", total=len(plan))
        for spec, line in plan:
            progress.update(task, description=f"{spec.protocol} {line.describe()}")
            attempts.append(await _try(port, spec, line, timeout))
            progress.advance(task)
            if attempts[-1].answered and not every:
                break  # found: the rest would only cost time
            if attempts[-1].detail.startswith("PortUnavailable"):
                break  # the port itself cannot be opened: no setting will change that
    return attempts


async def _try(port: str, spec: DriverSpec, line: LineSettings, timeout: float) -> Attempt:
    bus = StreamBus("probe", port, line, response_timeout=timeout, reopen_max=timeout)
    device = spec.factory(DriverContext("probe", bus, None, spec.options()))
    answered, detail, values = False, "", {}
    async with asyncio.TaskGroup() as group:
        owner = group.create_task(bus.run())
        try:
            async with asyncio.timeout(timeout * 4):
                reading = await device.poll()
            values = reading.as_dict()
            answered, detail = True, ", ".join(f"{k} {v}" for k, v in values.items())[:120]
        except PortUnavailable as exc:
            detail = f"PortUnavailable: {exc}"[:200]
        except DriverError as exc:
            detail = f"{type(exc).__name__}: {exc}"[:120]
        except TimeoutError:
            detail = "no answer"
        owner.cancel()
    return Attempt(spec.protocol, line.describe(), answered, detail, values if answered else None)


def _show(port: str, attempts: list[Attempt]) -> None:
    table = Table("protocol", "line", "result", "detail", title=f"probe {port}")
    for a in attempts:
        mark = "[green]answers[/]" if a.answered else "[dim]-[/]"
        table.add_row(a.protocol, a.line, mark, a.detail)
    out.print(table)
    found = [a for a in attempts if a.answered]
    if found:
        out.print(f"[green]✓ {found[0].protocol} at {found[0].line}[/]")
    elif not attempts or not attempts[-1].detail.startswith("PortUnavailable"):
        out.print("[red]nothing answered: check wiring, the device's address and its power[/]")
