"""Start the simulators of a whole lane (or any subset) and report their endpoints.

Used by ``python -m simulators``, by ``lanegw demo`` and by the tests: each simulated
device gets its own endpoint (a TCP port like a serial device server, or a PTY), all
share one scenario and one ``LanePosition``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from simulators.base import LanePosition, SimContext
from simulators.endpoint import Endpoint, PtyEndpoint, TcpEndpoint
from simulators.faults import FaultPlan
from simulators.multidrop import MultiDrop
from simulators.registry import sim_specs
from simulators.scenario import Scenario

Transport = Literal["tcp", "pty"]

#: the default simulated lane: one device of every class
DEFAULT_LANE: tuple[tuple[str, str], ...] = (
    ("brake", "jxgt2"),
    ("weigher", "xk3190"),
    ("headlamp", "mqd6a"),
    ("analyser", "nha503"),
    ("opacimeter", "flb100"),
    ("speedometer", "tlch10"),
    ("dyno", "xincheng"),
    ("flowmeter", "flv1000"),
    ("obd", "elm327"),
)


@dataclass(slots=True)
class SimDevice:
    """One simulated device to start."""

    device_id: str
    protocol: str
    options: dict[str, Any] = field(default_factory=dict)
    address: int | None = None
    #: devices naming the same line share one endpoint (an RS-485 multi-drop bus)
    line: str | None = None


@dataclass(slots=True)
class RunningSim:
    """A started simulator: where to reach it and how to steer it."""

    device_id: str
    protocol: str
    url: str
    faults: FaultPlan
    sim: Any
    endpoint: Endpoint | None = None

    def describe(self) -> dict[str, Any]:
        """The JSON line printed for tools."""
        return {"device": self.device_id, "protocol": self.protocol, "url": self.url}


class SimLane:
    """The simulators of one lane, started inside a caller's TaskGroup."""

    def __init__(
        self,
        scenario: Scenario,
        devices: list[SimDevice],
        transport: Transport = "tcp",
        link_dir: Path | None = None,
    ) -> None:
        self.scenario = scenario
        self.devices = devices
        self.transport = transport
        self.link_dir = link_dir
        self.position = LanePosition(axle_count=len(scenario.vehicle.axles))
        self.running: dict[str, RunningSim] = {}

    def new_vehicle(self) -> None:
        """The next vehicle drives in, first axle first (call it with each order)."""
        self.position.new_vehicle()

    async def start(self, group: asyncio.TaskGroup) -> dict[str, RunningSim]:
        """Start every simulator as a task of ``group``; returns when all listen."""
        specs = sim_specs()
        shared: dict[str, list[tuple[SimDevice, Any, FaultPlan]]] = {}
        for device in self.devices:
            spec = specs.get(device.protocol)
            if spec is None:
                raise KeyError(f"no simulator for protocol {device.protocol!r}")
            faults = FaultPlan(seed=self.scenario.timing.seed)
            ctx = SimContext(self.scenario, faults, self.position, device.address, device.options)
            sim = spec.factory(ctx)
            if spec.kind == "modbus":
                running = await self._start_modbus(group, device, sim, faults)
            elif device.line is not None:
                shared.setdefault(device.line, []).append((device, sim, faults))
                continue
            else:
                running = await self._start_stream(group, device, sim, faults)
            self.running[device.device_id] = running
        for line, members in shared.items():
            await self._start_line(group, line, members)
        return self.running

    async def _start_line(
        self, group: asyncio.TaskGroup, line: str, members: list[tuple[SimDevice, Any, FaultPlan]]
    ) -> None:
        handler = MultiDrop([(sim, faults) for _, sim, faults in members])
        endpoint = await self._endpoint(group, line, handler, FaultPlan())
        for device, sim, faults in members:
            self.running[device.device_id] = RunningSim(
                device.device_id, device.protocol, endpoint.url, faults, sim, endpoint
            )

    async def _start_stream(
        self, group: asyncio.TaskGroup, device: SimDevice, sim: Any, faults: FaultPlan
    ) -> RunningSim:
        endpoint = await self._endpoint(group, device.device_id, sim, faults)
        return RunningSim(device.device_id, device.protocol, endpoint.url, faults, sim, endpoint)

    async def _endpoint(
        self, group: asyncio.TaskGroup, name: str, sim: Any, faults: FaultPlan
    ) -> TcpEndpoint | PtyEndpoint:
        endpoint: TcpEndpoint | PtyEndpoint
        if self.transport == "pty":
            link = self.link_dir / f"tty-{name}" if self.link_dir else None
            endpoint = PtyEndpoint(sim.handle, faults, symlink=link, nak=sim.nak)
        else:
            endpoint = TcpEndpoint(sim.handle, faults, nak=sim.nak)
        group.create_task(endpoint.serve(), name=f"sim:{name}")
        await endpoint.ready.wait()
        return endpoint

    async def _start_modbus(
        self, group: asyncio.TaskGroup, device: SimDevice, sim: Any, faults: FaultPlan
    ) -> RunningSim:
        group.create_task(sim.serve("127.0.0.1", 0), name=f"sim:{device.device_id}")
        await sim.ready.wait()
        return RunningSim(device.device_id, device.protocol, f"127.0.0.1:{sim.port}", faults, sim)
