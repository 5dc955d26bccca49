"""The brake stream inside the gateway: ``python -m bench.brake_worker CONFIG OUT STREAM_S BASE_S``.

Builds the daemon's own ``Gateway`` from CONFIG and runs it (every device polled by its
supervisor, telemetry to the broker), then drives the brake tester the way an inspection
item does: it takes the device from its supervisor (``hold``), lowers the lift and runs
``run_brake_test`` with a sample callback that times every frame. The process's CPU is
read over the stream and over a baseline of the other devices alone, BASE_S seconds
before the stream and BASE_S seconds after it (their mean: the other devices' cost
drifts). Writes the figures as JSON to OUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.proc import cpu_seconds, memory_mb
from drivers.devices.jxgt2_brake import BrakeSample, Jxgt2BrakeTester
from drivers.errors import DriverError
from gateway.app import Gateway
from gateway.config import load_config
from gateway.logs import configure_logging
from gateway.records import Availability


async def _wait_ready(gateway: Gateway, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not (
            gateway.link.connected
            and all(s.availability is Availability.ONLINE for s in gateway.supervisors.values())
        ):
            await asyncio.sleep(0.05)


async def _cpu_per_s(pid: int, seconds: float) -> float:
    """CPU seconds per second the process uses over the next ``seconds``."""
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)


async def measure(config_path: Path, stream_s: float, baseline_s: float) -> dict[str, Any]:
    """Run the gateway, measure a baseline, then one brake stream."""
    gateway = Gateway(load_config(config_path))
    pid = os.getpid()
    task = asyncio.create_task(gateway.run())
    try:
        await _wait_ready(gateway)
        await asyncio.sleep(1.0)
        baseline_before = await _cpu_per_s(pid, baseline_s)
        arrivals: list[float] = []

        def on_sample(_sample: BrakeSample) -> None:
            arrivals.append(time.perf_counter())

        error = None
        async with gateway.supervisors["brake"].hold() as device:
            assert isinstance(device, Jxgt2BrakeTester)
            await device.lift_down()
            wall_start = time.time()
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            try:
                result = await device.run_brake_test(on_sample)
                frames = len(result.samples)
            except DriverError as exc:
                error, frames = f"{type(exc).__name__}: {exc}", len(arrivals)
            t1, cpu1 = time.perf_counter(), cpu_seconds(pid)
            wall_end = time.time()
            await device.lift_up()
        baseline_after = await _cpu_per_s(pid, baseline_s)
        baseline_cpu_per_s = (baseline_before + baseline_after) / 2
        _, peak_rss = memory_mb(pid)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(arrivals)]
    return {
        "frames_received": frames,
        "frames_timed": len(arrivals),
        "error": error,
        "stream_s": round(t1 - t0, 3),
        "wall_start": wall_start,
        "wall_end": wall_end,
        "gap_max_ms": round(max(gaps, default=0.0), 2),
        "late_frames": sum(1 for g in gaps if g > 20.0),  # > 2 sample periods apart
        "cpu_s": round(cpu1 - cpu0, 3),
        "baseline_cpu_pct": round(100 * baseline_cpu_per_s, 1),
        "baseline_cpu_pct_before_after": [
            round(100 * baseline_before, 1),
            round(100 * baseline_after, 1),
        ],
        "cpu_ms_per_frame": round(1000 * (cpu1 - cpu0) / frames, 3) if frames else None,
        "cpu_ms_per_frame_net": round(
            1000 * (cpu1 - cpu0 - baseline_cpu_per_s * (t1 - t0)) / frames, 3
        )
        if frames
        else None,
        "peak_rss_mb": round(peak_rss, 1),
    }


def main() -> None:
    """Entry point: CONFIG OUT STREAM_S BASELINE_S."""
    config, out, stream_s, baseline_s = sys.argv[1:5]
    configure_logging("json", "INFO")
    result = asyncio.run(measure(Path(config), float(stream_s), float(baseline_s)))
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
