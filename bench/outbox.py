"""Measurement 5: a backlog of result records built while the broker was down, then drained.

The backlog is written with the gateway's own ``Outbox`` and ``Sealer`` (signed, chained
records of an S1 item, ~1.3 kB each, marked as produced offline) into a state directory
the daemon then starts from. Only the *build* runs with ``synchronous=OFF`` (100,000
fsyncs would take minutes and measure the disk, not the gateway); the drain runs with the
daemon's own settings. The drain is timed from the first record at the station to the
moment the outbox is empty (read from the outbox file by a separate SQLite reader).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uuid6

from bench import lag
from bench.proc import CpuWindow, RssSampler, loadavg, memory_mb
from bench.procs import LANE, STATION, Child, Sims, child_env, daemon, modbus_device, write_config
from bench.subscriber import Station, running
from gateway.integrity import Sealer, load_or_create_key
from gateway.outbox_store import OutboxStore
from gateway.records import DeviceRef, Evidence, Limit, Measurement, ResultRecord, Verdict

OUTBOX_FILE = "outbox.sqlite3"
MAX_BYTES = 1024 * 1024 * 1024
#: seconds the loop-lag probe runs on the daemon once the backlog is drained (a baseline;
#: at least 1 s, at most as long as the drain took)
IDLE_PROBE_S = 5.0


def _record(seq: int, session: str) -> ResultRecord:
    started = datetime(2026, 1, 5, 8, 0, tzinfo=UTC) + timedelta(seconds=seq * 40)
    return ResultRecord(
        record_id=str(uuid6.uuid7()),
        seq=seq,
        session_id=session,
        gateway_id=f"lanegw-{STATION}-{LANE}",
        station=STATION,
        lane=LANE,
        inspection_id=f"4401001202601{seq:07d}",
        item_code="S1",
        item_name="speedometer",
        devices=[
            DeviceRef(
                id="speedometer",
                device_class="speedometer_tester",
                protocol="tlch10",
                vendor="Nanhua",
                model="TLCH-10",
                serial="SN-2291",
                certificate="JD-2025-0117",
                certificate_expires="2026-06-30",
            )
        ],
        measurements=[
            Measurement(name="indicated_speed_kmh", value=40.0, unit="km/h"),
            Measurement(
                name="actual_speed_kmh",
                value=37.6,
                unit="km/h",
                limit=Limit(
                    low=32.8, high=40.0, unit="km/h", source="GB7258-2017 4.10", confidence="std"
                ),
                verdict=Verdict.PASS,
            ),
        ],
        verdict=Verdict.PASS,
        limit_set="GB7258-2017",
        evidence=[Evidence(kind="raw_frames", sha256="ab" * 32, samples=212)],
        started_at=started,
        finished_at=started + timedelta(seconds=35),
    )


def fill(state_dir: Path, count: int) -> int:
    """Write ``count`` sealed records into the outbox of ``state_dir``; returns its bytes."""
    state_dir.mkdir(parents=True, exist_ok=True)
    sealer = Sealer(load_or_create_key(state_dir / "gateway.key"))
    outbox = OutboxStore(state_dir / OUTBOX_FILE, MAX_BYTES)
    outbox._db.execute("PRAGMA synchronous=OFF")  # the build only: see the module doc
    session = str(uuid6.uuid7())
    try:
        for _ in range(count):
            outbox.add(lambda seq: _record(seq, session), offline=True, seal=sealer.seal)
        return outbox.stats().bytes
    finally:
        outbox.close()


def outbox_depth(state_dir: Path) -> int:
    """Records still in the outbox (read by a separate connection)."""
    with sqlite3.connect(f"file:{state_dir / OUTBOX_FILE}?mode=ro", uri=True) as db:
        (depth,) = db.execute("SELECT COUNT(*) FROM records").fetchone()
    return int(depth)


def _empty(state_dir: Path) -> bool:
    with sqlite3.connect(f"file:{state_dir / OUTBOX_FILE}?mode=ro", uri=True) as db:
        return db.execute("SELECT seq FROM records LIMIT 1").fetchone() is None


async def drain(
    workdir: Path, broker_port: int, template: Path, count: int, mode: str, meter_port: int
) -> dict[str, Any]:
    """Start the daemon on a copy of ``template`` and time the drain of its backlog."""
    case = workdir / f"outbox-{count}-{mode}"
    shutil.rmtree(case, ignore_errors=True)
    shutil.copytree(template, case / "state")
    bus, device = modbus_device(0, meter_port, 1.0)
    config = write_config(
        case / "lane.yaml", case / "state", broker_port, [bus], [device], delivery=mode
    )
    station = Station(broker_port, ack=mode == "server_ack")
    async with running(station):
        child = daemon(config, case)
        load = loadavg()
        await child.start()
        probe = _lag_probe(case)
        await probe.start()
        sampler = RssSampler(child.pid, 0.1)
        sampling = asyncio.create_task(sampler.run())
        cpu = CpuWindow(child.pid)
        cpu.start()
        try:
            async with asyncio.timeout(count / 100 + 120):
                while not _empty(case / "state"):
                    await asyncio.sleep(0.1)
            done = time.time()
            cpu.stop()
            _, hwm = memory_mb(child.pid)
            async with asyncio.timeout(30):  # a short drain may end before the first probe
                while not lag.read(case / "lag.txt")[0]:
                    await asyncio.sleep(0.02)
            await probe.stop()
            # the same daemon idle, as a baseline of what the machine's load alone costs
            idle = _lag_probe(case, "lag-idle.txt")
            await idle.start()
            await asyncio.sleep(min(IDLE_PROBE_S, max(1.0, done - (station.first_at or done))))
            await idle.stop()
        finally:
            sampling.cancel()
            await probe.stop()
            await child.stop()
    assert station.first_at is not None
    seconds = done - station.first_at
    left = outbox_depth(case / "state")
    return {
        "records": count,
        "delivery": mode,
        "drain_s": round(seconds, 2),
        "records_per_s": round(count / seconds, 1),
        "from_start_s": round(done - child.spawned_at, 2),
        "received_unique": len(station.received),
        "duplicates": station.duplicates,
        "left_in_outbox": left,
        "all_acked": left == 0 and len(station.received) == count,
        "peak_rss_mb": round(sampler.peak_mb, 1),
        "vm_hwm_mb": round(hwm, 1),
        "cpu_ms_per_record": round(1000 * cpu.cpu_s / count, 3),
        **lag.summary(*lag.read(case / "lag.txt")),
        **{f"idle_{k}": v for k, v in lag.summary(*lag.read(case / "lag-idle.txt")).items()},
        "loadavg": load,
    }


def _lag_probe(case: Path, out: str = "lag.txt") -> Child:
    """The loop-lag probe on the daemon's control socket (bench/lag.py)."""
    socket_file = case / "state" / "control.sock"
    argv = [sys.executable, "-m", "bench.lag", str(socket_file), str(case / out)]
    return Child(argv, case / "lag.log", child_env(case))


async def run(
    workdir: Path,
    broker_port: int,
    sizes: list[int],
    modes: list[str],
    log: Any = print,
) -> list[dict[str, Any]]:
    """Build each backlog once, drain a copy of it in each delivery mode."""
    results = []
    async with Sims({"modbus": 1}, workdir) as sims:
        for size in sizes:
            template = workdir / f"outbox-template-{size}"
            shutil.rmtree(template, ignore_errors=True)
            started = time.perf_counter()
            size_bytes = await asyncio.to_thread(fill, template, size)
            log(
                f"  outbox: built {size} records ({size_bytes / 1e6:.1f} MB)"
                f" in {time.perf_counter() - started:.1f} s"
            )
            for mode in modes:
                result = await drain(
                    workdir, broker_port, template, size, mode, sims.endpoints["modbus"][0]
                )
                result["backlog_mb"] = round(size_bytes / 1e6, 1)
                log(
                    f"  outbox {size:6} {mode:10}: {result['records_per_s']} records/s,"
                    f" peak RSS {result['peak_rss_mb']} MB, loop lag p50/p99/max"
                    f" {result.get('lag_p50_ms')}/{result.get('lag_p99_ms')}"
                    f"/{result.get('lag_max_ms')} ms, all acked: {result['all_acked']}"
                )
                results.append(result)
            shutil.rmtree(template, ignore_errors=True)
    return results
