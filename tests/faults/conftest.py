"""The fault suite's totals: every test adds the faults it injected and the records its
lanes produced and the station received; the terminal summary prints them
(tests/summaries.py, wired in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.summaries import FAULTS, FaultTotals


@pytest.fixture(scope="session")
def totals() -> FaultTotals:
    """The suite's running totals (one object for the whole session, per worker)."""
    return FAULTS
