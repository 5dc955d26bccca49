"""systemd notification (``Type=notify``): ready, and a watchdog fed from the event loop.

The watchdog is fed by a task on the same loop as everything else, so a wedged loop
stops feeding it and systemd restarts the daemon. Outside systemd both are no-ops.
"""

from __future__ import annotations

import asyncio
import os
import socket


def notify(message: str) -> bool:
    """Send ``message`` to systemd's notify socket; False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    path = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(path)
        sock.sendall(message.encode())
    return True


async def feed_watchdog() -> None:
    """Feed the watchdog at half its interval, forever (returns at once without one)."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return
    interval = int(usec) / 1_000_000 / 2
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
