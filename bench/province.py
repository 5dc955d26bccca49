"""``python -m bench.province``: simulated stations through the regional tier, counted.

Usage: python -m bench.province [--stations 50] [--lanes 4] [--per-day 100] [--day-s 600]
       [--receivers 2] [--station-receivers 0] [--smoke] [--json FILE] [--keep]

S stations x L lanes, each lane inspecting ``--per-day`` vehicles in a working day of
``--hours`` compressed into ``--day-s`` seconds, against real processes on this machine
(loopback only): one mosquitto per station bridged to a regional mosquitto
(bench/bridge.py), the regional receivers (``lanegw station run``, ``station: "+"``,
shared subscription, acknowledging) into one partitioned PostgreSQL, and optionally
station receivers that store without acknowledging. The lanes are signing fake gateways
in this process (bench/province_lanes.py) delivering like ``server_ack``. Prints
throughput, the latency from a record's publish to its ack back at its lane, CPU and
memory per component, the database's size per inspection, and the count check: every
record stored once, no gap. Exit 1 when the check fails. Figures: docs/scale.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench.proc import loadavg, machine
from bench.procs import REPO
from bench.province_lanes import INSPECTION_S, FakeLane, day_schedule
from bench.province_rig import Meters, Rig
from bench.report import run_in_workdir, table, write_json
from bench.station import _git_commit
from bench.station_e2e import query, wait_keys
from bench.subscriber import percentile
from station.store import RecordStore

#: a province's inspections a year (Zhejiang, issue 17), for the storage estimate
PROVINCE_INSPECTIONS: int = 8_600_000


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m bench.province", description=__doc__.splitlines()[0]
    )
    p.add_argument("--stations", type=int, default=50)
    p.add_argument("--lanes", type=int, default=4, help="lanes per station")
    p.add_argument("--per-day", type=int, default=100, help="inspections per lane and day")
    p.add_argument("--hours", type=float, default=10.0, help="a working day's hours")
    p.add_argument("--day-s", type=float, default=600.0, help="the day compressed into seconds")
    p.add_argument("--receivers", type=int, default=2, help="regional receivers")
    p.add_argument("--station-receivers", type=int, default=0,
                   help="stations (the first N) that also run a store-only receiver")  # fmt: skip
    p.add_argument("--ack-timeout", type=float, default=30.0, help="the lanes' ack_timeout_s")
    p.add_argument("--drain-s", type=float, default=300.0, help="wait after the day for acks")
    p.add_argument(
        "--outage-at",
        type=float,
        default=None,
        help="stop the regional broker this many seconds into the day (a WAN cut)",
    )
    p.add_argument("--outage-s", type=float, default=60.0, help="for this long")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--smoke", action="store_true", help="2 x 2 lanes x 3 in 6 s (the test)")
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "bench-province.json")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args(argv)
    if args.smoke:
        args.stations, args.lanes, args.per_day, args.day_s = 2, 2, 3, 6.0
        args.station_receivers, args.drain_s, args.ack_timeout = 1, 60.0, 3.0
        args.outage_at, args.outage_s = 2.0, 2.0
    return args


def _log(text: str) -> None:
    print(text, flush=True)


def make_lanes(args: argparse.Namespace, stations: list[str]) -> list[FakeLane]:
    """Every lane with its day's schedule."""
    rng = random.Random(args.seed)
    slot = args.day_s / args.per_day
    compressed = INSPECTION_S * args.day_s / (args.hours * 3600)
    inspection_s = min(compressed, 0.9 * slot)
    return [
        FakeLane(code, f"L{n + 1}", day_schedule(args.per_day, args.day_s, inspection_s, rng),
                 inspection_s, args.ack_timeout, random.Random(rng.random()))
        for code in stations
        for n in range(args.lanes)
    ]  # fmt: skip


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start the rig, play the day, count."""
    stations = [f"33{n + 1:05d}" for n in range(args.stations)]
    started = time.perf_counter()
    results: dict[str, Any] = {"meta": {
        **machine(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(), "python": sys.version.split()[0],
        "settings": {k: str(v) for k, v in vars(args).items()}, "errors": {},
    }}  # fmt: skip
    _log(f"== starting {len(stations)} station brokers, the region, {args.receivers} receivers")
    rig = await Rig.start(
        workdir, stations, args.receivers, args.station_receivers, args.ack_timeout
    )
    try:
        results["meta"]["postgres"] = rig.postgres.server_version()
        lanes = make_lanes(args, stations)
        results |= await _day(args, rig, lanes)
        results["count"] = await count(rig, lanes)
        results["storage"] = await storage(rig.url, results["count"]["inspections"])
        results["queries"] = await regulator_queries(rig.url, stations[0])
    finally:
        await rig.stop()
    results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["loadavg_at_end"] = loadavg()
    if not results["count"]["ok"]:
        results["meta"]["errors"]["count"] = "records lost, doubled or gaps: see count"
    return results


async def _day(args: argparse.Namespace, rig: Rig, lanes: list[FakeLane]) -> dict[str, Any]:
    day: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    expected = sum(lane.expected for lane in lanes)
    _log(f"== {len(lanes)} lanes, {expected} records in {args.day_s:g} s")
    meters = Meters(rig)
    async with asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(lane.run(rig.stations[lane.station].port, day)) for lane in lanes
        ]
        await wait_keys(rig.url, len(lanes))  # every birth's key registered first
        meters.start()
        day.set_result(time.perf_counter())
        if args.outage_at is not None:
            at = day.result() + args.outage_at
            group.create_task(_outage(rig, meters, at, args.outage_s))
        try:
            async with asyncio.timeout(args.day_s + args.drain_s):
                await asyncio.gather(*tasks)
        except TimeoutError:
            for task in tasks:
                task.cancel()
        components = await meters.stop(expected)
    started = day.result()
    outage = None
    if args.outage_at is not None:
        outage = _after_outage(lanes, started + args.outage_at + args.outage_s, args.outage_s)
    ended = max((lane.finished_at for lane in lanes), default=0.0)
    latencies = [x for lane in lanes for x in lane.latencies]
    seconds = ended - started if ended else 0.0
    acked = len(latencies)
    return {
        "day": {
            "stations": args.stations, "lanes": len(lanes),
            "inspections": args.per_day * len(lanes),
            "records": expected, "acked": acked, "day_s": args.day_s,
            "seconds": round(seconds, 1),
            "offered_per_s": round(expected / args.day_s, 1),
            "records_per_s": round(acked / seconds, 1) if seconds else 0.0,
            "resent": sum(lane.resent for lane in lanes),
            "extra_acks": sum(lane.extra_acks for lane in lanes),
            "latency_ms": {
                q: round(1000 * percentile(latencies, p), 1)
                for q, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))
            },
        },
        "components": components,
        "outage": outage,
    }  # fmt: skip


async def _outage(rig: Rig, meters: Meters, at: float, seconds: float) -> None:
    """The WAN cut: the regional broker stopped for ``seconds`` (its queues with it)."""
    await asyncio.sleep(max(0.0, at - time.perf_counter()))
    _log(f"== regional broker down for {seconds:g} s")
    assert rig.region.proc is not None
    meters.replacing("regional broker", rig.region.proc.pid)
    rig.region.stop()
    await asyncio.sleep(seconds)
    rig.region.start()
    assert rig.region.proc is not None
    meters.replaced("regional broker", rig.region.proc.pid)
    _log("== regional broker back")


def _after_outage(lanes: list[FakeLane], back: float, seconds: float) -> dict[str, Any]:
    """How the backlog drained: acks per second in the busiest 10 s after the broker came
    back (the region's rate with a queue in front of it), and when the backlog was gone."""
    times = sorted(t for lane in lanes for t in lane.acked_at if t >= back)
    best, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] > 10.0:
            first += 1
        best = max(best, last - first + 1)
    during = sum(1 for lane in lanes for t in lane.acked_at if back - seconds <= t < back)
    return {
        "seconds": seconds,
        "acked_during": during,
        "peak_acks_per_s": round(best / 10.0, 1),
        "acked_after": len(times),
    }


async def count(rig: Rig, lanes: list[FakeLane]) -> dict[str, Any]:
    """Every record stored once, each gateway's chain without a gap (region, stations)."""
    expected = {lane.gateway_id: lane.expected for lane in lanes}
    region = await _count_one(rig.url, expected)
    stations = {}
    for code in rig.station_receivers:
        url = f"sqlite:{rig.workdir}/station-{code}.sqlite3"
        mine = {g: n for g, n in expected.items() if g.startswith(f"lanegw-{code}-")}
        async with asyncio.timeout(120):  # the station stores what the region acked
            while (counted := await _count_one(url, mine))["stored"] < counted["expected"]:
                await asyncio.sleep(0.5)
        stations[code] = counted
    ok = region["ok"] and all(s["ok"] for s in stations.values())
    inspections = sum(len(lane.starts) for lane in lanes)
    return {"ok": ok, "inspections": inspections, "region": region, "stations": stations}


async def _count_one(url: str, expected: dict[str, int]) -> dict[str, Any]:
    rows = await query(url, "SELECT gateway_id, COUNT(*), COUNT(DISTINCT seq), MIN(seq),"
                       " MAX(seq) FROM records GROUP BY gateway_id")  # fmt: skip
    distinct = await query(url, "SELECT COUNT(DISTINCT record_id) FROM records")
    alarms = dict(await query(url, "SELECT kind, COUNT(*) FROM alarms GROUP BY kind"))
    store = await RecordStore.open(url, "bench-counter")
    try:  # every record is in: a gap now, with no grace, would be a lost record
        gaps = await store.sweep_gaps(grace_s=0)
    finally:
        await store.close()
    stored = sum(int(r[1]) for r in rows)
    per_gateway = {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}
    lost = sum(n - per_gateway.get(g, (0, 0, 0, 0))[1] for g, n in expected.items())
    broken = [g for g, (n, seqs, low, high) in per_gateway.items()
              if (low, high) != (1, seqs) or n != seqs]  # fmt: skip
    ids = int(distinct[0][0])
    # a second row of a record id, or of a gateway's seq
    duplicates = stored - ids + sum(n - seqs for n, seqs, _, _ in per_gateway.values())
    kinds = {str(k): int(v) for k, v in alarms.items()}
    ok = (
        stored == sum(expected.values()) == ids
        and lost == duplicates == 0
        and not broken
        and not gaps
        and "sequence_gap" not in kinds
    )
    return {
        "ok": ok, "expected": sum(expected.values()), "stored": stored, "distinct_ids": ids,
        "lost": lost, "duplicates": duplicates, "gateways_with_gaps": len(broken) + len(gaps),
        "alarms": kinds,
    }  # fmt: skip


async def storage(url: str, inspections: int) -> dict[str, Any]:
    """The regional database's size: per record, per inspection, for a province's year."""
    sizes = await query(
        url,
        "SELECT COALESCE(SUM(pg_total_relation_size(relid)), 0),"
        " COALESCE(SUM(pg_relation_size(relid)), 0),"
        " COALESCE(SUM(pg_indexes_size(relid)), 0)"
        " FROM pg_partition_tree('records') WHERE isleaf",
    )
    total, heap, indexes = (int(x) for x in sizes[0])
    rows = await query(url, "SELECT COUNT(*), COALESCE(SUM(octet_length(payload)), 0) FROM records")
    records, payload = int(rows[0][0]), int(rows[0][1])
    other = await query(
        url, "SELECT (SELECT COUNT(*) FROM alarms), (SELECT COUNT(*) FROM gateways)"
    )
    per_inspection = total / inspections if inspections else 0.0
    return {
        "records": records,
        "rows_per_inspection": round(records / inspections, 2) if inspections else 0.0,
        "alarm_rows": int(other[0][0]), "gateway_rows": int(other[0][1]),
        "payload_bytes_per_record": round(payload / records) if records else 0,
        "bytes_per_record": round(total / records) if records else 0,
        "records_mb": round(total / 1e6, 1), "heap_and_toast_mb": round((total - indexes) / 1e6, 1),
        "indexes_mb": round(indexes / 1e6, 1), "heap_mb": round(heap / 1e6, 1),
        "bytes_per_inspection": round(per_inspection),
        "province_year_gb": round(per_inspection * PROVINCE_INSPECTIONS / 1e9, 1),
    }  # fmt: skip


QUERIES = {
    "a station's records of the day": (
        "SELECT COUNT(*) FROM records WHERE station = %s AND finished_at >= date_trunc('day',"
        " now()) AND finished_at < date_trunc('day', now()) + interval '1 day'"
    ),
    "failed items of the day, province": (
        "SELECT item_code, COUNT(*) FROM records WHERE verdict = 'fail' AND kind = 'item' AND"
        " finished_at >= date_trunc('day', now()) AND finished_at < date_trunc('day', now())"
        " + interval '1 day' GROUP BY item_code"
    ),
    "one inspection's records": (
        "SELECT COUNT(*) FROM records WHERE inspection_id ="
        " (SELECT inspection_id FROM records WHERE station = %s LIMIT 1)"
    ),
}


async def regulator_queries(url: str, station: str) -> list[dict[str, Any]]:
    """The regulator's queries on what was stored, each timed once on an open connection
    (indicative: a cold cache, no repetition)."""
    store = await RecordStore.open(url, "bench-regulator")
    out = []
    try:
        for name, sql in QUERIES.items():
            begun = time.perf_counter()
            async with store.db.transaction() as tx:
                rows = await tx.all(sql, (station,) if "%s" in sql else ())
            elapsed = time.perf_counter() - begun
            out.append({"query": name, "ms": round(1000 * elapsed, 1), "rows": len(rows)})
    finally:
        await store.close()
    return out


def text(results: dict[str, Any]) -> str:
    """The human-readable report."""
    meta, day, counted = results["meta"], results.get("day"), results.get("count")
    parts = [
        f"{meta.get('cpus')} CPUs ({meta.get('cpu_model')}), PostgreSQL"
        f" {meta.get('postgres')}, load at start {meta.get('loadavg_at_start')}"
    ]
    if day:
        lat = day["latency_ms"]
        parts.append(
            f"{day['stations']} stations, {day['lanes']} lanes, {day['inspections']}"
            f" inspections, {day['records']} records offered at {day['offered_per_s']}/s over"
            f" {day['day_s']:g} s; {day['acked']} acknowledged in {day['seconds']} s"
            f" ({day['records_per_s']}/s), {day['resent']} resent\nlatency publish -> ack at"
            f" the lane: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms,"
            f" max {lat['max']} ms"
        )
    outage = results.get("outage")
    if outage:
        parts.append(
            f"regional broker down {outage['seconds']:g} s ({outage['acked_during']} acked"
            f" meanwhile); then {outage['acked_after']} acked, at most"
            f" {outage['peak_acks_per_s']}/s over 10 s"
        )
    if results.get("components"):
        headers = ["component", "procs", "CPU s", "cores", "CPU ms/rec", "RSS max MB", "RSS sum"]
        keys = ("component", "processes", "cpu_s", "cores", "cpu_ms_per_record")
        rows = [
            [*(c[k] for k in keys), c["rss_mb_max"] or "-", c["rss_mb_total"] or "-"]
            for c in results["components"]
        ]
        parts.append("CPU and memory over the day\n" + table(headers, rows))
    if counted:
        lines = [f"count check: {'OK' if counted['ok'] else 'FAILED'}"]
        for name, c in [("region", counted["region"]), *counted["stations"].items()]:
            lines.append(
                f"  {name}: {c['stored']}/{c['expected']} stored, {c['distinct_ids']} distinct"
                f" ids, {c['lost']} lost, {c['duplicates']} duplicates,"
                f" {c['gateways_with_gaps']} gateways with gaps, alarms {c['alarms'] or 'none'}"
            )
        parts.append("\n".join(lines))
    s = results.get("storage")
    if s:
        parts.append(
            f"storage: {s['rows_per_inspection']} rows per inspection,"
            f" {s['payload_bytes_per_record']} B payload and {s['bytes_per_record']} B on disk"
            f" per record (indexes {s['indexes_mb']} of {s['records_mb']} MB);"
            f" {s['bytes_per_inspection']} B per inspection: {s['province_year_gb']} GB for"
            f" {PROVINCE_INSPECTIONS:,} inspections a year"
        )
    if results.get("queries"):
        timed = "; ".join(f"{q['query']} {q['ms']} ms" for q in results["queries"])
        parts.append(f"regulator queries: {timed}")
    errors = meta.get("errors")
    if errors:
        parts.append("FAILED: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run, print, write."""
    args = parse(argv)
    results = run_in_workdir(
        "lanegw-bench-province-", lambda workdir: run(args, workdir), args.keep, _log
    )
    _log("\n" + text(results))
    write_json(results, args.json)
    _log(f"\nJSON: {args.json}")
    return 1 if results["meta"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
