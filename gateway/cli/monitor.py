"""``lanegw monitor``: one device's live values, as the running daemon sees them.

The daemon streams every reading of the device (its polls, and while a procedure holds
it, the values the procedure reads: a brake test's forces, a two-speed idle's gases);
after a second without one it says why (offline and the last error, or what holds the
device). Values are shown by their display names with units (gateway/display.yaml); the
sparklines of values of one unit share one scale, so a curve's height compares. While
ASM or VMAS holds a dyno, its speed is drawn against the target and the band, with an
in-band / out-of-band headline (``trace_chart``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.cli.common import EXIT_REFUSED, require_device
from gateway.cli.status import DEFAULT_CONFIG, ConfigOption, err, lane_of
from gateway.cli.trace_chart import trace_view
from gateway.control import connect
from gateway.display import value_label

out = Console()

#: readings kept for the chart (a brake test streams 25 a second to the monitor)
HISTORY: Final = 400
TREND_POINTS: Final = 60
#: a brake tester's channels drawn as curves, left and right together
BRAKE_CURVES: Final = ("force_left_dan", "force_right_dan")
CHART_ROWS: Final = 12
CHART_COLUMNS: Final = 100
_BARS: Final = "▁▂▃▄▅▆▇█"


def monitor(
    device: Annotated[str, typer.Argument(help="device id from the lane config")],
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per reading")] = False,
    seconds: Annotated[float | None, typer.Option(help="stop after this long")] = None,
) -> None:
    """Live values of one device (Ctrl-C to stop; the daemon is not affected). During a
    brake test the forces are drawn as curves, during ASM or VMAS the dyno's speed against
    its target band; when no values come, it says why.

    Example: [bold]lanegw monitor brake -c /etc/lanegw/lane.yaml[/]
    """
    lane = lane_of(config)
    require_device(lane, device, err)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(_monitor(lane.state_dir, device, as_json, seconds))
        except ConnectionError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(EXIT_REFUSED) from None


async def _monitor(state_dir: Path, device: str, as_json: bool, seconds: float | None) -> None:
    """Stream until the daemon hangs up or ``seconds`` have passed (a normal end)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds), connect(state_dir) as (reader, writer):
            request = {"command": "monitor", "args": {"device": device}}
            writer.write(json.dumps(request).encode() + b"\n")
            first = json.loads(await reader.readline() or b"{}")
            if not first.get("ok"):
                raise ConnectionError(first.get("error", "the daemon closed the connection"))
            view = MonitorView(device, first["result"])
            if as_json:
                print(json.dumps({"device": device, "state": first["result"]}), flush=True)
            with _live(as_json) as live:
                while line := await reader.readline():
                    item = json.loads(line)
                    if as_json:
                        print(json.dumps(item, ensure_ascii=False), flush=True)
                        continue
                    view.take(item)
                    live.update(view.render(), refresh=True)


@contextlib.contextmanager
def _live(as_json: bool) -> Iterator[Any]:
    if as_json:
        yield _Quiet()
        return
    with Live(console=out, auto_refresh=False, transient=False) as live:
        yield live


class MonitorView:
    """What the monitor shows: the latest values, their trends, the brake curves, and
    why values stopped coming (the daemon's state lines)."""

    def __init__(self, device: str, state: dict[str, Any]) -> None:
        self.device = device
        self.state = state
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self.last_reading: float | None = None

    def take(self, item: dict[str, Any]) -> None:
        """A reading (``values``) or a state line (``state``) from the daemon."""
        if "state" in item:
            self.state = item["state"]
        else:
            self.history.append(item)
            self.last_reading = time.monotonic()

    def render(self) -> Group:
        """The whole view."""
        parts: list[Any] = [self._status_line()]
        if self.history:
            parts.append(self._table())
        forces = [h for h in self.history if all(n in h["values"] for n in BRAKE_CURVES)]
        if forces:
            left, right = (_series(forces[-CHART_COLUMNS:], name) for name in BRAKE_CURVES)
            parts.append(curves(left, right))
        # one column a second, as many as the terminal shows without wrapping
        parts += trace_view(list(self.history), max(10, min(CHART_COLUMNS, out.width - 2)))
        return Group(*parts)

    def _status_line(self) -> Text:
        title = f"{self.device}  {time.strftime('%H:%M:%S')}"
        stale = self.last_reading is None or time.monotonic() - self.last_reading > 1.5
        if not stale:
            return Text(title, style="bold")
        state = self.state
        if state.get("availability") in ("offline", "degraded"):
            why = (
                f"{state['availability']}: no readings since "
                f"{str(state.get('since', '?'))[11:19]} UTC ({state.get('last_error') or '-'})"
            )
            return Text(f"{title}  {why}", style="bold red")
        if state.get("held_for"):
            why = f"in use by {state['held_for']}: values show when the procedure reads them"
            return Text(f"{title}  {why}", style="bold yellow")
        return Text(f"{title}  waiting for readings ({state.get('availability', '?')})")

    def _table(self) -> Table:
        latest = self.history[-1]["values"]
        recent = list(self.history)[-TREND_POINTS:]
        scales = unit_scales(recent)
        table = Table("value", "now", "unit", f"trend (last {TREND_POINTS}, one scale per unit)")
        for name, value in latest.items():
            label = value_label(name)
            unit = label.unit or ""
            if isinstance(value, bool) or not isinstance(value, int | float):
                table.add_row(label.en, _text(value), unit, "")
                continue
            low, high = scales[unit]
            trend = sparkline(_series(recent, name), low, high)
            table.add_row(label.en, f"{value:g}", unit, f"{trend}  {low:g}…{high:g}")
        return table


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value is None else str(value)


def _series(history: list[dict[str, Any]], name: str) -> list[float]:
    values = (h["values"].get(name) for h in history)
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def unit_scales(history: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """(low, high) per unit over every value of that unit in ``history``."""
    scales: dict[str, tuple[float, float]] = {}
    for entry in history:
        for name, value in entry["values"].items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            unit = value_label(name).unit or ""
            low, high = scales.get(unit, (value, value))
            scales[unit] = (min(low, value), max(high, value))
    return scales


def sparkline(values: list[float], low: float, high: float) -> str:
    """A one-line curve of ``values`` on the scale ``low``..``high``."""
    span = (high - low) or 1.0
    return "".join(_BARS[round((v - low) / span * (len(_BARS) - 1))] for v in values)


def curves(left: list[float], right: list[float]) -> Text:
    """Left (cyan) and right (magenta) forces on one chart, newest at the right edge."""
    top = max([*left, *right, 1.0])
    rows = [[" "] * len(left) for _ in range(CHART_ROWS)]
    for column, (a, b) in enumerate(zip(left, right, strict=False)):
        for value, mark in ((a, "L"), (b, "R")):
            row = CHART_ROWS - 1 - min(CHART_ROWS - 1, max(0, int(value / top * (CHART_ROWS - 1))))
            rows[row][column] = "*" if rows[row][column] not in (" ", mark) else mark
    chart = Text(f"brake force, daN (max {top:g})  L = left  R = right\n")
    for cells in rows:
        for cell in cells:
            chart.append(cell, style={"L": "cyan", "R": "magenta", "*": "bold"}.get(cell, ""))
        chart.append("\n")
    return chart


class _Quiet:
    """Stand-in for ``Live`` in JSON mode."""

    def update(self, *_args: object, **_kwargs: object) -> None:
        """Nothing to draw."""
