"""Fuzzing budget: ``LANEGW_FUZZ_EXAMPLES`` inputs per fuzz test (CI raises it so the
suite generates well over 100,000 inputs per run); the total is printed at the end."""

from __future__ import annotations

import os
from typing import Any

import pytest

EXAMPLES = int(os.environ.get("LANEGW_FUZZ_EXAMPLES", "100"))
COUNTS: dict[str, int] = {}


def count(name: str) -> None:
    """Called once per generated input."""
    COUNTS[name] = COUNTS.get(name, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if COUNTS:
        total = sum(COUNTS.values())
        terminalreporter.write_line(
            f"fuzz: {total} generated inputs over {len(COUNTS)} targets "
            f"({EXAMPLES} per target requested)"
        )


@pytest.fixture
def fuzz_examples() -> int:
    return EXAMPLES
