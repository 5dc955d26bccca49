"""The benchmark suite in its smallest form (``python -m bench --smoke``), so that it cannot rot.

No thresholds: the figures of a few seconds on a busy CI machine mean nothing. What is
checked is that every phase ran against the real daemon, simulators and mosquitto, and
that the JSON holds each phase's figures with sane values (readings delivered, every
outbox record acknowledged, a first record after start-up).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.procs import REPO

PHASES = ("polling", "brake", "serial", "outbox", "startup")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    """One smoke run: its JSON, its printed report and the plot path."""
    out = tmp_path_factory.mktemp("bench")
    plot = out / "bench.png"
    argv = [sys.executable, "-m", "bench", "--smoke", "--json", str(out / "bench.json")]
    done = subprocess.run(
        [*argv, "--plot", str(plot)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((out / "bench.json").read_text()), done.stdout, plot


def test_every_phase_ran(smoke: tuple[dict[str, Any], str, Path]) -> None:
    results, printed, _ = smoke
    meta = results["meta"]
    assert meta["errors"] == {}
    assert meta["quick"] is True
    assert meta["cpus"] >= 1
    assert meta["commit"]
    assert all(phase in results for phase in PHASES)
    for heading in ("Polling", "Brake stream", "Serial 9600", "Outbox drain", "Start-up"):
        assert heading in printed


def test_polling_figures(smoke: tuple[dict[str, Any], str, Path]) -> None:
    rows = smoke[0]["polling"]
    assert sorted(r["impl"] for r in rows) == ["bare", "lanegw"]
    for row in rows:
        assert row["devices"] == 2
        assert row["period_ms"] == 100
        assert row["polls"] > 0
        assert row["delivered_per_s"] > 0
        assert 0 < row["delivered_pct"] <= 110
        assert 0 < row["latency_p50_ms"] <= row["latency_p99_ms"] <= row["latency_max_ms"]
        assert row["cpu_s"] > 0
        assert row["cpu_ms_per_1000"] > 0
        assert row["peak_rss_mb"] > 5
    (lanegw,) = (r for r in rows if r["impl"] == "lanegw")
    assert lanegw["cpu_ratio"] > 0


def test_brake_figures(smoke: tuple[dict[str, Any], str, Path]) -> None:
    brake = smoke[0]["brake"]
    assert brake["error"] is None
    assert brake["frames_sent"] > 0
    assert 0 < brake["frames_received"] <= brake["frames_sent"]
    assert brake["frames_missing"] == brake["frames_sent"] - brake["frames_received"]
    assert brake["stream_s"] > 0
    assert brake["cpu_ms_per_frame"] > 0
    assert brake["others"] == 1


def test_serial_figures(smoke: tuple[dict[str, Any], str, Path]) -> None:
    serial = smoke[0]["serial"]
    assert serial["baud"] == 9600
    assert serial["bytes_per_read"] > 0
    assert 0 < serial["reads_per_s"] <= serial["max_reads_per_s"] * 1.05
    assert 0 < serial["efficiency_pct"] <= 105


def test_outbox_drained_and_acked(smoke: tuple[dict[str, Any], str, Path]) -> None:
    (row,) = smoke[0]["outbox"]
    assert row["records"] == 100
    assert row["delivery"] == "server_ack"
    assert row["all_acked"] is True
    assert row["received_unique"] == 100
    assert row["left_in_outbox"] == 0
    assert row["records_per_s"] > 0
    assert row["peak_rss_mb"] > 5
    # the loop-lag probe (bench/lag.py) got answers from the daemon's control socket
    assert row["lag_probes"] >= 1
    assert row["lag_failed"] == 0
    assert 0 < row["lag_p50_ms"] <= row["lag_p99_ms"] <= row["lag_max_ms"]


def test_startup_figures(smoke: tuple[dict[str, Any], str, Path]) -> None:
    startup = smoke[0]["startup"]
    assert startup["repeats"] == 1
    assert 0 < startup["to_birth_s"] < 30
    assert 0 < startup["to_first_record_s"] < 30
    assert 0 < startup["to_first_telemetry_s"] < 30


def test_targets_listed(smoke: tuple[dict[str, Any], str, Path]) -> None:
    targets = smoke[0]["targets"]
    names = " ".join(t["target"] for t in targets)
    for part in ("CPU per reading", "brake 100 Hz", "serial line", "outbox 100", "start-up"):
        assert part in names
    assert all(t["met"] in (True, False, None) for t in targets)
    (brake,) = (t for t in targets if t["target"].startswith("brake"))
    assert brake["met"] is None  # a one-second stream does not judge the 60 s target


def test_plot_written_when_matplotlib_is_installed(
    smoke: tuple[dict[str, Any], str, Path],
) -> None:
    _, printed, plot = smoke
    if importlib.util.find_spec("matplotlib") is None:
        assert "plot skipped" in printed
    else:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
