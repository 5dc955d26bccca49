"""Advisory locks that keep two processes from driving one port at once.

The daemon locks every serial port it owns at start; the technician CLI locks a port
before it opens it (``lanegw probe``). Locks are ``flock``s on files in ``/run/lock/lanegw``
(``LANEGW_LOCK_DIR`` overrides), named after the port's real path, so
``/dev/serial/by-id/...`` and the ``/dev/ttyUSB0`` it points to are the same port. The
kernel drops a lock when its process dies, so a killed daemon leaves nothing stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from gateway.errors import GatewayError

DEFAULT_DIR = Path("/run/lock/lanegw")


class PortBusy(GatewayError):
    """Another process holds the port."""


def lock_dir() -> Path:
    """Where the lock files live."""
    return Path(os.environ.get("LANEGW_LOCK_DIR", DEFAULT_DIR))


def port_key(url: str) -> str:
    """A stable file name for the port behind ``url``."""
    path = Path(url)
    real = str(path.resolve()) if path.is_absolute() else url
    readable = "".join(c if c.isalnum() else "_" for c in real)[-40:]
    return f"{readable}-{hashlib.sha256(real.encode()).hexdigest()[:8]}.lock"


class PortLock:
    """An exclusive lock on one port, held until ``release`` (or process exit)."""

    def __init__(self, url: str, owner: str) -> None:
        self.url = url
        self.path = lock_dir() / port_key(url)
        self._owner = owner
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``PortBusy`` naming who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o664)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise PortBusy(f"{self.url} is in use by {holder}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self._owner} (pid {os.getpid()})".encode())
        self._fd = fd

    def release(self) -> None:
        """Give the port back."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def locked(url: str, owner: str) -> Iterator[PortLock]:
    """Hold the lock of ``url`` for the block."""
    lock = PortLock(url, owner)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
