"""``lanegw station`` and ``lanegw key`` on bad input: a clear message and an exit code,
never a traceback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import yaml

from gateway.integrity import load_or_create_key, public_key_text
from station.config import load_station_config
from tests.harness import write_config
from tests.mosquitto import Mosquitto, free_port
from tests.station.postgres import Postgres
from tests.station.receivers import lanegw


def test_a_garbage_config_lists_every_problem_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "station.yaml"
    config.write_text(
        "station: '4401001'\n"
        "mqtt:\n"
        "  protocol: '3.1.1'\n"
        "  prot: 1883\n"
        "database:\n"
        "  url: mysql://db\n"
        "trust:\n"
        "  keys: {gw-1: not-a-key}\n"
        "timezone: Mars/Olympus\n"
    )
    result = lanegw("station", "run", "--config", str(config))
    assert result.returncode == 2
    for expected in (
        "line 4: mqtt.prot: Extra inputs are not permitted",
        "line 6: database.url: database url must start with sqlite: or postgresql://",
        "trust.keys: key of 'gw-1' is not a base64 Ed25519 key",
        "unknown time zone 'Mars/Olympus'",
    ):
        assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_shared_subscriptions_need_mqtt_5(tmp_path: Path) -> None:
    config = tmp_path / "station.yaml"
    config.write_text(yaml.safe_dump({"station": "4401001", "mqtt": {"protocol": "3.1.1"}}))
    result = lanegw("station", "run", "--config", str(config))
    assert result.returncode == 2 and "share_group needs MQTT 5" in result.stderr


def test_an_unreachable_database_is_said_plainly(tmp_path: Path) -> None:
    config = tmp_path / "station.yaml"
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/station"
    config.write_text(yaml.safe_dump({"station": "4401001", "database": {"url": url}}))
    result = lanegw("station", "run", "--config", str(config))
    assert result.returncode == 2
    assert "cannot connect to PostgreSQL" in result.stderr and "Traceback" not in result.stderr
    missing = tmp_path / "nowhere.yaml"
    missing.write_text(yaml.safe_dump({"station": "4401001", "database": {"url": "sqlite:x.db"}}))
    status = lanegw("station", "status", "--config", str(missing))
    assert status.returncode == 1 and "no database at x.db" in status.stderr


def test_the_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "config" / "station.example.yaml"
    config = load_station_config(example)
    assert config.mqtt.share_group == "lanegw-receivers" and config.trust.mode == "pinned"


def test_key_prints_the_line_to_pin_a_gateway(tmp_path: Path) -> None:
    bus = {"id": "com1", "url": "socket://127.0.0.1:1"}
    device = {
        "id": "speedometer",
        "class": "speedometer_tester",
        "protocol": "tlch10",
        "bus": "com1",
    }
    lane = write_config(tmp_path / "lane.yaml", tmp_path / "state", 1883, [bus], [device])
    none_yet = lanegw("key", "--config", str(lane))
    assert none_yet.returncode == 1 and "first start" in none_yet.stderr
    key = load_or_create_key(tmp_path / "state" / "gateway.key")
    result = lanegw("key", "--config", str(lane))
    assert result.returncode == 0, result.stderr
    line = yaml.safe_load(result.stdout)
    assert line == {"lanegw-4401001-L1": public_key_text(key.public_key())}
    pinned = tmp_path / "station.yaml"
    pinned.write_text(
        yaml.safe_dump({"station": "4401001", "trust": {"mode": "pinned", "keys": line}})
    )
    assert load_station_config(pinned).trust.keys == line


def test_check_tries_the_database_and_the_broker(
    tmp_path: Path, mosquitto: Mosquitto, postgres: Postgres
) -> None:
    good = tmp_path / "good.yaml"
    database = postgres.database()
    good.write_text(yaml.safe_dump({"station": "4401001", "mqtt": {"port": mosquitto.port},
                                    "database": {"url": database}}))  # fmt: skip
    result = lanegw("station", "check", "-c", str(good), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert all(c["ok"] for c in checks.values())
    assert checks["database"]["detail"].startswith("PostgreSQL 127.0.0.1:")
    new_file = tmp_path / "new.yaml"
    new_file.write_text(yaml.safe_dump({"station": "4401001", "mqtt": {"port": mosquitto.port},
                                        "database": {"url": f"sqlite:{tmp_path}/db/s.sqlite3"}}))  # fmt: skip
    fresh = lanegw("station", "check", "-c", str(new_file))
    assert fresh.returncode == 0 and "will be created at the first start" in fresh.stdout
    assert not (tmp_path / "db").exists()  # a check changes nothing

    bad = tmp_path / "bad.yaml"
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/x"
    bad.write_text(yaml.safe_dump({"station": "4401001", "mqtt": {"port": free_port()},
                                   "database": {"url": url}}))  # fmt: skip
    failed = lanegw("station", "check", "-c", str(bad))
    assert failed.returncode == 1
    assert "✗ database: cannot connect to PostgreSQL" in failed.stdout
    assert "✗ broker: 127.0.0.1:" in failed.stdout
    assert "secret" not in failed.stdout and "Traceback" not in failed.stderr


def test_a_broker_that_never_answers_is_said_to_give_no_answer(tmp_path: Path) -> None:
    """A port that accepts the connection and then stays silent (a firewall, a hung
    broker): the check says "no answer", not an empty reason."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel accepts the TCP connection; no MQTT answer ever comes
        config = tmp_path / "silent.yaml"
        config.write_text(yaml.safe_dump({"station": "4401001",
                                          "mqtt": {"port": silent.getsockname()[1]},
                                          "database": {"url": f"sqlite:{tmp_path}/s.sqlite3"}}))  # fmt: skip
        result = lanegw("station", "check", "-c", str(config))
    assert result.returncode == 1
    assert "✗ broker: 127.0.0.1:" in result.stdout and "no answer within 10 s" in result.stdout


def test_station_times_are_shown_in_the_station_zone_with_its_offset() -> None:
    """Stored times are UTC; the CLI shows them as the export does, in local time, and
    says which (the offset), so nobody reads 12:01 UTC as a local 12:01."""
    from zoneinfo import ZoneInfo

    from station.cli import local_time

    shanghai = ZoneInfo("Asia/Shanghai")
    assert local_time("2026-11-28T12:01:02.123456+00:00", shanghai) == "2026-11-28 20:01:02 +08:00"
    assert local_time("2026-07-01T00:00:00+00:00", ZoneInfo("Europe/Berlin")).endswith("+02:00")
    assert local_time(None, shanghai) == "-"
