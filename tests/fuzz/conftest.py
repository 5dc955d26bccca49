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

from tests.summaries import FUZZ

EXAMPLES = int(os.environ.get("LANEGW_FUZZ_EXAMPLES", "100"))
#: a fuzz test may use this share of its timeout (the rest is the margin for a loaded CI)
BUDGET_FRACTION = 0.25


def count(name: str) -> None:
    """Called once per generated input."""
    FUZZ.counts[name] += 1


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        return (yield)
    finally:
        name = item.nodeid.rsplit("::", 1)[-1]
        FUZZ.seconds[name] = time.perf_counter() - started
        FUZZ.cpu_seconds[name] = time.process_time() - cpu_started


def budget_s(config: pytest.Config) -> float:
    """The seconds a fuzz test may take: a quarter of the suite's timeout."""
    return (float(config.getini("timeout") or 0) or 120.0) * BUDGET_FRACTION


@pytest.fixture
def fuzz_examples() -> int:
    return EXAMPLES
