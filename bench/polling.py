"""Measurements 1 and 2: N Modbus TCP devices polled and published as telemetry, by lanegw
and by the bare loop, one after the other against the same simulators and broker."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.proc import CpuWindow, loadavg, memory_mb
from bench.procs import BASE, Child, Sims, child_env, daemon, modbus_device, write_config
from bench.subscriber import TelemetryCollector, percentile, running


async def run_case(
    impl: str,
    count: int,
    period_s: float,
    sims: Sims,
    broker_port: int,
    collector: TelemetryCollector,
    workdir: Path,
    warmup_s: float,
    window_s: float,
) -> dict[str, Any]:
    """One implementation polling ``count`` devices every ``period_s``: the figures."""
    ports: list[int] = sims.endpoints["modbus"][:count]
    case = workdir / f"{impl}-{count}x{round(period_s * 1000)}ms"
    case.mkdir(parents=True, exist_ok=True)
    if impl == "lanegw":
        entries = [modbus_device(i, port, period_s) for i, port in enumerate(ports)]
        config = write_config(
            case / "lane.yaml",
            case / "state",
            broker_port,
            [bus for bus, _ in entries],
            [device for _, device in entries],
        )
        child = daemon(config, case)
    else:
        spec = {
            "broker_port": broker_port,
            "ports": ports,
            "period_s": period_s,
            "topic": f"{BASE}/telemetry",
        }
        argv = [sys.executable, "-m", "bench.bare", json.dumps(spec)]
        child = Child(argv, case / "bare.log", child_env(case))
    collector.clear()
    await child.start()
    try:
        await collector.wait_devices(count)
        await asyncio.sleep(warmup_s)
        load = loadavg()
        reads_before = (await sims.stats())["modbus_reads"][:count]
        cpu = CpuWindow(child.pid)
        cpu.start()
        start = time.time()
        await asyncio.sleep(window_s)
        end = time.time()
        cpu.stop()
        reads_after = (await sims.stats())["modbus_reads"][:count]
        _, peak_rss = memory_mb(child.pid)
    finally:
        await child.stop()
    arrivals = collector.arrivals(start, end)
    latencies = [(a.arrived - a.sample_time) * 1000 for a in arrivals]
    polls = sum(after - before for before, after in zip(reads_before, reads_after, strict=True))
    configured = count * (end - start) / period_s
    delivered = len(arrivals)
    return {
        "impl": impl,
        "devices": count,
        "period_ms": round(period_s * 1000),
        "window_s": round(end - start, 3),
        "configured_per_s": round(configured / (end - start), 1),
        "delivered_per_s": round(delivered / (end - start), 1),
        "delivered_pct": round(100 * delivered / configured, 2),
        "polls": polls,
        "missed_polls": max(0, round(configured) - polls),
        "lost_after_poll": max(0, polls - delivered),
        "latency_p50_ms": round(percentile(latencies, 50), 2),
        "latency_p99_ms": round(percentile(latencies, 99), 2),
        "latency_max_ms": round(max(latencies, default=0.0), 2),
        "cpu_s": round(cpu.cpu_s, 3),
        "cpu_pct": round(100 * cpu.cpu_s / (end - start), 1),
        "cpu_ms_per_1000": round(1e6 * cpu.cpu_s / delivered, 1) if delivered else None,
        "peak_rss_mb": round(peak_rss, 1),
        "loadavg": load,
    }


async def run(
    workdir: Path,
    broker_port: int,
    counts: list[int],
    periods: list[float],
    warmup_s: float,
    window_s: float,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Every (count, period) case, lanegw then bare."""
    results = []
    async with Sims({"modbus": max(counts)}, workdir) as sims:
        collector = TelemetryCollector(broker_port)
        async with running(collector):
            for period in periods:
                for count in counts:
                    for impl in ("lanegw", "bare"):
                        result = await run_case(
                            impl,
                            count,
                            period,
                            sims,
                            broker_port,
                            collector,
                            workdir,
                            warmup_s,
                            window_s,
                        )
                        log(
                            f"  polling {impl:6} {count:2} x {result['period_ms']:3} ms:"
                            f" {result['delivered_pct']:6.2f} % delivered,"
                            f" p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']}"
                            f" ms, {result['cpu_ms_per_1000']} ms CPU/1000,"
                            f" {result['peak_rss_mb']} MB"
                        )
                        results.append(result)
    return results
