"""Drive cycles the simulated driver follows, as data (the simulator's own copy).

``VMAS``: the 195-s urban cycle of the simplified transient method (GB 18285-2018 annex
C; the ECE-15 elementary urban cycle of the type I test), written from the cycle's
description as (time s, speed km/h) corners joined by straight lines:

==========  ===========================================================
0-11 s      idle
11-28 s     0→15 km/h in 4 s, 15 km/h for 8 s, 15→10 in 2 s, 10→0 in 3 s
28-49 s     idle
49-96 s     0→15 in 5 s, gear change 2 s, 15→32 in 5 s, 32 for 24 s,
            32→10 in 8 s (−0.75 m/s²), 10→0 in 3 s
96-117 s    idle
117-188 s   0→15 in 5 s, gear change 2 s, 15→35 in 9 s, gear change 2 s,
            35→50 in 8 s, 50 for 12 s, 50→35 in 8 s, 35 for 13 s,
            gear change 2 s (35→32), 32→10 in 7 s, 10→0 in 3 s
188-195 s   idle
==========  ===========================================================

Driven exactly it covers 1.015 km (the cycle is stated as 1.013 km; the gear-change corners
here are straight lines, which adds a little).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Final

VMAS: Final[tuple[tuple[float, float], ...]] = (
    (0, 0), (11, 0), (15, 15), (23, 15), (25, 10), (28, 0),
    (49, 0), (54, 15), (56, 15), (61, 32), (85, 32), (93, 10), (96, 0),
    (117, 0), (122, 15), (124, 15), (133, 35), (135, 35), (143, 50), (155, 50),
    (163, 35), (176, 35), (178, 32), (185, 10), (188, 0), (195, 0),
)  # fmt: skip

CYCLES: Final[dict[str, tuple[tuple[float, float], ...]]] = {"vmas": VMAS}


def speed_at(cycle: Sequence[tuple[float, float]], t: float) -> float:
    """Target speed (km/h) at ``t`` s; 0 before the start and after the end."""
    times = [point[0] for point in cycle]
    if t <= times[0] or t >= times[-1]:
        return 0.0
    i = bisect.bisect_right(times, t)
    (t0, v0), (t1, v1) = cycle[i - 1], cycle[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def accel_at(cycle: Sequence[tuple[float, float]], t: float) -> float:
    """Target acceleration (km/h per s) at ``t``: the slope of the segment."""
    times = [point[0] for point in cycle]
    if t < times[0] or t >= times[-1]:
        return 0.0
    i = bisect.bisect_right(times, t)
    (t0, v0), (t1, v1) = cycle[i - 1], cycle[i]
    return (v1 - v0) / (t1 - t0)


def duration(cycle: Sequence[tuple[float, float]]) -> float:
    """Length of the cycle in s."""
    return cycle[-1][0]


def distance_km(cycle: Sequence[tuple[float, float]]) -> float:
    """Distance covered when the cycle is driven exactly."""
    metres = 0.0
    for (t0, v0), (t1, v1) in itertools.pairwise(cycle):
        metres += (v0 + v1) / 2 / 3.6 * (t1 - t0)
    return metres / 1000
