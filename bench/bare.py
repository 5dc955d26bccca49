"""The bare loop: the same workload without the gateway (``python -m bench.bare SPEC``).

What a hand-written poller does: one task per device, pymodbus async reads of the 16
registers on an absolute schedule, the values decoded with ``struct``, published as the
same telemetry JSON with aiomqtt at QoS 0. No validation, no availability tracking, no
metrics, no rate limit: the floor lanegw is measured against.

SPEC is a JSON object ``{"broker_port": P, "ports": [...], "period_s": S, "topic": T}``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiomqtt
from pymodbus.client import AsyncModbusTcpClient

_LAYOUT = struct.Struct(">QIHHHhhHhHHH")  # the 16 registers of bench/maps/bench_meter.yaml


def decode(registers: Sequence[int]) -> dict[str, Any]:
    """The bench meter's values from its 16 registers."""
    (stamp, counter, state, left, right, f_left, f_right, speed, temp, kpa, hum, flags) = (
        _LAYOUT.unpack(struct.pack(">16H", *registers))
    )
    return {
        "sample_time_us": stamp,
        "poll_counter": counter,
        "state": state,
        "load_left_kg": left,
        "load_right_kg": right,
        "force_left_dan": f_left,
        "force_right_dan": f_right,
        "speed_kmh": round(speed * 0.1, 1),
        "temperature_c": round(temp * 0.1, 1),
        "pressure_kpa": round(kpa * 0.01, 2),
        "humidity_pct": round(hum * 0.1, 1),
        "flags": flags,
    }


async def poll(mqtt: aiomqtt.Client, name: str, port: int, period: float, topic: str) -> None:
    """Poll one device forever on an absolute schedule."""
    modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    await modbus.connect()
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        reply = await modbus.read_input_registers(0, count=16, device_id=1)
        if not reply.isError():
            values = decode(reply.registers)
            now = datetime.now(UTC).isoformat()
            payload = json.dumps({"device": name, "ts": now, "values": values})
            await mqtt.publish(f"{topic}/{name}", payload.encode(), qos=0)
        due = max(due + period, loop.time())
        await asyncio.sleep(due - loop.time())


async def main(spec: dict[str, Any]) -> None:
    """Poll every device of ``spec`` until killed."""
    nodelay = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as lanegw: no Nagle delays
    mqtt = aiomqtt.Client(
        "127.0.0.1", spec["broker_port"], identifier="bench-bare", socket_options=[nodelay]
    )
    mqtt.pending_calls_threshold = 1000  # one publish per device may be pending: no warnings
    async with mqtt, asyncio.TaskGroup() as group:
        for index, port in enumerate(spec["ports"]):
            group.create_task(poll(mqtt, f"m{index:02d}", port, spec["period_s"], spec["topic"]))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
