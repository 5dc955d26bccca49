"""Measurement 4: serial line efficiency, the gas analyser polled flat out on a paced 9600 8N1
line (a PTY whose simulator delivers each byte only when the line would have)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.proc import CpuWindow, loadavg
from bench.procs import Sims, daemon, write_config
from simulators.endpoint import byte_time

BAUD = 9600
#: poll period of the analyser: shorter than one exchange, so the supervisor polls flat out
POLL_PERIOD_S = 0.001


async def run(
    workdir: Path, broker_port: int, warmup_s: float, window_s: float, log: Any = print
) -> dict[str, Any]:
    """Reads per second achieved vs the line's maximum for the same request and reply."""
    case = workdir / "serial"
    case.mkdir(parents=True, exist_ok=True)
    async with Sims({"gas": True}, workdir) as sims:
        bus = {"id": "bus-gas", "kind": "serial", "url": sims.endpoints["gas"], "baudrate": BAUD}
        device = {
            "id": "analyser",
            "class": "gas_analyser",
            "protocol": "nha503",
            "bus": "bus-gas",
            "poll_period_s": POLL_PERIOD_S,
        }
        config = write_config(case / "lane.yaml", case / "state", broker_port, [bus], [device])
        child = daemon(config, case)
        await child.start()
        try:
            async with asyncio.timeout(30):
                while (await sims.stats())["gas"]["replies"] < 3:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(warmup_s)
            load = loadavg()
            before = (await sims.stats())["gas"]
            cpu = CpuWindow(child.pid)
            cpu.start()
            start = time.perf_counter()
            await asyncio.sleep(window_s)
            seconds = time.perf_counter() - start
            cpu.stop()
            after = (await sims.stats())["gas"]
        finally:
            await child.stop()
    reads = after["replies"] - before["replies"]
    line_bytes = (after["bytes_in"] - before["bytes_in"]) + (
        after["bytes_out"] - before["bytes_out"]
    )
    per_read = line_bytes / reads if reads else 0.0
    max_per_s = 1.0 / (per_read * byte_time(BAUD)) if per_read else 0.0
    achieved = reads / seconds
    result = {
        "baud": BAUD,
        "bytes_per_read": round(per_read, 2),
        "reads_per_s": round(achieved, 2),
        "max_reads_per_s": round(max_per_s, 2),
        "efficiency_pct": round(100 * achieved / max_per_s, 1) if max_per_s else 0.0,
        "cpu_ms_per_read": round(1000 * cpu.cpu_s / reads, 3) if reads else None,
        "window_s": round(seconds, 3),
        "loadavg": load,
    }
    log(
        f"  serial 9600 8N1: {result['reads_per_s']} reads/s of {result['max_reads_per_s']}"
        f" ({result['efficiency_pct']} %), {result['bytes_per_read']} bytes per read"
    )
    return result
