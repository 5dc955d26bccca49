"""Measurement 3: a 100 Hz brake force stream over ``socket://`` while other devices are polled."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bench.proc import loadavg
from bench.procs import Child, Sims, child_env, modbus_device, write_config
from bench.subscriber import TelemetryCollector, percentile, running

SAMPLE_HZ = 100.0


async def run(
    workdir: Path,
    broker_port: int,
    stream_s: float,
    others: int,
    period_s: float,
    baseline_s: float,
    log: Any = print,
) -> dict[str, Any]:
    """One brake test streaming about ``stream_s`` seconds; ``others`` bench meters polled."""
    case = workdir / "brake"
    case.mkdir(parents=True, exist_ok=True)
    async with Sims({"modbus": others, "brake_stream_s": stream_s}, workdir) as sims:
        entries = [modbus_device(i, p, period_s) for i, p in enumerate(sims.endpoints["modbus"])]
        buses = [bus for bus, _ in entries]
        devices = [device for _, device in entries]
        buses.append({"id": "bus-brake", "kind": "serial", "url": sims.endpoints["brake"]})
        devices.append(
            {
                "id": "brake",
                "class": "brake_tester",
                "protocol": "jxgt2",
                "bus": "bus-brake",
                "poll_period_s": 1.0,
                "options": {"max_test_s": stream_s + 30},
            }
        )
        config = write_config(case / "lane.yaml", case / "state", broker_port, buses, devices)
        out = case / "result.json"
        argv = [sys.executable, "-m", "bench.brake_worker", str(config), str(out)]
        argv += [str(stream_s), str(baseline_s)]
        worker = Child(argv, case / "worker.log", child_env(case))
        collector = TelemetryCollector(broker_port)
        async with running(collector):
            load = loadavg()
            await worker.start()
            assert worker.proc is not None
            try:
                async with asyncio.timeout(stream_s + 2 * baseline_s + 90):
                    code = await worker.proc.wait()
            finally:
                await worker.stop()
        if code != 0 or not out.exists():
            raise RuntimeError(f"brake worker failed ({code}): see {worker.log}")
        result: dict[str, Any] = json.loads(out.read_text())
        sent = (await sims.stats())["brake_frames_last_stream"]
    arrivals = collector.arrivals(result["wall_start"], result["wall_end"])
    seconds = result["wall_end"] - result["wall_start"]
    configured = others * seconds / period_s
    latencies = [(a.arrived - a.sample_time) * 1000 for a in arrivals]
    result.update(
        {
            "sample_hz": SAMPLE_HZ,
            "frames_sent": sent,
            "frames_missing": sent - result["frames_received"],
            "others": others,
            "others_period_ms": round(period_s * 1000),
            "others_delivered_pct": round(100 * len(arrivals) / configured, 2) if configured else 0,
            "others_latency_p99_ms": round(percentile(latencies, 99), 2),
            "loadavg": load,
        }
    )
    log(
        f"  brake stream {result['stream_s']} s: {result['frames_received']}/{sent} frames,"
        f" {result['late_frames']} late, max gap {result['gap_max_ms']} ms,"
        f" {result['cpu_ms_per_frame_net']} ms CPU/frame (net)"
    )
    return result
