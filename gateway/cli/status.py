"""``lanegw status`` and ``lanegw monitor``: the running daemon, seen through its control socket."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.config import LaneConfig, load_config
from gateway.control import connect, request
from gateway.errors import ConfigError

out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="LANEGW_CONFIG",
        help="lane config (its state_dir locates the daemon); or set LANEGW_CONFIG",
    ),
]
DEFAULT_CONFIG = Path("/etc/lanegw/lane.yaml")
STATE_COLOURS = {"online": "green", "degraded": "yellow", "offline": "red", "starting": "dim"}


def lane_of(config: Path) -> LaneConfig:
    """The lane config at ``config`` (exit 2 with the reason if unusable)."""
    try:
        return load_config(config)
    except ConfigError as exc:
        err.print(f"[red]{exc}[/]: run [bold]lanegw config check {config}[/]")
        raise typer.Exit(2) from None


def state_dir_of(config: Path) -> Path:
    """The state directory named by a lane config (exit 2 with the reason if unusable)."""
    return lane_of(config).state_dir


def _ask(state_dir: Path, command: str) -> dict[str, Any]:
    try:
        answer = asyncio.run(request(state_dir, command))
    except ConnectionError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if not answer.get("ok"):
        err.print(f"[red]{answer.get('error')}[/]")
        raise typer.Exit(1)
    result: dict[str, Any] = answer["result"]
    return result


def status(
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="the gateway-status JSON")] = False,
) -> None:
    """Lane, devices, buses, MQTT link and outbox of the running daemon.

    Example: [bold]lanegw status -c /etc/lanegw/lane.yaml --json[/]
    """
    snapshot = _ask(state_dir_of(config), "status")
    if as_json:
        print(json.dumps(snapshot, ensure_ascii=False, indent=2))
        return
    out.print(_status_view(snapshot))


def _status_view(s: dict[str, Any]) -> Group:
    link = "[green]connected[/]" if s["mqtt_connected"] else "[red]disconnected[/]"
    box = s["outbox"]
    alarm = " [bold red]ALARM: new inspections refused[/]" if box["alarm"] else ""
    head = Text.from_markup(
        f"[bold]station {s['station']} lane {s['lane']}[/]  lanegw {s['version']}  "
        f"MQTT {link} ({s['mqtt_reconnects']} reconnects)\n"
        f"outbox {box['depth']} records, {box['bytes']} of {box['max_bytes']} bytes, "
        f"oldest {box['oldest_age_s']:.0f} s, last seq {box['last_seq']}{alarm}\n"
        f"inspection: {s['inspection'] or '-'}  queued orders: {s['queued_orders']}"
    )
    devices = Table(
        "device", "class", "state", "last value", "failures", "last error", title="devices"
    )
    for d in s["devices"]:
        colour = STATE_COLOURS.get(d["availability"], "white")
        age = "-" if d["last_value_age_s"] is None else f"{d['last_value_age_s']:.1f} s ago"
        devices.add_row(
            d["id"],
            d["device_class"],
            f"[{colour}]{d['availability']}[/]",
            age,
            str(d["consecutive_failures"]),
            d["last_error"] or "",
        )
    buses = Table("bus", "port", "last error", title="buses")
    for b in s["buses"]:
        buses.add_row(
            b["id"], "[green]open[/]" if b["open"] else "[red]closed[/]", b["last_error"] or ""
        )
    return Group(head, devices, buses)


def monitor(
    device: Annotated[str, typer.Argument(help="device id from the lane config")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per reading")] = False,
    seconds: Annotated[float | None, typer.Option(help="stop after this long")] = None,
) -> None:
    """Live values of one device at its poll rate (Ctrl-C to stop; the daemon is not affected).

    Example: [bold]lanegw monitor brake -c /etc/lanegw/lane.yaml[/]
    """
    try:
        asyncio.run(_monitor(state_dir_of(config), device, as_json, seconds))
    except ConnectionError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


async def _monitor(state_dir: Path, device: str, as_json: bool, seconds: float | None) -> None:
    async with asyncio.timeout(seconds), connect(state_dir) as (reader, writer):
        writer.write(
            json.dumps({"command": "monitor", "args": {"device": device}}).encode() + b"\n"
        )
        first = json.loads(await reader.readline() or b"{}")
        if not first.get("ok"):
            raise ConnectionError(first.get("error", "the daemon closed the connection"))
        history: deque[dict[str, Any]] = deque(maxlen=120)  # the chart's width
        with (
            Live(console=out, auto_refresh=False, transient=False)
            if not as_json
            else _Quiet() as live
        ):
            while line := await reader.readline():
                item = json.loads(line)
                if as_json:
                    print(json.dumps(item, ensure_ascii=False), flush=True)
                    continue
                history.append(item)
                live.update(_monitor_view(device, history), refresh=True)


def _monitor_view(device: str, history: deque[dict[str, Any]]) -> Group:
    latest = history[-1]
    recent = list(history)[-TREND_POINTS:]
    title = f"{device}  {time.strftime('%H:%M:%S')}"
    table = Table("value", "now", f"trend (last {TREND_POINTS})", title=title)
    for name, value in latest["values"].items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            table.add_row(name, str(value), "")
            continue
        table.add_row(name, f"{value:g}", _sparkline(_series(recent, name)))
    if not all(name in latest["values"] for name in BRAKE_CURVES):
        return Group(table)
    left, right = (_series(list(history), name) for name in BRAKE_CURVES)
    return Group(table, _curves(left, right))


TREND_POINTS = 60
#: a brake tester's channels drawn as curves, left and right together
BRAKE_CURVES = ("force_left_dan", "force_right_dan")
CHART_ROWS = 12


def _series(history: list[dict[str, Any]], name: str) -> list[float]:
    values = (h["values"].get(name) for h in history)
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _curves(left: list[float], right: list[float]) -> Text:
    """Left (cyan) and right (magenta) forces on one chart, newest at the right edge."""
    top = max([*left, *right, 1.0])
    rows = [[" "] * len(left) for _ in range(CHART_ROWS)]
    for column, (a, b) in enumerate(zip(left, right, strict=False)):
        for value, mark in ((a, "L"), (b, "R")):
            row = CHART_ROWS - 1 - min(CHART_ROWS - 1, int(value / top * (CHART_ROWS - 1)))
            rows[row][column] = "*" if rows[row][column] not in (" ", mark) else mark
    chart = Text(f"force, daN (max {top:g})  L = left  R = right\n")
    for cells in rows:
        for cell in cells:
            chart.append(cell, style={"L": "cyan", "R": "magenta", "*": "bold"}.get(cell, ""))
        chart.append("\n")
    return chart


_BARS = "▁▂▃▄▅▆▇█"


def _sparkline(values: list[float]) -> str:
    """A one-line curve of ``values`` (how a technician sees force rise and fall)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(_BARS[int((v - low) / span * (len(_BARS) - 1))] for v in values)


class _Quiet:
    """Stand-in for ``Live`` in JSON mode."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, *_args: object, **_kwargs: object) -> None:
        """Nothing to draw."""
