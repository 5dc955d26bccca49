"""Shared fixtures. Device tests run drivers against simulators over real byte streams;
MQTT tests run against a real mosquitto on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import summaries
from tests.mosquitto import Mosquitto

# port locks of daemons and CLIs started by the tests stay out of /run/lock
os.environ.setdefault("LANEGW_LOCK_DIR", tempfile.mkdtemp(prefix="lanegw-locks-"))


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh mosquitto for one test (stoppable for outage tests)."""
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def no_task_left_behind() -> AsyncIterator[None]:
    """Fails an async test that leaves tasks running (an orphan task: nothing awaits its
    end or sees its error). Tasks already cancelled get a moment to finish."""
    yield
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if pending:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.wait(pending)
    left = [t for t in pending if not t.done()]
    for task in left:
        task.cancel()
    if left:
        pytest.fail("the test left tasks running: " + ", ".join(t.get_name() for t in left))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every coroutine test gets ``no_task_left_behind``, set up first so that it is torn
    down last: the tasks its other fixtures own (simulators, brokers) have ended by then."""
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.fixturenames.insert(0, "no_task_left_behind")  # type: ignore[attr-defined]


# end-of-run figures (tests/summaries.py): each xdist worker sends its own to the controller
def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["lanegw_summaries"] = summaries.export()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    summaries.merge(getattr(node, "workeroutput", {}).get("lanegw_summaries", {}))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if hasattr(config, "workeroutput"):
        return  # a worker: the controller prints the sum
    from tests.fuzz.conftest import EXAMPLES, budget_s

    lines, over = summaries.fuzz_lines(EXAMPLES, budget_s(config))
    for line in lines:
        terminalreporter.write_line(line)
    if over:
        terminalreporter.write_line(f"fuzz: OVER BUDGET: {', '.join(over)}", red=True)
    if faults := summaries.fault_lines():
        terminalreporter.write_sep("=", "fault injection totals")
        for line in faults:
            terminalreporter.write_line(line)
