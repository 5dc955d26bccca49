"""End-of-run figures the suite prints (the fault suite's totals, the fuzz inputs and
times), gathered in one place so that they add up under pytest-xdist too: each worker
sends its figures to the controller when its session ends, the controller adds them and
prints one summary (``tests/conftest.py`` wires the hooks)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultTotals:
    """What the fault suite injected and what became of the records."""

    faults: Counter[str] = field(default_factory=Counter)
    produced: int = 0
    delivered: int = 0

    def fault(self, kind: str, count: int = 1) -> None:
        self.faults[kind] += count

    def device_faults(self, plan: Any) -> None:
        """Count what a simulator's fault plan (``plan.injected``) applied to its replies."""
        for kind, count in plan.injected.items():
            self.fault(f"device:{kind.value}", count)

    @property
    def lost(self) -> int:
        return self.produced - self.delivered

    def line(self) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items()))
        return (
            f"faults injected {sum(self.faults.values())} ({kinds}); records produced "
            f"{self.produced}, delivered {self.delivered}, lost {self.lost}"
        )


@dataclass
class FuzzStats:
    """Inputs generated per fuzz target, and each fuzz test's wall and CPU seconds."""

    counts: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)


FAULTS = FaultTotals()
FUZZ = FuzzStats()


def export() -> dict[str, Any]:
    """This process's figures, as a worker sends them (JSON-able)."""
    return {
        "faults": dict(FAULTS.faults),
        "produced": FAULTS.produced,
        "delivered": FAULTS.delivered,
        "fuzz_counts": dict(FUZZ.counts),
        "fuzz_seconds": FUZZ.seconds,
        "fuzz_cpu_seconds": FUZZ.cpu_seconds,
    }


def merge(sent: dict[str, Any]) -> None:
    """Add a worker's figures to this process's."""
    FAULTS.faults.update(sent.get("faults", {}))
    FAULTS.produced += int(sent.get("produced", 0))
    FAULTS.delivered += int(sent.get("delivered", 0))
    FUZZ.counts.update(sent.get("fuzz_counts", {}))
    FUZZ.seconds.update(sent.get("fuzz_seconds", {}))
    FUZZ.cpu_seconds.update(sent.get("fuzz_cpu_seconds", {}))


def fault_lines() -> list[str]:
    return [FAULTS.line()] if FAULTS.faults or FAULTS.produced else []


def fuzz_lines(examples: int, budget_s: float) -> tuple[list[str], list[str]]:
    """The fuzz summary's lines, and the tests over their time budget."""
    if not FUZZ.counts:
        return [], []
    total = sum(FUZZ.counts.values())
    per_target = ", ".join(f"{k} {v}" for k, v in sorted(FUZZ.counts.items()))
    slowest = sorted(FUZZ.seconds.items(), key=lambda kv: -kv[1])[:5]
    shown = ", ".join(
        f"{n} {s:.1f} s ({FUZZ.cpu_seconds.get(n, 0.0):.1f} s CPU)" for n, s in slowest
    )
    lines = [
        f"fuzz: {total} generated inputs over {len(FUZZ.counts)} targets "
        f"({examples} per target requested)",
        f"fuzz: inputs per target: {per_target}",
        f"fuzz: slowest tests (budget {budget_s:.0f} s each, a quarter of the timeout): {shown}",
    ]
    return lines, [name for name, seconds in FUZZ.seconds.items() if seconds > budget_s]
