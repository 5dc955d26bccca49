"""``python -m bench.station``: how many records/s the station receiver stores and acknowledges.

Usage: python -m bench.station [--quick] [--only store,e2e] [--records N] [--gateways G]
Part 1 (store) times ``RecordStore.ingest`` alone on SQLite and PostgreSQL at several
batch sizes; part 2 (e2e) runs ``lanegw station run`` behind mosquitto with simulated
gateways publishing at QoS 1 and times them until every record is acknowledged. Method
and figures: docs/performance.md, "Station receiver". Defaults take about 2 minutes,
``--quick`` (the smoke test's size) about 10 seconds. Prints the tables and writes JSON.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import station_e2e, station_store
from bench.postgres import Postgres
from bench.proc import loadavg, machine
from bench.procs import REPO
from bench.report import run_in_workdir, table, write_json
from bench.station_records import VARIANTS
from bench.subscriber import percentile

PARTS = ("store", "e2e")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.station", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke size: a few hundred records")
    p.add_argument("--only", default=",".join(PARTS), help="parts, comma-separated")
    p.add_argument("--records", type=int, default=5000, help="records per case (e2e: per gateway)")
    p.add_argument("--gateways", type=int, default=2, help="gateways publishing in e2e")
    p.add_argument("--batches", default="1,20,200", help="batch sizes of the store part")
    p.add_argument("--variants", default=",".join(VARIANTS), help="record sizes of the store part")
    p.add_argument("--e2e-variant", default="s1", choices=VARIANTS, help="record size in e2e")
    p.add_argument("--inflight", type=int, default=32, help="QoS 1 window of each gateway")
    p.add_argument("--max-held", type=int, default=None, help="e2e: receivers' mqtt.max_held")
    p.add_argument("--cases", default=",".join(station_e2e.CASES), help="e2e cases")
    p.add_argument("--json", type=Path, default=REPO / "artifacts" / "bench-station.json")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.records = 200
    unknown = {v for v in args.variants.split(",") if v} - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    return args


def fdatasync_ms(directory: Path, count: int = 200) -> dict[str, float]:
    """What one durable commit costs this disk at least: ``fdatasync`` of a 4 kB write."""
    path = directory / "fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append(1000 * (time.perf_counter() - started))
    finally:
        os.close(fd)
        path.unlink()
    return {"p50": round(percentile(times, 50), 3), "p95": round(percentile(times, 95), 3)}


def _git_commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


def _log(text: str) -> None:
    print(text, flush=True)


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The chosen parts against one PostgreSQL cluster."""
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if set(parts) - set(PARTS):
        raise SystemExit(f"unknown parts {sorted(set(parts) - set(PARTS))}; known: store, e2e")
    postgres = Postgres()
    postgres.start()
    results: dict[str, Any] = {"meta": {}, "store": [], "e2e": []}
    started = time.perf_counter()
    errors: dict[str, str] = {}
    try:
        results["meta"] = {
            **machine(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "commit": _git_commit(),
            "python": sys.version.split()[0],
            "postgres": postgres.server_version(),
            "fdatasync_ms": fdatasync_ms(workdir),
            "quick": args.quick,
            "settings": {k: str(v) for k, v in vars(args).items()},
        }
        for part in parts:
            _log(f"== station {part}")
            try:
                results[part] = await _part(part, args, workdir, postgres)
            except Exception as exc:  # noqa: BLE001 (one failed part must not lose the other)
                errors[part] = f"{type(exc).__name__}: {exc}"
                _log(f"  {part} FAILED: {errors[part]}\n{traceback.format_exc()}")
    finally:
        postgres.stop()
    results["meta"]["errors"] = errors
    results["meta"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["loadavg_at_end"] = loadavg()
    return results


async def _part(
    part: str, args: argparse.Namespace, workdir: Path, postgres: Postgres
) -> list[dict[str, Any]]:
    if part == "store":
        batches = [int(b) for b in args.batches.split(",") if b]
        variants = [v for v in args.variants.split(",") if v]
        return await station_store.run(workdir, postgres, args.records, batches, variants, _log)
    return await station_e2e.run(
        workdir,
        postgres,
        args.gateways,
        args.records,
        args.e2e_variant,
        args.inflight,
        _log,
        args.max_held,
        tuple(c for c in args.cases.split(",") if c),
    )


def text(results: dict[str, Any]) -> str:
    """The human-readable report."""
    parts = []
    meta = results.get("meta", {})
    if meta:
        parts.append(
            f"{meta.get('cpus')} CPUs, PostgreSQL {meta.get('postgres')}, this disk's fdatasync"
            f" p50 {meta.get('fdatasync_ms', {}).get('p50')} ms"
        )
    if results.get("store"):
        headers = ["database", "record", "bytes", "batch", "rec/s", "p50 ms", "p95 ms", "cpu/rec"]
        rows = [
            [r["database"], r["variant"], r["record_bytes"], r["batch"], r["records_per_s"],
             r["batch_p50_ms"], r["batch_p95_ms"], r["client_cpu_ms_per_record"]]
            for r in results["store"]
        ]  # fmt: skip
        parse_us = {r["variant"]: r["parse_us_per_record"] for r in results["store"]}
        note = ", ".join(f"{v} {us} us" for v, us in parse_us.items())
        parts.append(
            "Store only (RecordStore.ingest; batch = records per transaction;"
            " cpu/rec = this process's CPU ms per record)\n"
            + table(headers, rows)
            + f"\nparse_arrival per record (not in the figures above): {note}"
        )
    if results.get("e2e"):
        headers = ["database", "recv", "records", "rec/s", "publ s", "ids/ack", "recv cpu/rec",
                   "recv CPU s", "RSS MB", "broker s", "pg s", "busy %"]  # fmt: skip
        rows = [
            [r["database"], r["receivers"], r["records"], r["records_per_s"], r["published_s"],
             r["ids_per_ack"], r["receiver_cpu_ms_per_record"],
             "/".join(str(x["cpu_s_run"]) for x in r["per_receiver"]),
             "/".join(str(x["rss_mb"]) for x in r["per_receiver"]),
             r["broker_cpu_s"], r["postgres_cpu_s"] or "-", r["machine_busy_pct"]]
            for r in results["e2e"]
        ]  # fmt: skip
        parts.append(
            "End to end (lanegw station run behind mosquitto, records/s acknowledged)\n"
            + table(headers, rows)
        )
    errors = meta.get("errors")
    if errors:
        parts.append("Failed parts\n" + "\n".join(f"  {k}: {v}" for k, v in errors.items()))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run, print, write."""
    args = parse(argv)
    results = run_in_workdir(
        "lanegw-bench-station-", lambda workdir: run(args, workdir), args.keep, _log
    )
    _log("\n" + text(results))
    write_json(results, args.json)
    _log(f"\nJSON: {args.json}")
    return 1 if results["meta"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
