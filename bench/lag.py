"""The daemon's event-loop lag, probed from outside (``python -m bench.lag SOCKET OUT [PERIOD]``).

Every PERIOD seconds (default 0.02) the probe connects to the daemon's control socket
(``control.sock`` in its state directory), sends ``{"command": "ping"}`` and times the
answer: accepting, reading, answering and closing are each a turn of the daemon's event
loop, so the round trip is what any task of the daemon waits while the loop is busy
with something else (an idle daemon answers in well under a millisecond). The probe is
a process of its own with blocking sockets, so neither the benchmark's own event loop
nor its GIL adds to the figure. Each probe's round trip goes to OUT as a line (seconds,
or ``failed`` once the daemon had answered before); SIGTERM ends it.
"""

from __future__ import annotations

import json
import signal
import socket
import statistics
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

REQUEST = b'{"command": "ping"}\n'
TIMEOUT_S = 30.0


def ping(path: str) -> float:
    """One round trip to the control socket at ``path``, in seconds."""
    started = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT_S)
        sock.connect(path)
        sock.sendall(REQUEST)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the answer")
            answer += chunk
    elapsed = time.perf_counter() - started
    if not json.loads(answer).get("ok"):
        raise ConnectionError(f"ping refused: {answer!r}")
    return elapsed


def summary(rtts: list[float], failed: int) -> dict[str, Any]:
    """Median, p99 and worst round trip in ms, and how many probes were made."""
    if not rtts:
        return {"lag_probes": 0, "lag_failed": failed}
    ordered = sorted(rtts)
    return {
        "lag_probes": len(ordered),
        "lag_failed": failed,
        "lag_p50_ms": round(1000 * statistics.median(ordered), 2),
        "lag_p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "lag_max_ms": round(1000 * ordered[-1], 2),
        "lag_over_50ms": sum(1 for r in ordered if r > 0.05),
    }


def main(argv: list[str]) -> int:
    """Probe until SIGTERM, writing each round trip as a line (seconds, or ``failed``)."""
    path, out = argv[0], Path(argv[1])
    period = float(argv[2]) if len(argv) > 2 else 0.02
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    answered = False
    with out.open("w", buffering=1) as lines:
        while not stopping:
            due = time.monotonic() + period
            try:
                lines.write(f"{ping(path):.6f}\n")
                answered = True
            except (OSError, ValueError):  # not listening yet (not counted), or going away
                if answered:
                    lines.write("failed\n")
            time.sleep(max(0.0, due - time.monotonic()))
    return 0


def read(out: Path) -> tuple[list[float], int]:
    """The round trips and the failed probes written so far."""
    rtts: list[float] = []
    failed = 0
    try:
        text = out.read_text()
    except FileNotFoundError:  # the probe has not started yet
        return rtts, failed
    for line in text.splitlines():
        if line == "failed":
            failed += 1
        elif line:
            rtts.append(float(line))
    return rtts, failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
