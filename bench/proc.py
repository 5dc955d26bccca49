"""What the kernel says about a process: CPU time, resident memory, and the machine's load.

CPU comes from the process's CPU-time clock (``clock_gettime`` on the clock id Linux
derives from the pid: user + system time of all its threads, dead ones included, in
nanoseconds), so even a window of a few milliseconds of CPU is measured exactly; where
that clock cannot be read, from ``/proc/<pid>/stat`` (``utime + stime`` in clock ticks
of 10 ms). Memory comes from ``/proc/<pid>/status`` (``VmRSS`` now, ``VmHWM`` the peak
since the process started).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_clock_id(pid: int) -> int:
    """The CPU-time clock of process ``pid`` (Linux: ``CPUCLOCK_SCHED`` of the thread group,
    as glibc's ``clock_getcpuclockid`` builds it)."""
    return ((~pid) << 3) | 2


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far."""
    try:
        return time.clock_gettime(cpu_clock_id(pid))
    except OSError:  # not Linux, or the clock is refused: the tick counters
        return _cpu_ticks(pid)


def _cpu_ticks(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the process, in MB (10^6 bytes)."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0]) * 1024 / 1e6
    return values["VmRSS"], values["VmHWM"]


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict[str, object]:
    """What the figures were taken on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model, "loadavg_at_start": loadavg()}


@dataclass
class CpuWindow:
    """CPU used by a process between ``start`` and ``stop``."""

    pid: int
    started_cpu: float = 0.0
    cpu_s: float = 0.0

    def start(self) -> None:
        """Begin the window."""
        self.started_cpu = cpu_seconds(self.pid)

    def stop(self) -> float:
        """End the window; returns the CPU seconds used in it."""
        self.cpu_s = cpu_seconds(self.pid) - self.started_cpu
        return self.cpu_s


@dataclass
class RssSampler:
    """Samples a process's RSS every ``period`` seconds while running (peak and series)."""

    pid: int
    period: float = 0.1
    samples: list[float] = field(default_factory=list)

    async def run(self) -> None:
        """Sample until cancelled (or until the process is gone)."""
        while True:
            try:
                rss, _ = memory_mb(self.pid)
            except (OSError, ValueError):
                return
            self.samples.append(rss)
            await asyncio.sleep(self.period)

    @property
    def peak_mb(self) -> float:
        """The largest RSS sampled."""
        return max(self.samples, default=0.0)
