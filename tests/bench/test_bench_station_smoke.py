"""The station receiver benchmark in its smallest form (``python -m bench.station --quick``),
so that it cannot rot.

No thresholds: what is checked is that both parts ran against the real store, PostgreSQL,
mosquitto and ``lanegw station run``, that every case stored every record, and that the
JSON holds the figures docs/performance.md quotes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bench.procs import REPO

QUICK_RECORDS = 200
STORE_KEYS = {
    "database", "variant", "record_bytes", "records", "batch", "records_per_s", "batch_p50_ms",
    "batch_p95_ms", "client_cpu_ms_per_record", "parse_us_per_record", "seconds",
}  # fmt: skip
E2E_KEYS = {
    "database", "receivers", "gateways", "records", "variant", "record_bytes", "seconds",
    "records_per_s", "published_s", "stored", "all_acked", "ack_messages", "ids_per_ack",
    "receiver_cpu_ms_per_record", "per_receiver", "broker_cpu_s", "publisher_cpu_s",
    "postgres_cpu_s", "machine_busy_pct",
}  # fmt: skip
RECEIVER_KEYS = {"cpu_s_run", "cpu_s_total", "rss_before_mb", "rss_mb", "hwm_mb", "stored"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One quick run: its JSON and its printed report."""
    path = tmp_path_factory.mktemp("bench-station") / "bench-station.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.station", "--quick", "--json", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(path.read_text()), done.stdout


def test_both_parts_ran(quick: tuple[dict[str, Any], str]) -> None:
    results, printed = quick
    meta = results["meta"]
    assert meta["errors"] == {}
    assert meta["quick"] is True
    assert meta["postgres"]
    assert meta["fdatasync_ms"]["p50"] > 0
    assert "Store only" in printed
    assert "End to end" in printed


def test_store_cases(quick: tuple[dict[str, Any], str]) -> None:
    rows = quick[0]["store"]
    cases = {(r["database"], r["variant"], r["batch"]) for r in rows}
    assert cases == {
        (database, variant, batch)
        for database in ("sqlite", "postgresql")
        for variant in ("s1", "brake")
        for batch in (1, 20, 200)
    }
    for row in rows:
        assert set(row) == STORE_KEYS
        assert row["records"] == QUICK_RECORDS
        assert row["records_per_s"] > 0
        assert 0 < row["batch_p50_ms"] <= row["batch_p95_ms"]
    sizes = {r["variant"]: r["record_bytes"] for r in rows}
    assert sizes["brake"] > 2000 + sizes["s1"]  # the brake curve's upload string


def test_e2e_cases_stored_and_acknowledged_everything(quick: tuple[dict[str, Any], str]) -> None:
    rows = quick[0]["e2e"]
    assert [(r["database"], r["receivers"]) for r in rows] == [
        ("sqlite", 1),
        ("postgresql", 1),
        ("postgresql", 2),
    ]
    for row in rows:
        assert set(row) == E2E_KEYS
        assert row["gateways"] == 2
        assert row["records"] == row["stored"] == 2 * QUICK_RECORDS
        assert row["all_acked"] is True
        assert row["records_per_s"] > 0
        assert len(row["per_receiver"]) == row["receivers"]
        assert sum(r["stored"] for r in row["per_receiver"]) == row["records"]
        for receiver in row["per_receiver"]:
            assert set(receiver) == RECEIVER_KEYS
            assert receiver["rss_mb"] > 5
            assert receiver["cpu_s_total"] >= receiver["cpu_s_run"] > 0
        assert (row["postgres_cpu_s"] is None) == (row["database"] == "sqlite")
