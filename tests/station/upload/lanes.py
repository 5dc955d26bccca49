"""Whole simulated lanes for the upload tests: brake rollers, axle weigher, headlamp
tester, gas analyser, opacimeter and speedometer tester (the demo's lane), each on its
own TCP endpoint, and the gateway daemon as a subprocess delivering on the station's
acknowledgement."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.registry import driver_specs
from simulators.lane import DEFAULT_LANE, SimDevice, SimLane
from tests.harness import Daemon, order, scenario_at_speed, send_command, serving, write_config

SCENARIO = Path(__file__).parents[3] / "simulators" / "scenarios" / "passing-car.yaml"
SCALE = 0.03  # the simulated driver of the two-speed idle keeps step on a loaded machine
ACK_TIMEOUT_S = 2.0
PETROL_ITEMS = ("B1", "B2", "B0", "H1", "H4", "S1", "TSI")
DIESEL_ITEMS = ("B1", "B2", "B0", "FA")
PETROL = {"fuel": "petrol", "emission_method": "two_speed_idle", "emission_limit_set": "a"}
DIESEL = {"fuel": "diesel", "emission_method": "free_acceleration", "emission_limit_set": "a"}
SIM_OPTIONS: dict[str, dict[str, Any]] = {"nha503": {"driver_script": {}}}
DRIVER_OPTIONS: dict[str, dict[str, Any]] = {
    "nha503": {"action_poll_s": 0.02},
    "tlch10": {"poll_interval_s": 0.02},
}


@dataclass
class FullLane:
    """A lane's simulators and gateway."""

    name: str
    daemon: Daemon
    outbox: Path
    mqtt_port: int
    sims: SimLane

    def outbox_depth(self) -> int:
        with contextlib.closing(sqlite3.connect(self.outbox)) as db:
            return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    async def inspect(self, number: int, items: tuple[str, ...], **fields: Any) -> str:
        """Queue an order (retried while the lane is busy); its inspection id."""
        body = {**order(number, items), **fields}
        for _ in range(300):
            answer = await send_command(self.mqtt_port, "inspect", body, lane=self.name)
            if answer["ok"]:
                return str(body["inspection_id"])
            assert "busy" in answer["error"], answer
            await asyncio.sleep(0.1)
        raise AssertionError(f"lane {self.name} refused order {number}")

    async def command(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await send_command(self.mqtt_port, name, args, lane=self.name)


def _devices(sims: SimLane) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    buses, devices = [], []
    for running in sims.running.values():
        bus = f"bus-{running.device_id}"
        buses.append({"id": bus, "url": running.url, "response_timeout_s": 1.0})
        devices.append(
            {
                "id": running.device_id,
                "class": driver_specs()[running.protocol].device_class.value,
                "protocol": running.protocol,
                "bus": bus,
                "poll_period_s": 0.5,
                "options": DRIVER_OPTIONS.get(running.protocol, {}),
            }
        )
    return buses, devices


@contextlib.asynccontextmanager
async def full_lanes(
    workdir: Path, names: tuple[str, ...], mqtt_port: int
) -> AsyncIterator[list[FullLane]]:
    """Whole lanes whose gateways keep records until the station acknowledges them, all
    started at once. No axle weigher: the brake tester weighs each wheel (the PSB record
    wants wheel loads)."""
    async with contextlib.AsyncExitStack() as stack:
        lanes: list[FullLane] = []
        for name in names:
            lane_dir = workdir / name.lower()
            lane_dir.mkdir()
            devices = [SimDevice(d, p, SIM_OPTIONS.get(p, {})) for d, p in DEFAULT_LANE
                       if d != "weigher"]  # fmt: skip
            sims = await stack.enter_async_context(
                serving(SimLane(scenario_at_speed(SCENARIO, SCALE), devices))
            )
            buses, configured = _devices(sims)
            extra: dict[str, Any] = {"lane": name, "procedure_time_scale": SCALE}
            config = write_config(
                lane_dir / "lane.yaml", lane_dir / "state", mqtt_port, buses, configured, extra,
                delivery="server_ack", ack_timeout_s=ACK_TIMEOUT_S,
            )  # fmt: skip
            daemon = Daemon(config, lane_dir / "daemon.log")
            await daemon.start()
            stack.push_async_callback(daemon.stop)
            lanes.append(FullLane(name, daemon, lane_dir / "state" / "outbox.sqlite3",
                                  mqtt_port, sims))  # fmt: skip
        async with asyncio.timeout(60):
            for lane in lanes:
                while not lane.daemon.log_events("mqtt_connected"):
                    proc = lane.daemon.proc
                    assert proc and proc.returncode is None, lane.daemon.log.read_text()
                    await asyncio.sleep(0.05)
        yield lanes
