"""What every simulator module offers the lane launcher, tests and tools.

A stream simulator is a class whose ``handle(link)`` serves one connection: it reads
request bytes from the ``SimLink``, decodes them with the protocol's own codec from
``drivers.protocols`` (in the device role), and answers with ``await link.send(frame)``
so that the ``FaultPlan`` can misbehave on demand. A Modbus simulator instead runs a
pymodbus server. Both are built from the shared ``SimContext``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from simulators.faults import FaultPlan
from simulators.scenario import Scenario


@dataclass(slots=True)
class LanePosition:
    """Where the simulated vehicle stands on the lane, shared by the lane's simulators.

    The weigher and the brake tester read the loads of ``axle_index``; the brake
    tester moves the vehicle on by one axle after its result has been read, as a driver
    would after the lamp says "next axle". Whoever plays the station calls
    ``new_vehicle`` with each order: the next vehicle drives in first axle first, even
    when the last one left with axles untested (an order of B1 alone, an aborted axle).
    Without it the next vehicle's B1 would weigh and brake the last one's rear axle.
    Tests and tools may also set it directly.
    """

    vehicles: int = field(default=0)  # vehicles driven in by ``new_vehicle``
    axle_index: int = 0
    axle_count: int = 1
    moves: int = field(default=0)
    #: state the lane's simulators share by key, e.g. the dyno's roller physics
    #: ("rollers", see ``simulators.devices.dyno_physics.plant_of``)
    shared: dict[str, Any] = field(default_factory=dict)

    def advance(self) -> None:
        """Drive on to the next axle (wrapping round to the first: next vehicle)."""
        self.axle_index = (self.axle_index + 1) % self.axle_count
        self.moves += 1

    def new_vehicle(self) -> None:
        """The next vehicle drives onto the lane, its first axle first."""
        self.axle_index = 0
        self.moves += 1
        self.vehicles += 1


@dataclass(slots=True)
class SimContext:
    """What a simulator is built from."""

    scenario: Scenario
    faults: FaultPlan
    position: LanePosition
    address: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


class StreamSim(Protocol):
    """A simulator reached through a byte stream (PTY or TCP)."""

    #: bytes the FaultPlan's NAK fault sends
    nak: bytes

    async def handle(self, link: Any) -> None:
        """Serve one connection until cancelled."""


@dataclass(frozen=True, slots=True)
class SimSpec:
    """How the launcher builds one protocol's simulator."""

    protocol: str
    kind: Literal["stream", "modbus"]
    summary: str
    #: stream: returns a StreamSim; modbus: returns a coroutine factory serving on (host, port)
    factory: Callable[[SimContext], Any]


ModbusServe = Callable[[str, int], Coroutine[Any, Any, None]]
