"""The tests' PostgreSQL cluster: the benchmark's (Debian's server binaries, installed by
scripts/test; a free loopback port; run as the ``postgres`` user when root), without
fsync, since the tests time nothing."""

from __future__ import annotations

from bench.postgres import Postgres as Cluster


class Postgres(Cluster):
    """One cluster; ``database()`` makes a fresh database per test."""

    def __init__(self) -> None:
        super().__init__(durable=False)
