"""Stopping a daemon: SIGTERM (systemd) and SIGINT (Ctrl-C) cancel its main task, so every
part unwinds through its ``finally`` blocks and the process exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable


async def until_signalled(main: Awaitable[None]) -> None:
    """Await ``main`` until it ends or SIGINT/SIGTERM cancels it."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await main
