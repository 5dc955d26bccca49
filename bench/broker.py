"""A real mosquitto on a free loopback port, stoppable to simulate a broker outage."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """mosquitto as a child process (no persistence: every run starts empty)."""

    def __init__(
        self, workdir: Path, port: int | None = None, nodelay: bool = True, extra: str = ""
    ) -> None:
        """``nodelay``: ``set_tcp_nodelay`` (off in mosquitto by default; see docs);
        ``extra``: more config lines (a bridge)."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed: run scripts/bench, which installs it")
        self.binary = binary
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{run_as}"
            "persistence false\nmax_queued_messages 200000\nmax_inflight_messages 0\n"
            f"set_tcp_nodelay {'true' if nodelay else 'false'}\nlog_dest stderr\nlog_type error\n"
            f"{extra}"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until it listens."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-500:]}")
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """Stop it (a broker outage, or the end of the run)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
