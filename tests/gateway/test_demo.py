"""``lanegw demo --duration N``: a whole simulated station, then a clean exit 0."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_inspections_and_exits_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--duration", "25", "--time-scale", "0.05"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "L1 gateway online" in out and "L2 gateway online" in out
    summaries = [line for line in out.splitlines() if " summary " in line]
    assert any(line.startswith("L1") and "PASS" in line for line in summaries), out[-3000:]
    assert any(line.startswith("L2") and "FAIL" in line for line in summaries), out[-3000:]
    assert "25 s elapsed" in out
    assert "Traceback" not in result.stderr
