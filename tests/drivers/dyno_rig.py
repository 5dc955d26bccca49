"""Scenarios and rigs shared by the dyno, flowmeter and OBD driver tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from drivers.bus import StreamBus
from simulators.base import LanePosition, SimContext, StreamSim
from simulators.faults import FaultPlan
from simulators.scenario import Scenario
from tests.drivers.stream_rig import ManualClock, Recorder, stream_bus

D = TypeVar("D")
S = TypeVar("S", bound=StreamSim)

AXLES = [
    {
        "load_left_kg": 700,
        "load_right_kg": 700,
        "brake_left": {"max_force_dan": 500},
        "brake_right": {"max_force_dan": 500},
    }
]


def make_scenario(
    driver: dict[str, Any] | None = None,
    *,
    vehicle: dict[str, Any] | None = None,
    dyno: dict[str, Any] | None = None,
    time_scale: float = 1.0,
    noise: float = 0.0,
    **extra: Any,
) -> Scenario:
    """A car with the default powertrain (60 kW at 60 km/h), no noise by default."""
    data: dict[str, Any] = {
        "vehicle": {"axles": AXLES, **(vehicle or {})},
        "timing": {"time_scale": time_scale, "noise": noise, "seed": 3},
        **extra,
    }
    if driver is not None:
        data["driver"] = driver
    if dyno is not None:
        data["dyno"] = dyno
    return Scenario.model_validate(data)


class Clock(ManualClock):
    """Manual clock for the simulators' physics (the bus keeps real time)."""

    start = 1000.0


@dataclass
class Rig(Generic[D, S]):
    driver: D
    sim: S
    faults: FaultPlan
    observer: Recorder
    bus: StreamBus
    position: LanePosition


@contextlib.asynccontextmanager
async def rig(
    make_sim: Callable[[SimContext], S],
    make_driver: Callable[[StreamBus], D],
    scenario: Scenario,
    *,
    options: dict[str, Any] | None = None,
    position: LanePosition | None = None,
    pty_link: Path | None = None,
    response_timeout: float = 0.5,
) -> AsyncIterator[Rig[D, S]]:
    """Simulator on an endpoint, a bus and the driver."""
    faults = FaultPlan(seed=9)
    position = position or LanePosition()
    sim = make_sim(SimContext(scenario, faults, position, options=options or {}))
    served = stream_bus(
        sim, faults, "dyno-bus", response_timeout=response_timeout, pty_link=pty_link
    )
    async with served as (bus, observer, _):
        yield Rig(make_driver(bus), sim, faults, observer, bus, position)
