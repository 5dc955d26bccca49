"""The province benchmark in its smallest form (``python -m bench.province --smoke``), so
that it cannot rot: 2 stations x 2 lanes bridged to the region, two regional receivers,
one station receiver, PostgreSQL, and the regional broker stopped for 2 s mid-day.

No thresholds: what is checked is that every part ran against the real brokers,
receivers and database, that the count check holds (every record stored once, in the
region and at the station, no gap), and that the JSON holds the figures docs/scale.md
quotes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bench.procs import REPO

COMPONENTS = {
    "regional receivers", "regional broker", "station brokers", "station receivers",
    "postgresql", "simulated lanes (this process)",
}  # fmt: skip
RECORDS = 2 * 2 * 3 * 7  # stations x lanes x inspections x (6 items + summary)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One smoke run: its JSON and its printed report."""
    path = tmp_path_factory.mktemp("bench-province") / "bench-province.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.province", "--smoke", "--json", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(path.read_text()), done.stdout


def test_every_record_was_stored_once_without_gaps(smoke: tuple[dict[str, Any], str]) -> None:
    results, printed = smoke
    assert results["meta"]["errors"] == {}
    count = results["count"]
    assert count["ok"] is True
    region = count["region"]
    assert region["expected"] == region["stored"] == region["distinct_ids"] == RECORDS
    assert (region["lost"], region["duplicates"], region["gateways_with_gaps"]) == (0, 0, 0)
    (station,) = count["stations"].values()
    assert station["stored"] == station["expected"] == RECORDS // 2
    assert "count check: OK" in printed


def test_the_figures_are_there(smoke: tuple[dict[str, Any], str]) -> None:
    results, printed = smoke
    day = results["day"]
    assert day["acked"] == day["records"] == RECORDS
    assert 0 < day["latency_ms"]["p50"] <= day["latency_ms"]["p99"] <= day["latency_ms"]["max"]
    components = {c["component"]: c for c in results["components"]}
    assert set(components) == COMPONENTS
    assert components["regional receivers"]["processes"] == 2
    assert components["station brokers"]["processes"] == 2
    for name in ("regional receivers", "postgresql", "simulated lanes (this process)"):
        assert components[name]["cpu_s"] > 0, components[name]
    assert components["regional receivers"]["rss_mb_max"] > 5
    storage = results["storage"]
    assert storage["records"] == RECORDS and storage["rows_per_inspection"] == 7
    assert storage["province_year_gb"] > 0
    assert [q["query"] for q in results["queries"]] == [
        "a station's records of the day",
        "failed items of the day, province",
        "one inspection's records",
    ]
    assert "CPU and memory over the day" in printed
    # the regional broker was stopped for 2 s mid-day: what queued drained after it
    outage = results["outage"]
    assert outage["seconds"] == 2.0 and outage["acked_after"] > 0
    assert "regional broker down 2 s" in printed
