"""Station part 1: ``RecordStore.ingest`` alone, in this process, no MQTT.

For each database, record size and batch size, a fresh database takes one gateway's N
signed, chained records (its key registered first from its birth message, as the
receiver does) in batches of that size, each batch one ``ingest`` call: one transaction
that locks the gateway, looks up each record's neighbours, verifies its signature and
inserts it. The records are parsed (``parse_arrival``) before the clock starts; what
parsing costs is shown on its own. Every record must come out stored, or the case fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.postgres import Postgres
from bench.station_records import STATION, BenchGateway
from bench.subscriber import percentile
from station.checks import Arrival, Decision, parse_arrival
from station.store import RecordStore


def parse_all(lane: str, payloads: list[bytes]) -> tuple[list[Arrival], float]:
    """The arrivals, and the microseconds ``parse_arrival`` took per record."""
    started = time.perf_counter()
    arrivals = [parse_arrival(lane, STATION, p) for p in payloads]
    elapsed = time.perf_counter() - started
    good = [a for a in arrivals if isinstance(a, Arrival)]
    if len(good) != len(arrivals):
        raise RuntimeError("a benchmark record failed parse_arrival")
    return good, 1e6 * elapsed / len(payloads)


async def ingest_case(
    url: str, gateway: BenchGateway, arrivals: list[Arrival], batch: int
) -> dict[str, Any]:
    """Store ``arrivals`` in batches of ``batch`` into the empty database at ``url``."""
    store = await RecordStore.open(url, "bench-store")
    try:
        birth = gateway.birth()
        await store.register_state(gateway.lane, json.loads(birth), birth, True)
        seconds: list[float] = []
        stored = 0
        cpu = time.process_time()
        started = time.perf_counter()
        for start in range(0, len(arrivals), batch):
            begun = time.perf_counter()
            outcomes = await store.ingest(arrivals[start : start + batch])
            seconds.append(time.perf_counter() - begun)
            stored += sum(o.decision is Decision.STORE for o in outcomes)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        await store.close()
    if stored != len(arrivals):
        raise RuntimeError(f"{stored} of {len(arrivals)} records stored")
    return {
        "records": len(arrivals),
        "batch": batch,
        "records_per_s": round(len(arrivals) / elapsed),
        "batch_p50_ms": round(1000 * percentile(seconds, 50), 2),
        "batch_p95_ms": round(1000 * percentile(seconds, 95), 2),
        "client_cpu_ms_per_record": round(1000 * cpu / len(arrivals), 3),
        "seconds": round(elapsed, 2),
    }


async def run(
    workdir: Path,
    postgres: Postgres,
    records: int,
    batches: list[int],
    variants: list[str],
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Every (database, variant, batch) case; a fresh database each."""
    rows: list[dict[str, Any]] = []
    for variant in variants:
        gateway = BenchGateway("L1")
        payloads = gateway.records(records, variant)
        arrivals, parse_us = parse_all(gateway.lane, payloads)
        size = round(sum(map(len, payloads)) / len(payloads))
        for database in ("sqlite", "postgresql"):
            for batch in batches:
                url = (
                    f"sqlite:{workdir}/store-{variant}-{batch}.sqlite3"
                    if database == "sqlite"
                    else postgres.database()
                )
                row: dict[str, Any] = {
                    "database": database,
                    "variant": variant,
                    "record_bytes": size,
                }
                row |= await ingest_case(url, gateway, arrivals, batch)
                row["parse_us_per_record"] = round(parse_us, 1)
                log(
                    f"  store {database:10} {variant:5} batch {batch:3}:"
                    f" {row['records_per_s']:6} records/s, batch p50 {row['batch_p50_ms']} ms,"
                    f" p95 {row['batch_p95_ms']} ms"
                )
                rows.append(row)
    return rows
