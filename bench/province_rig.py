"""The processes of ``bench.province``: PostgreSQL, the regional mosquitto, one mosquitto
per station bridged to it (bench/bridge.py), the regional receivers (``lanegw station
run`` with ``station: "+"``) and, optionally, station receivers that store without
acknowledging; and the meters that read their CPU and memory from the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.bridge import bridge_options, config_text
from bench.broker import Broker
from bench.postgres import Postgres
from bench.proc import CpuWindow, RssSampler, memory_mb
from bench.procs import Child, child_env, lanegw_command

SHARE_GROUP = "lanegw-region"


def receiver_yaml(
    path: Path, port: int, url: str, name: str, ack_timeout_s: float, station: str = "+"
) -> Path:
    """A regional receiver's config (``station: "+"``), or a station's that stores only."""
    regional = station == "+"
    config: dict[str, Any] = {
        "station": station,
        "mqtt": {
            "port": port,
            "client_id": name,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 2.0,  # back soon after the regional broker's outage
            "share_group": SHARE_GROUP if regional else "lanegw-receivers",
            "acknowledge": regional,  # the region acknowledges, the station stores
        },
        "database": {
            "url": url,
            "partitions": "monthly" if regional else "none",
            "transactions": "per_batch" if regional else "per_gateway",
        },
        # a record the region missed comes back after the lanes' ack timeout: no gap alarm
        # before that (docs/scale.md)
        "checks": {"gap_grace_s": max(180.0, 2 * ack_timeout_s)},
        "web": {"enabled": False},
        "metrics": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def start_receiver(config: Path, log: Path, workdir: Path) -> Child:
    """``lanegw station run``, returned once subscribed."""
    argv = [*lanegw_command(), "station", "run", "--config", str(config), "--log-format", "json"]
    child = Child(argv, log, child_env(workdir))
    await child.start()
    async with asyncio.timeout(60):
        while not _logged(log, "station_started"):
            if not child.alive():
                raise RuntimeError(f"{log.name} exited: see {log}")
            await asyncio.sleep(0.1)
    return child


def _logged(log: Path, event: str) -> bool:
    return f'"event": "{event}"' in log.read_text(errors="replace")


@dataclass
class Rig:
    """Every process of a run; ``stop`` ends them all."""

    workdir: Path
    postgres: Postgres
    region: Broker
    stations: dict[str, Broker] = field(default_factory=dict)
    receivers: list[Child] = field(default_factory=list)
    station_receivers: dict[str, Child] = field(default_factory=dict)
    url: str = ""

    @classmethod
    async def start(
        cls,
        workdir: Path,
        stations: list[str],
        receivers: int,
        station_receivers: int,
        ack_timeout_s: float,
    ) -> Rig:
        """Bring everything up; receivers subscribed before this returns."""
        postgres = Postgres()
        postgres.start()
        (workdir / "region").mkdir()
        region = Broker(workdir / "region")
        rig = cls(workdir, postgres, region)
        try:
            region.start()
            rig.url = postgres.database()
            for code in stations:
                broker_dir = workdir / f"broker-{code}"
                broker_dir.mkdir()
                bridge = config_text(bridge_options(code, region.port, keepalive_s=30))
                rig.stations[code] = Broker(broker_dir, extra=bridge)
                rig.stations[code].start()
            # one first (it creates the tables), then the others together
            names = [f"region-{n + 1}" for n in range(receivers)]
            configs = [
                receiver_yaml(workdir / f"{n}.yaml", region.port, rig.url, n, ack_timeout_s)
                for n in names
            ]
            rig.receivers.append(
                await start_receiver(configs[0], workdir / f"{names[0]}.log", workdir)
            )
            rig.receivers += await asyncio.gather(
                *(start_receiver(c, workdir / f"{n}.log", workdir)
                  for c, n in zip(configs[1:], names[1:], strict=True))
            )  # fmt: skip
            for code in stations[:station_receivers]:
                url = f"sqlite:{workdir}/station-{code}.sqlite3"
                config = receiver_yaml(
                    workdir / f"station-{code}.yaml", rig.stations[code].port, url,
                    f"station-{code}", ack_timeout_s, station=code,
                )  # fmt: skip
                log = workdir / f"station-{code}.log"
                rig.station_receivers[code] = await start_receiver(config, log, workdir)
        except BaseException:
            await rig.stop()
            raise
        return rig

    async def stop(self) -> None:
        """Receivers first (SIGTERM), then the brokers and PostgreSQL."""
        children = [*self.receivers, *self.station_receivers.values()]
        await asyncio.gather(*(child.stop() for child in children))
        for broker in [*self.stations.values(), self.region]:
            with contextlib.suppress(OSError):
                broker.stop()
        self.postgres.stop()


@dataclass
class Meters:
    """CPU of every component over the day, and its memory."""

    rig: Rig
    windows: dict[str, list[CpuWindow]] = field(default_factory=dict)
    samplers: dict[str, list[RssSampler]] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    pg_cpu: float = 0.0
    own_cpu: float = 0.0
    started: float = 0.0
    carried: dict[str, float] = field(default_factory=dict)  # CPU of processes replaced

    def replacing(self, name: str, pid: int) -> None:
        """Before a component's process ``pid`` stops (to be restarted): keep its CPU."""
        for window in self.windows[name]:
            if window.pid == pid:
                self.carried[name] = self.carried.get(name, 0.0) + window.stop()
                self.windows[name].remove(window)
                return

    def replaced(self, name: str, pid: int) -> None:
        """After its new process ``pid`` started: measure that one from now on."""
        window, sampler = CpuWindow(pid), RssSampler(pid, period=0.5)
        window.start()
        self.windows[name].append(window)
        self.samplers[name].append(sampler)
        self.tasks.append(asyncio.create_task(sampler.run()))

    def pids(self) -> dict[str, list[int]]:
        """The processes of each component."""
        rig = self.rig
        brokers = [b.proc.pid for b in rig.stations.values() if b.proc]
        return {
            "regional receivers": [c.pid for c in rig.receivers],
            "regional broker": [rig.region.proc.pid] if rig.region.proc else [],
            "station brokers": brokers,
            "station receivers": [c.pid for c in rig.station_receivers.values()],
        }

    def start(self) -> None:
        """Open the windows; sample memory until ``stop``."""
        for name, pids in self.pids().items():
            self.windows[name] = [CpuWindow(pid) for pid in pids]
            self.samplers[name] = [RssSampler(pid, period=0.5) for pid in pids]
            for window in self.windows[name]:
                window.start()
            self.tasks += [asyncio.create_task(s.run()) for s in self.samplers[name]]
        self.pg_cpu = self.rig.postgres.cpu_seconds()
        self.own_cpu = time.process_time()
        self.started = time.perf_counter()

    async def stop(self, records: int) -> list[dict[str, Any]]:
        """Per component: processes, CPU seconds, % of one core, CPU ms per record, RSS."""
        seconds = time.perf_counter() - self.started
        rows = []
        for name, windows in self.windows.items():
            cpu = sum(w.stop() for w in windows) + self.carried.get(name, 0.0)
            peaks = [s.peak_mb for s in self.samplers[name]]
            rows.append(
                _component(
                    name, len(windows), cpu, seconds, records, max(peaks, default=0.0), sum(peaks)
                )
            )
        for task in self.tasks:
            task.cancel()
        pg = self.rig.postgres.cpu_seconds() - self.pg_cpu
        rows.append(_component("postgresql", 1, pg, seconds, records, None, None))
        own = time.process_time() - self.own_cpu
        rss = memory_mb_self()
        rows.append(
            _component("simulated lanes (this process)", 1, own, seconds, records, rss, rss)
        )
        return rows


def memory_mb_self() -> float:
    """This process's peak RSS."""
    return memory_mb(os.getpid())[1]


def _component(
    name: str,
    processes: int,
    cpu_s: float,
    seconds: float,
    records: int,
    rss_max: float | None,
    rss_sum: float | None,
) -> dict[str, Any]:
    return {
        "component": name,
        "processes": processes,
        "cpu_s": round(cpu_s, 1),
        "cores": round(cpu_s / seconds, 3) if seconds else 0.0,
        "cpu_ms_per_record": round(1000 * cpu_s / records, 3) if records else None,
        "rss_mb_max": None if rss_max is None else round(rss_max, 1),
        "rss_mb_total": None if rss_sum is None else round(rss_sum, 1),
    }
