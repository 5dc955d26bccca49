"""``lanegw demo``: a whole simulated station, then a clean exit 0, in time, also on a
loaded machine and when it is stopped in the middle of a test.

The demo used to hang at its end when it stopped during a two-speed idle (with
``--duration`` or Ctrl-C alike): the item's clean-up (pump off) asked a bus whose owner
task was already cancelled and waited for ever; the event loop only waited, so Ctrl-C
changed nothing. Three runs in a row, with two busy processes competing for the CPU:
the full one; one interrupted (SIGINT) while the analyser's pump runs; one whose
``--duration`` ends about when the first run's two-speed idle started."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.mosquitto import free_port

#: longest the demo may take beyond its duration or its interruption, seconds
STOP_BOUND_S = 45
#: the three runs share one module fixture: its time counts against the first test
pytestmark = pytest.mark.timeout(300)
#: a line of the two-speed idle's sampling: the analyser's pump is running
PUMPING = re.compile(r"^L\d high idle: \d+ r/min")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    pumping_after_s: float | None  # when the first two-speed idle sample was shown


@contextlib.contextmanager
def cpu_load(processes: int = 2) -> Iterator[None]:
    """Busy processes (niced, so the machine's other work goes on) for the block."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "import os; os.nice(5)\nwhile True: pass"])
        for _ in range(processes)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def demo(duration: float, interrupt_when_pumping: bool = False) -> Run:
    """Run the demo; with ``interrupt_when_pumping``, Ctrl-C (SIGINT) once the pump runs.
    Killed (and the test failed) when it does not end ``STOP_BOUND_S`` after its time
    or its interruption."""
    command = [sys.executable, "-m", "gateway", "demo", "--duration", f"{duration:g}",
               "--time-scale", "0.05", "--web-port", str(free_port())]  # fmt: skip
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    watchdog = threading.Timer(duration + STOP_BOUND_S, proc.kill)
    watchdog.start()
    interrupted: list[threading.Timer] = []
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()))  # type: ignore[union-attr]
    reader.start()
    lines, pumping = [], None
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if pumping is None and PUMPING.match(line):
            pumping = time.monotonic() - start
            if interrupt_when_pumping:
                proc.send_signal(signal.SIGINT)
                interrupted.append(threading.Timer(STOP_BOUND_S, proc.kill))
                interrupted[0].start()
    proc.wait()
    for timer in (watchdog, *interrupted):
        timer.cancel()
    reader.join()
    return Run(proc.returncode, "".join(lines), "".join(stderr), pumping)


@pytest.fixture(scope="module")
def loaded_runs() -> list[Run]:
    with cpu_load():
        full = demo(25)
        interrupted = demo(300, interrupt_when_pumping=True)
        assert full.pumping_after_s is not None, full.stdout[-3000:]
        timed = demo(round(full.pumping_after_s + 1))
    return [full, interrupted, timed]


def test_demo_runs_inspections_and_exits_cleanly(loaded_runs: list[Run]) -> None:
    result = loaded_runs[0]
    out = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert "live lane page: http://127.0.0.1:" in out
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


def test_demo_interrupted_while_the_pump_runs_exits_0(loaded_runs: list[Run]) -> None:
    result = loaded_runs[1]
    assert result.pumping_after_s is not None, result.stdout[-3000:]
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert "demo: interrupted, stopped" in result.stdout
    assert "Traceback" not in result.stderr


def test_demo_whose_time_ends_mid_inspection_exits_0(loaded_runs: list[Run]) -> None:
    result = loaded_runs[2]
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    assert re.search(r"demo: \d+ s elapsed, stopped", result.stdout)
    assert "Traceback" not in result.stderr
