"""The benchmark's simulators, in a process of their own (``python -m bench.sims SPEC``).

Runs the project's simulators so that their CPU does not disturb the measuring process:

- ``modbus``: N bench meters (``bench/maps/bench_meter.yaml``) served by the project's
  ``ModbusSim`` (a real pymodbus server each, Modbus TCP on its own port) with
  ``BenchModel``, which stamps the wall-clock time of every read into ``sample_time_us``
  and counts reads in ``poll_counter``;
- ``brake``: a JXGT2 brake tester on ``socket://`` whose test streams 100 Hz force frames
  for ``brake_stream_s`` seconds;
- ``gas``: an NHA-503 gas analyser on a PTY paced like a 9600 8N1 line
  (``SimLink.byte_time_s``), with request/byte counters.

SPEC is a JSON object ``{"modbus": N, "brake_stream_s": S, "gas": true}`` (all optional).
The process prints one JSON line with the endpoints, then answers each ``stats`` line on
stdin with a JSON line of counters; it exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from simulators.base import LanePosition, SimContext
from simulators.devices.jxgt2 import Jxgt2Sim
from simulators.devices.modbus_sim import ModbusSim
from simulators.devices.nha503 import Nha503Sim
from simulators.endpoint import PtyEndpoint, SimLink, TcpEndpoint, byte_time
from simulators.faults import FaultPlan
from simulators.scenario import Axle, Scenario, Timing, Vehicle, WheelBrake
from simulators.wire.modbus_map import Value
from simulators.wire.modbus_map import load as load_sim_map

MAP_PATH: Final = Path(__file__).parent / "maps" / "bench_meter.yaml"
ILLEGAL_FUNCTION: Final = 0x01
#: the drag phase (2 s) and the hold (1 s) of a JXGT2 test frame the force rise
_JXGT2_FIXED_S: Final = 3.0


class BenchModel:
    """The bench meter: the time of each read, a read counter and steady values."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.reads = 0

    def values(self, now: float) -> dict[str, Value]:
        """Called once per read request: stamp it."""
        self.reads += 1
        wiggle = self.reads % 10
        return {
            "sample_time_us": time.time_ns() // 1000,
            "poll_counter": self.reads & 0xFFFFFFFF,
            "state": 1,
            "load_left_kg": 480 + wiggle,
            "load_right_kg": 470 + self.index,
            "force_left_dan": 400 + wiggle,
            "force_right_dan": 390 - wiggle,
            "speed_kmh": 2.6,
            "temperature_c": 21.5,
            "pressure_kpa": 101.3,
            "humidity_pct": 48.2,
            "flags": self.reads & 0xFF,
        }

    def command(self, name: str, now: float) -> int | None:
        """The bench meter has no commands."""
        return ILLEGAL_FUNCTION

    def write(self, name: str, value: Value, now: float) -> int | None:
        """Nor writable points."""
        return ILLEGAL_FUNCTION


def brake_scenario(stream_s: float) -> Scenario:
    """A one-axle vehicle whose brake test streams for about ``stream_s`` seconds."""
    rise = max(0.5, stream_s - _JXGT2_FIXED_S)
    axle = Axle(
        load_left_kg=480,
        load_right_kg=470,
        brake_left=WheelBrake(max_force_dan=420, drag_force_dan=6, rise_time_s=rise),
        brake_right=WheelBrake(max_force_dan=405, drag_force_dan=5, rise_time_s=rise),
    )
    return Scenario(name="bench", vehicle=Vehicle(axles=[axle]), timing=Timing(seed=1, noise=0.01))


@dataclass
class LineStats:
    """What crossed the paced gas analyser line."""

    requests: int = 0
    bytes_in: int = 0
    replies: int = 0
    bytes_out: int = 0


def counted(sim: Nha503Sim, stats: LineStats) -> Any:
    """The analyser's connection handler, counting requests and bytes."""

    async def handle(link: SimLink) -> None:
        read, send = link.read, link.send

        async def read_counted() -> bytes:
            data = await read()
            stats.requests += 1
            stats.bytes_in += len(data)
            return data

        async def send_counted(reply: bytes) -> None:
            stats.replies += 1
            stats.bytes_out += len(reply)
            await send(reply)

        link.read = read_counted  # type: ignore[method-assign]
        link.send = send_counted  # type: ignore[method-assign]
        await sim.handle(link)

    return handle


async def main(spec: dict[str, Any]) -> None:
    """Start what ``spec`` asks for, print the endpoints, serve stats until stdin closes."""
    scenario = brake_scenario(float(spec.get("brake_stream_s", 5.0)))
    position = LanePosition(axle_count=1)
    regmap = load_sim_map(str(MAP_PATH))
    endpoints: dict[str, Any] = {"modbus": []}
    models: list[BenchModel] = []
    line = LineStats()
    brake: Jxgt2Sim | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        for index in range(int(spec.get("modbus", 0))):
            ctx = SimContext(scenario, FaultPlan(), position)
            model = BenchModel(index)
            sim = ModbusSim(ctx, regmap, model)
            tasks.append(asyncio.create_task(sim.serve("127.0.0.1", 0)))
            await sim.ready.wait()
            models.append(model)
            endpoints["modbus"].append(sim.port)
        if "brake_stream_s" in spec:
            brake = Jxgt2Sim(SimContext(scenario, FaultPlan(), position))
            tcp = TcpEndpoint(brake.handle, FaultPlan(), nak=brake.nak)
            tasks.append(asyncio.create_task(tcp.serve()))
            await tcp.ready.wait()
            endpoints["brake"] = tcp.url
        if spec.get("gas"):
            gas = Nha503Sim(SimContext(scenario, FaultPlan(), position))
            pty = PtyEndpoint(
                counted(gas, line), FaultPlan(), nak=gas.nak, byte_time_s=byte_time(9600)
            )
            tasks.append(asyncio.create_task(pty.serve()))
            await pty.ready.wait()
            endpoints["gas"] = pty.url
        print(json.dumps(endpoints), flush=True)
        while await asyncio.to_thread(sys.stdin.readline):
            stats = {
                "modbus_reads": [m.reads for m in models],
                "brake_frames_last_stream": len(brake.last_stream) if brake else 0,
                "brake_streaming": brake.streaming if brake else False,
                "gas": asdict(line),
            }
            print(json.dumps(stats), flush=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {"modbus": 1}))
