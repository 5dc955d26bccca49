"""A real mosquitto broker on a free loopback port, that tests can stop and restart."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mosquitto:
    """mosquitto as a child process; ``stop``/``start`` simulate a broker outage."""

    def __init__(self, workdir: Path, port: int | None = None, listener: str | None = None) -> None:
        """``listener`` replaces the default anonymous plain listener (TLS, auth, ACLs)."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("mosquitto is not installed: run scripts/test, which installs it")
        self.binary = binary
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        # as root, mosquitto would drop to user "mosquitto", who cannot write the
        # persistence file here: the test station's session would not survive a restart
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            (listener or f"listener {self.port} 127.0.0.1\nallow_anonymous true\n") + f"{run_as}"
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 0\n"
            "max_queued_messages 100000\nlog_dest stderr\nlog_type error\n"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-500:]}")
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
