"""Measurement 6: start-up, from spawning ``lanegw run`` to the first record on the broker.

The state directory holds one result record waiting in the outbox (produced before the
restart), so "first record" is a result record the daemon must deliver; the birth message
and the first telemetry reading are timed too.
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

import aiomqtt

from bench.outbox import fill
from bench.proc import loadavg
from bench.procs import BASE, Sims, daemon, modbus_device, write_config
from bench.subscriber import Station, running


async def _clear_retained(port: int) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-clear") as client:
        await client.publish(f"{BASE}/state", b"", qos=1, retain=True)


async def once(workdir: Path, broker_port: int, meter_port: int, index: int) -> dict[str, float]:
    """One cold start; times in seconds after the spawn."""
    case = workdir / f"startup-{index}"
    fill(case / "state", 1)
    bus, device = modbus_device(0, meter_port, 0.1)
    config = write_config(case / "lane.yaml", case / "state", broker_port, [bus], [device])
    await _clear_retained(broker_port)
    station = Station(broker_port, ack=False)
    async with running(station):
        child = daemon(config, case)
        await child.start()
        try:
            async with asyncio.timeout(30):
                while None in (
                    station.first_at,
                    station.first_state_at,
                    station.first_telemetry_at,
                ):
                    await asyncio.sleep(0.005)
        finally:
            await child.stop()
    assert station.first_at is not None
    assert station.first_state_at is not None
    assert station.first_telemetry_at is not None
    return {
        "to_birth_s": station.first_state_at - child.spawned_at,
        "to_first_telemetry_s": station.first_telemetry_at - child.spawned_at,
        "to_first_record_s": station.first_at - child.spawned_at,
    }


async def run(workdir: Path, broker_port: int, repeats: int, log: Any = print) -> dict[str, Any]:
    """``repeats`` cold starts; medians and the worst."""
    load = loadavg()
    runs = []
    async with Sims({"modbus": 1}, workdir) as sims:
        for index in range(repeats):
            runs.append(await once(workdir, broker_port, sims.endpoints["modbus"][0], index))
    result: dict[str, Any] = {"repeats": repeats, "loadavg": load}
    for key in runs[0]:
        values = [r[key] for r in runs]
        result[key] = round(statistics.median(values), 3)
        result[key[:-2] + "_max_s"] = round(max(values), 3)
    log(
        f"  start-up: birth {result['to_birth_s']} s, first telemetry"
        f" {result['to_first_telemetry_s']} s, first record {result['to_first_record_s']} s"
    )
    return result
