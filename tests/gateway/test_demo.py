"""``lanegw demo --duration N``: a whole simulated station, then a clean exit 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.mosquitto import free_port


def test_demo_runs_inspections_and_exits_cleanly() -> None:
    web_port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--duration", "25", "--time-scale", "0.05",
         "--web-port", str(web_port)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"live lane page: http://127.0.0.1:{web_port}/" in out
    assert "L1 gateway online" in out and "L2 gateway online" in out
    summaries = [line for line in out.splitlines() if " summary " in line]
    assert any(line.startswith("L1") and "PASS" in line for line in summaries), out[-3000:]
    assert any(line.startswith("L2") and "FAIL" in line for line in summaries), out[-3000:]
    for lane in ("L1", "L2"):  # the receiver stored and acknowledged every record
        produced = max(int(n) for n in re.findall(rf"^{lane} record #(\d+)", out, re.M))
        acked = re.findall(rf"^{lane} station stored and acknowledged (\d+) record", out, re.M)
        assert sum(map(int, acked)) == produced, out[-3000:]
    assert "25 s elapsed" in out
    assert "Traceback" not in result.stderr
