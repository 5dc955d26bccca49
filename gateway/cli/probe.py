"""``lanegw probe PORT``: which known protocol, at which line settings, answers on a port.

For each byte-stream protocol in the driver registry and each candidate baud rate (the
protocol's default first), open the port, ask the driver for one harmless reading
(``poll()``) and note what happened. The port is locked for the duration, so the probe
never fights the daemon or another technician for it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from drivers.bus import StreamBus
from drivers.devices.base import DriverContext, DriverSpec
from drivers.errors import DriverError
from drivers.registry import driver_specs
from drivers.transport import LineSettings
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
    detail: str


def probe(
    port: Annotated[
        str, typer.Argument(help="/dev/ttyUSB0, /dev/serial/by-id/..., socket://host:port")
    ],
    protocol: Annotated[list[str] | None, typer.Option(help="only these protocols")] = None,
    baud: Annotated[list[int] | None, typer.Option(help="only these baud rates")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per attempt")] = False,
) -> None:
    """Try the known protocols and line settings on a port; report what answers.

    Example: [bold]lanegw probe /dev/ttyUSB0 --baud 9600 --baud 2400[/]
    """
    specs = _specs(protocol)
    try:
        with locked(port, "lanegw probe"):
            attempts = asyncio.run(_probe_all(port, specs, baud, timeout, quiet=as_json))
    except PortBusy as exc:
        err.print(f"[red]{exc}[/]: stop it first (e.g. systemctl stop lanegw)")
        raise typer.Exit(1) from None
    if as_json:
        for a in attempts:
            print(
                json.dumps(
                    {
                        "protocol": a.protocol,
                        "line": a.line,
                        "answered": a.answered,
                        "detail": a.detail,
                    },
                    ensure_ascii=False,
                )
            )
    else:
        _show(port, attempts)
    if not any(a.answered for a in attempts):
        raise typer.Exit(3)


def _specs(names: list[str] | None) -> list[DriverSpec]:
    streams = {n: s for n, s in driver_specs().items() if s.bus_kind == "stream"}
    if not names:
        return list(streams.values())
    unknown = [n for n in names if n not in streams]
    if unknown:
        err.print(f"[red]unknown protocol(s) {', '.join(unknown)}; known: {', '.join(streams)}[/]")
        raise typer.Exit(2)
    return [streams[n] for n in names]


def _lines(spec: DriverSpec, bauds: list[int] | None) -> list[LineSettings]:
    default = spec.default_line
    rates = bauds or list(dict.fromkeys((default.baudrate, *COMMON_BAUDS)))
    return [LineSettings(r, default.bytesize, default.parity, default.stopbits) for r in rates]


async def _probe_all(
    port: str, specs: list[DriverSpec], bauds: list[int] | None, timeout: float, quiet: bool
) -> list[Attempt]:
    plan = [(spec, line) for spec in specs for line in _lines(spec, bauds)]
    attempts = []
    with Progress(console=err, transient=True, disable=quiet) as progress:
        task = progress.add_task("probing", total=len(plan))
        for spec, line in plan:
            progress.update(task, description=f"{spec.protocol} {line.describe()}")
            attempts.append(await _try(port, spec, line, timeout))
            progress.advance(task)
            if port.startswith(("socket://", "tcp://")) and attempts[-1].answered:
                break  # a device server's line settings live in the server, not here
    return attempts


async def _try(port: str, spec: DriverSpec, line: LineSettings, timeout: float) -> Attempt:
    bus = StreamBus("probe", port, line, response_timeout=timeout, reopen_max=timeout)
    device = spec.factory(DriverContext("probe", bus, None, spec.options()))
    answered, detail = False, ""
    async with asyncio.TaskGroup() as group:
        owner = group.create_task(bus.run())
        try:
            async with asyncio.timeout(timeout * 4):
                reading = await device.poll()
            answered, detail = True, json.dumps(reading.as_dict(), default=str)[:120]
        except DriverError as exc:
            detail = f"{type(exc).__name__}: {exc}"[:120]
        except TimeoutError:
            detail = "no answer"
        owner.cancel()
    return Attempt(spec.protocol, line.describe(), answered, detail)


def _show(port: str, attempts: list[Attempt]) -> None:
    table = Table("protocol", "line", "result", "detail", title=f"probe {port}")
    for a in attempts:
        mark = "[green]answers[/]" if a.answered else "[dim]-[/]"
        table.add_row(a.protocol, a.line, mark, a.detail)
    out.print(table)
    found = [a for a in attempts if a.answered]
    if found:
        out.print(f"[green]✓ {found[0].protocol} at {found[0].line}[/]")
    else:
        out.print("[red]nothing answered: check wiring, the device's address and its power[/]")
