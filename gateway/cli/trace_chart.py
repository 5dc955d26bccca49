"""The speed trace of a dyno method in ``lanegw monitor <dyno>``: the actual roller speed
against the target and its band, per second, newest at the right edge.

While ASM or VMAS holds the dyno, each second's values carry ``target_kmh``,
``band_low_kmh`` and ``band_high_kmh`` (and ``in_band``); the chart draws the band as a
shaded strip, the target as ``-`` and the speed as ``●``, green in the band and red out
of it, on a scale that zooms on the seconds shown; a headline says in band or out of
band with the figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from rich.text import Text

#: the values a second of the trace carries
TRACE_KEYS: Final = ("speed_kmh", "target_kmh", "band_low_kmh", "band_high_kmh")
ROWS: Final = 12


def trace_points(history: Sequence[Mapping[str, Any]]) -> list[tuple[float, ...]]:
    """(speed, target, low, high) of each reading that carries the whole trace."""
    points = []
    for entry in history:
        values = entry["values"]
        numbers = [values.get(k) for k in TRACE_KEYS]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
            points.append(tuple(float(v) for v in numbers))
    return points


def in_band(point: tuple[float, ...]) -> bool:
    """Whether the speed is inside its band."""
    speed, _, low, high = point
    return low <= speed <= high


def headline(point: tuple[float, ...]) -> Text:
    """IN BAND / OUT OF BAND with the speed, the target and the band."""
    speed, target, low, high = point
    ok = in_band(point)
    text = Text("IN BAND " if ok else "OUT OF BAND ", style="bold green" if ok else "bold red")
    text.append(f"speed {speed:.1f} km/h, target {target:.1f} (band {low:.1f}–{high:.1f})")
    return text


def trace_chart(points: Sequence[tuple[float, ...]]) -> Text:
    """The chart of ``points`` (see the module docstring), one column per second."""
    bottom = min(min(p[0], p[2]) for p in points)
    top = max(max(p[0], p[3]) for p in points)
    pad = max(0.5, 0.05 * (top - bottom))  # the scale zooms on the trace: the band shows
    bottom, top = bottom - pad, top + pad

    def row(value: float) -> int:
        share = (value - bottom) / (top - bottom)
        return ROWS - 1 - min(ROWS - 1, max(0, round(share * (ROWS - 1))))

    grid = [[(" ", "")] * len(points) for _ in range(ROWS)]
    for column, point in enumerate(points):
        speed, target, band_low, band_high = point
        for r in range(row(band_high), row(band_low) + 1):
            grid[r][column] = ("░", "green")
        grid[row(target)][column] = ("-", "bold")
        grid[row(speed)][column] = ("●", "green" if in_band(point) else "bold red")
    chart = Text(f"speed trace, km/h ({bottom:.1f}–{top:.1f})  ● speed  - target  ░ band\n")
    for cells in grid:
        for mark, style in cells:
            chart.append(mark, style=style)
        chart.append("\n")
    return chart


def trace_view(history: Sequence[Mapping[str, Any]], columns: int) -> list[Text]:
    """The headline and the chart of the last ``columns`` seconds, or nothing."""
    points = trace_points(history)[-columns:]
    if not points:
        return []
    return [headline(points[-1]), trace_chart(points)]
