"""The suite's own guard: an async test that leaves a task running fails (the
``no_task_left_behind`` fixture every coroutine test gets, tests/conftest.py)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_an_orphan_task_fails_its_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from tests.conftest import no_task_left_behind, pytest_collection_modifyitems\n"
    )
    pytester.makepyfile(
        """
        import asyncio

        async def test_leaves_an_orphan():
            asyncio.get_running_loop().create_task(asyncio.sleep(60), name="orphan")

        async def test_cancels_what_it_started():
            task = asyncio.get_running_loop().create_task(asyncio.sleep(60), name="owned")
            task.cancel()
        """
    )
    result = pytester.runpytest_inprocess(
        "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*the test left tasks running: orphan*"])
