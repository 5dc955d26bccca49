"""A throw-away PostgreSQL cluster for the station benchmark and tests: Debian's server
binaries, a data directory in a temporary folder, a free loopback port.

The benchmark keeps PostgreSQL's durable defaults (``fsync`` and ``synchronous_commit``
on): its figures are compared with SQLite's ``synchronous=FULL``, and a commit that skips
the disk would flatter the small batches. The tests measure nothing and run without fsync.
PostgreSQL refuses to run as root; as root the cluster runs as the ``postgres`` user that
Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from bench.broker import free_port
from bench.proc import cpu_seconds


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries missing: apt-get install postgresql")
    return found[-1]


class Postgres:
    """One cluster; ``database()`` makes a fresh database per case."""

    def __init__(self, durable: bool = True) -> None:
        self.durable = durable
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="lanegw-bench-pg-"))
        self.data = self.workdir / "data"
        self._user = "postgres" if os.geteuid() == 0 else None
        self._count = 0

    def _run(self, *args: str) -> None:
        command = list(args)
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync")  # fmt: skip
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after ``pause``): same port, same data."""
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c max_connections=50"
        )
        if not self.durable:
            options += " -c fsync=off"
        log = str(self.workdir / "server.log")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def pause(self) -> None:
        """Stop the server (an outage); its data stays."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")

    def url(self, database: str = "postgres") -> str:
        """The URL of a database of the cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its URL."""
        self._count += 1
        name = f"bench_{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def server_version(self) -> str:
        """``SHOW server_version``."""
        with psycopg.connect(self.url()) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else ""

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server and its live children (the backends)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        total = cpu_seconds(postmaster)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                if int(text[text.rindex(")") + 2 :].split()[1]) == postmaster:
                    total += cpu_seconds(int(stat.parent.name))
            except (OSError, ValueError):  # a process that ended meanwhile
                continue
        return total

    def stop(self) -> None:
        """Stop the server and delete its data."""
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
