"""The fault suite's totals: every test adds the faults it injected and the records its
lanes produced and the station received; the terminal summary prints them."""

from __future__ import annotations

import pytest

from tests.faults.rig import Totals

TOTALS = pytest.StashKey[Totals]()


@pytest.fixture(scope="session")
def totals(pytestconfig: pytest.Config) -> Totals:
    """The suite's running totals (one object for the whole session)."""
    return pytestconfig.stash.setdefault(TOTALS, Totals())


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    totals = config.stash.get(TOTALS, None)
    if totals is None:
        return
    terminalreporter.write_sep("=", "fault injection totals")
    terminalreporter.write_line(totals.line())
