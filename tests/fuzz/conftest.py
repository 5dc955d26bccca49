"""Fuzzing budget: ``LANEGW_FUZZ_EXAMPLES`` inputs per fuzz test (CI raises it so the
suite generates well over 100,000 inputs per run).

Each fuzz test must stay well inside its timeout on a loaded machine: its budget is a
quarter of the timeout (``BUDGET_FRACTION``). The end-of-run summary prints the inputs
generated per target and the seconds each fuzz test took against its budget, and names
any test over it, so a slow target is seen before it times out in CI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator
from typing import Any

import pytest

EXAMPLES = int(os.environ.get("LANEGW_FUZZ_EXAMPLES", "100"))
#: a fuzz test may use this share of its timeout (the rest is the margin for a loaded CI)
BUDGET_FRACTION = 0.25
COUNTS: dict[str, int] = {}
SECONDS: dict[str, float] = {}
CPU_SECONDS: dict[str, float] = {}


def count(name: str) -> None:
    """Called once per generated input."""
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        return (yield)
    finally:
        name = item.nodeid.rsplit("::", 1)[-1]
        SECONDS[name] = time.perf_counter() - started
        CPU_SECONDS[name] = time.process_time() - cpu_started


def _timeout(config: pytest.Config) -> float:
    return float(config.getini("timeout") or 0) or 120.0


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not COUNTS:
        return
    total = sum(COUNTS.values())
    write = terminalreporter.write_line
    write(
        f"fuzz: {total} generated inputs over {len(COUNTS)} targets "
        f"({EXAMPLES} per target requested)"
    )
    write("fuzz: inputs per target: " + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))
    budget = _timeout(config) * BUDGET_FRACTION
    slowest = sorted(SECONDS.items(), key=lambda kv: -kv[1])[:5]
    write(
        f"fuzz: slowest tests (budget {budget:.0f} s each, a quarter of the timeout): "
        + ", ".join(f"{n} {s:.1f} s ({CPU_SECONDS[n]:.1f} s CPU)" for n, s in slowest)
    )
    over = [name for name, seconds in SECONDS.items() if seconds > budget]
    if over:
        write(f"fuzz: OVER BUDGET: {', '.join(over)}", red=True)


@pytest.fixture
def fuzz_examples() -> int:
    return EXAMPLES
