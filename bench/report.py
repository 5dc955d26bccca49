"""The results: targets judged, a text table, the JSON file and the plot."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

#: issue 7's targets
CPU_RATIO_MAX = 1.3
DELIVERED_MIN_PCT = 99.0
P50_MAX_MS = 2.0
P99_MAX_MS = 10.0
SERIAL_MIN_PCT = 90.0
DRAIN_MIN_PER_S = 2000.0
DRAIN_RSS_MAX_MB = 60.0
RSS_8_MAX_MB = 40.0
STARTUP_MAX_S = 1.5
BRAKE_MIN_S = 60.0


def add_ratios(polling: list[dict[str, Any]]) -> None:
    """Set ``cpu_ratio`` (lanegw / bare CPU per reading) on the lanegw rows."""
    bare = {(r["devices"], r["period_ms"]): r for r in polling if r["impl"] == "bare"}
    for row in polling:
        other = bare.get((row["devices"], row["period_ms"]))
        if (
            row["impl"] == "lanegw"
            and other
            and row["cpu_ms_per_1000"]
            and other["cpu_ms_per_1000"]
        ):
            row["cpu_ratio"] = round(row["cpu_ms_per_1000"] / other["cpu_ms_per_1000"], 2)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured figure and whether it was met."""
    out: list[dict[str, Any]] = []

    def target(name: str, figure: Any, met: bool | None) -> None:
        out.append({"target": name, "figure": figure, "met": met})  # None: not judged

    for phase, error in results.get("meta", {}).get("errors", {}).items():
        target(f"{phase} phase ran", error, False)

    polling = [r for r in results.get("polling", []) if r["impl"] == "lanegw"]
    ratios = [r["cpu_ratio"] for r in polling if "cpu_ratio" in r]
    if ratios:
        target(
            f"CPU per reading <= {CPU_RATIO_MAX}x bare (every case)",
            max(ratios),
            max(ratios) <= CPU_RATIO_MAX,
        )
    for row in polling:
        if row["devices"] == 32 and row["period_ms"] == 20:
            target(
                f"32 x 20 ms: >= {DELIVERED_MIN_PCT} % delivered",
                row["delivered_pct"],
                row["delivered_pct"] >= DELIVERED_MIN_PCT,
            )
            target(
                f"32 x 20 ms: p50 <= {P50_MAX_MS} ms",
                row["latency_p50_ms"],
                row["latency_p50_ms"] <= P50_MAX_MS,
            )
            target(
                f"32 x 20 ms: p99 <= {P99_MAX_MS} ms",
                row["latency_p99_ms"],
                row["latency_p99_ms"] <= P99_MAX_MS,
            )
    eight = [r["peak_rss_mb"] for r in polling if r["devices"] == 8]
    if eight:
        target(
            f"peak RSS with 8 devices <= {RSS_8_MAX_MB} MB", max(eight), max(eight) <= RSS_8_MAX_MB
        )
    brake = results.get("brake")
    if brake:
        # a gap is a frame missing from the stream (the sample-counter gaps); late
        # frames (more than 20 ms after the previous one) are shown, not judged
        clean = brake["frames_missing"] == 0 and not brake["error"]
        long_enough = brake["stream_s"] >= BRAKE_MIN_S - 1 and brake["others"] >= 8
        target(
            f"brake 100 Hz: no gaps over {BRAKE_MIN_S:.0f} s with 8 devices polled",
            f"{brake['frames_missing']} missing, {brake['late_frames']} late"
            f" in {brake['stream_s']} s, {brake['others']} devices polled",
            # a shorter stream (--quick) says nothing about the target either way
            clean if long_enough else (False if not clean else None),
        )
    serial = results.get("serial")
    if serial:
        target(
            f"serial line efficiency >= {SERIAL_MIN_PCT} %",
            serial["efficiency_pct"],
            serial["efficiency_pct"] >= SERIAL_MIN_PCT,
        )
    for row in results.get("outbox", []):
        if row["delivery"] == "server_ack":
            target(
                f"outbox {row['records']}: >= {DRAIN_MIN_PER_S:.0f} records/s with acks",
                row["records_per_s"],
                row["records_per_s"] >= DRAIN_MIN_PER_S and row["all_acked"],
            )
        if row["records"] >= 100_000:
            target(
                f"outbox {row['records']} ({row['delivery']}): RSS <= {DRAIN_RSS_MAX_MB} MB",
                row["peak_rss_mb"],
                row["peak_rss_mb"] <= DRAIN_RSS_MAX_MB,
            )
    startup = results.get("startup")
    if startup:
        target(
            f"start-up to first record <= {STARTUP_MAX_S} s",
            startup["to_first_record_s"],
            startup["to_first_record_s"] <= STARTUP_MAX_S,
        )
    return out


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """Right-aligned plain-text columns under a rule (every benchmark's report)."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def text(results: dict[str, Any]) -> str:
    """The human-readable report."""
    parts = []
    if results.get("polling"):
        rows = [
            [
                r["impl"],
                r["devices"],
                r["period_ms"],
                r["configured_per_s"],
                r["delivered_pct"],
                r["missed_polls"],
                r["latency_p50_ms"],
                r["latency_p99_ms"],
                r["cpu_ms_per_1000"],
                r.get("cpu_ratio", ""),
                r["cpu_pct"],
                r["peak_rss_mb"],
                r["loadavg"][0],
            ]
            for r in results["polling"]
        ]
        headers = [
            "impl",
            "dev",
            "ms",
            "cfg/s",
            "deliv%",
            "missed",
            "p50ms",
            "p99ms",
            "cpu/1000",
            "ratio",
            "cpu%",
            "rssMB",
            "load1",
        ]
        parts.append(
            "Polling (Modbus TCP, 16 registers, telemetry to mosquitto)\n" + table(headers, rows)
        )
    brake = results.get("brake")
    if brake:
        parts.append(
            f"Brake stream: {brake['frames_received']}/{brake['frames_sent']} frames in"
            f" {brake['stream_s']} s ({brake['frames_missing']} missing, {brake['late_frames']}"
            f" late > 20 ms, max gap {brake['gap_max_ms']} ms), CPU {brake['cpu_ms_per_frame']}"
            f" ms/frame ({brake['cpu_ms_per_frame_net']} net of the {brake['others']} devices'"
            f" {brake['baseline_cpu_pct']} %), others {brake['others_delivered_pct']} % delivered"
        )
    serial = results.get("serial")
    if serial:
        parts.append(
            f"Serial 9600 8N1: {serial['reads_per_s']} reads/s of {serial['max_reads_per_s']}"
            f" possible ({serial['efficiency_pct']} %, {serial['bytes_per_read']} bytes/read),"
            f" {serial['cpu_ms_per_read']} ms CPU/read"
        )
    if results.get("outbox"):
        rows = [
            [
                r["records"],
                r["delivery"],
                r["backlog_mb"],
                r["records_per_s"],
                r["drain_s"],
                r["peak_rss_mb"],
                r["cpu_ms_per_record"],
                r.get("lag_p50_ms", "-"),
                r.get("lag_p99_ms", "-"),
                r.get("lag_max_ms", "-"),
                r["all_acked"],
                r["duplicates"],
            ]
            for r in results["outbox"]
        ]
        headers = [
            "records",
            "delivery",
            "MB",
            "rec/s",
            "drain s",
            "peakRSS",
            "cpu ms/rec",
            "lag50ms",
            "lag99ms",
            "lagmax",
            "all acked",
            "dups",
        ]
        parts.append("Outbox drain\n" + table(headers, rows))
    startup = results.get("startup")
    if startup:
        parts.append(
            f"Start-up (median of {startup['repeats']}): birth {startup['to_birth_s']} s, first"
            f" telemetry {startup['to_first_telemetry_s']} s, first record"
            f" {startup['to_first_record_s']} s (worst {startup['to_first_record_max_s']} s)"
        )
    if results.get("targets"):
        verdicts = {True: "met", False: "MISSED", None: "not judged (short run)"}
        rows = [[t["target"], t["figure"], verdicts[t["met"]]] for t in results["targets"]]
        parts.append("Targets\n" + table(["target", "figure", ""], rows))
    errors = results.get("meta", {}).get("errors")
    if errors:
        parts.append("Failed phases\n" + "\n".join(f"  {k}: {v}" for k, v in errors.items()))
    return "\n\n".join(parts)


def write_json(results: dict[str, Any], path: Path) -> None:
    """The machine-readable results."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def plot(results: dict[str, Any], path: Path) -> bool:
    """Latency and CPU per reading against load (PNG); False when matplotlib is missing."""
    try:
        import matplotlib  # optional: pip install -e '.[bench]'

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    polling = results.get("polling", [])
    if not polling:
        return False
    fig, (lat, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    for impl, color in (("lanegw", "tab:blue"), ("bare", "tab:gray")):
        rows = sorted(
            (r for r in polling if r["impl"] == impl), key=lambda r: r["configured_per_s"]
        )
        load = [r["configured_per_s"] for r in rows]
        lat.plot(load, [r["latency_p50_ms"] for r in rows], "o-", color=color, label=f"{impl} p50")
        lat.plot(load, [r["latency_p99_ms"] for r in rows], "s--", color=color, label=f"{impl} p99")
        cpu.plot(load, [r["cpu_ms_per_1000"] / 1000 for r in rows], "o-", color=color, label=impl)
    lat.set(
        xscale="log",
        yscale="log",
        xlabel="configured readings/s (N devices / period)",
        ylabel="latency sample -> subscriber (ms)",
        title="Latency",
    )
    cpu.set(
        xscale="log",
        xlabel="configured readings/s",
        ylabel="CPU ms per reading",
        title="CPU per reading",
    )
    cpu.set_ylim(bottom=0)
    for axes in (lat, cpu):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    meta = results.get("meta", {})
    fig.suptitle(f"lanegw vs bare loop, {meta.get('cpus')} CPUs, {meta.get('date', '')}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def run_in_workdir(
    prefix: str,
    run: Callable[[Path], Coroutine[Any, Any, dict[str, Any]]],
    keep: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run a benchmark in a fresh work directory; keep it (its logs) when asked, when a part
    failed, or when nothing came back."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    results: dict[str, Any] = {}
    try:
        results = asyncio.run(run(workdir))
    finally:
        if keep or results.get("meta", {}).get("errors") or not results:
            log(f"work directory kept (logs): {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results
