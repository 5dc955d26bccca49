"""Access: TLS with server verification, password auth, per-lane ACLs (the example ACL
file shipped in config/mosquitto), secrets that must not be readable by others."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from simulators.lane import SimDevice, SimLane
from tests.harness import Daemon, order, scenario_at_speed, serving, write_config
from tests.mosquitto import Mosquitto, free_port
from tests.tlsca import make_ca_and_server

ROOT = Path(__file__).parents[2]
L1 = "lanegw/4401001/L1"
USERS = {"lane-4401001-L1": "pw-lane-1", "lane-4401001-L2": "pw-lane-2", "station-4401001": "pw-st"}


@pytest.fixture
def secure_broker(tmp_path: Path) -> Any:
    ca, cert, key = make_ca_and_server(tmp_path)
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        flags = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *flags, "-b", str(passwd), user, password], check=True)
    port = free_port()
    listener = (
        f"listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
        f"allow_anonymous false\npassword_file {passwd}\n"
        f"acl_file {ROOT / 'config' / 'mosquitto' / 'lanegw.acl'}\n"
    )
    broker = Mosquitto(tmp_path, port, listener)
    broker.start()
    yield broker, ca
    broker.stop()


@contextlib.asynccontextmanager
async def client(port: int, ca: Path, user: str, password: str) -> AsyncIterator[aiomqtt.Client]:
    context = ssl.create_default_context(cafile=str(ca))
    async with aiomqtt.Client(
        "127.0.0.1", port, username=user, password=password, tls_context=context
    ) as mqtt:
        yield mqtt


async def collect(mqtt: aiomqtt.Client, into: list[tuple[str, Any]]) -> None:
    async for message in mqtt.messages:
        into.append((str(message.topic), json.loads(message.payload)))  # type: ignore[arg-type]


async def wait_until(predicate: Any, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def test_other_lane_cannot_command_or_read_this_lane(
    tmp_path: Path, secure_broker: Any
) -> None:
    """Must hold: over TLS with the shipped ACLs, the station commands lane L1 and reads its
    records; a client with lane L2's credentials can neither command L1 nor read L1's
    results; a wrong password is refused."""
    broker, ca = secure_broker
    password_file = tmp_path / "l1-password"
    password_file.write_text(USERS["lane-4401001-L1"])
    password_file.chmod(0o600)
    sims = SimLane(
        scenario_at_speed(ROOT / "simulators/scenarios/passing-car.yaml", 0.02),
        [SimDevice("speedometer", "tlch10")],
    )
    station_seen: list[tuple[str, Any]] = []
    intruder_seen: list[tuple[str, Any]] = []
    tasks: list[asyncio.Task[None]] = []
    async with serving(sims):
        config = write_config(
            tmp_path / "lane.yaml",
            tmp_path / "state",
            broker.port,
            buses=[{"id": "com1", "url": sims.running["speedometer"].url}],
            devices=[
                {
                    "id": "speedometer",
                    "class": "speedometer_tester",
                    "protocol": "tlch10",
                    "bus": "com1",
                    "options": {"poll_interval_s": 0.02},
                }
            ],
            username="lane-4401001-L1",
            password_file=str(password_file),
            tls={"enabled": True, "ca_file": str(ca)},
        )
        daemon = Daemon(config, tmp_path / "daemon.log")
        async with (
            client(broker.port, ca, "station-4401001", USERS["station-4401001"]) as station,
            client(broker.port, ca, "lane-4401001-L2", USERS["lane-4401001-L2"]) as intruder,
        ):
            await station.subscribe(f"{L1}/#", qos=1)
            await intruder.subscribe(f"{L1}/#", qos=1)
            tasks.append(asyncio.create_task(collect(station, station_seen)))
            tasks.append(asyncio.create_task(collect(intruder, intruder_seen)))
            await daemon.start()
            try:
                await wait_until(
                    lambda: any(t == f"{L1}/state" and m["online"] for t, m in station_seen)
                )
                stolen = dict(order(66), items=["S1"])
                await intruder.publish(f"{L1}/cmd/inspect", json.dumps({"args": stolen}), qos=1)
                await station.publish(f"{L1}/cmd/inspect", json.dumps({"args": order(1)}), qos=1)
                await wait_until(lambda: sum(t == f"{L1}/results" for t, _ in station_seen) >= 2)
                await asyncio.sleep(0.5)  # time for anything that leaked to arrive
            finally:
                await daemon.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    accepted = [e["inspection_id"] for e in daemon.log_events("order_accepted")]
    assert accepted == [order(1)["inspection_id"]]  # the intruder's order never reached it
    assert intruder_seen == []  # nothing of lane L1 readable with lane L2's credentials
    with pytest.raises(aiomqtt.MqttError):
        async with client(broker.port, ca, "station-4401001", "wrong"):
            pass


def test_world_readable_password_file_is_refused(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("secret")
    password_file.chmod(0o644)
    config = write_config(
        tmp_path / "lane.yaml",
        tmp_path / "state",
        1883,
        buses=[{"id": "com1", "url": "socket://127.0.0.1:9"}],
        devices=[{"id": "s", "class": "speedometer_tester", "protocol": "tlch10", "bus": "com1"}],
        username="lane",
        password_file=str(password_file),
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "world-readable" in result.stderr and "chmod o-r" in result.stderr
    assert "secret" not in result.stderr + result.stdout  # never logged
