"""Corrupt or missing state through the real daemon: it refuses to start (exit 2, the
file named and what to do, no traceback) on a damaged, emptied, deleted or rolled-back
outbox and on a lost or foreign key, starts normally after a plain crash, and a
technician's ``lanegw state recover`` makes the next record say what was lost.

The state comes from real daemon runs (built once for the module): run 1 produces seqs
1-2 and stops cleanly (checkpointed), run 2 produces seqs 3-4 and is SIGKILLed (they are
in the ``-wal``). Each case damages a copy and starts ``lanegw run`` on it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.integrity import public_key_from_text, record_hash, signature_valid
from simulators.lane import SimDevice, SimLane
from tests.harness import (
    Daemon,
    Station,
    order,
    scenario_at_speed,
    send_command,
    serving,
    write_config,
)
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).parents[2]
SCENARIO = ROOT / "simulators" / "scenarios" / "passing-car.yaml"
OUTBOX = "outbox.sqlite3"
WAL, SHM = OUTBOX + "-wal", OUTBOX + "-shm"


@dataclass
class Template:
    """A state directory after a SIGKILL, and what the station saw of it."""

    state: Path
    records: dict[int, dict[str, Any]]  # by seq, as received
    public_key: str


def lane_yaml(directory: Path, state: Path, port: int, device_url: str) -> Path:
    return write_config(
        directory / "lane.yaml",
        state,
        port,
        buses=[{"id": "com1", "url": device_url, "response_timeout_s": 0.5}],
        devices=[
            {
                "id": "speedometer",
                "class": "speedometer_tester",
                "protocol": "tlch10",
                "bus": "com1",
                "poll_period_s": 0.5,
                "options": {"poll_interval_s": 0.02},
            }
        ],
    )


def births(station: Station) -> list[dict[str, Any]]:
    return [m for m in station.messages.get("state", []) if m["online"]]


async def run_and_inspect(
    daemon: Daemon, station: Station, port: int, number: int, seqs: set[int]
) -> None:
    """Start the daemon, wait for its birth, run one order, wait for ``seqs``."""
    before = len(births(station))
    await daemon.start()
    await station.wait_for(lambda: len(births(station)) > before)
    answer = await send_command(port, "inspect", order(number))
    assert answer["ok"], answer
    await station.wait_for(lambda: seqs <= {r["seq"] for r in station.results})


async def build_template(workdir: Path) -> Template:
    broker = Mosquitto(workdir)
    broker.start()
    sims = SimLane(scenario_at_speed(SCENARIO, 0.02), [SimDevice("speedometer", "tlch10")])
    station = Station(broker.port)
    listener = asyncio.create_task(station.run())
    try:
        async with serving(sims):
            await station.connected.wait()
            url = sims.running["speedometer"].url
            daemon = Daemon(
                lane_yaml(workdir, workdir / "state", broker.port, url), workdir / "log"
            )
            await run_and_inspect(daemon, station, broker.port, 1, {1, 2})
            assert await daemon.stop() == 0
            await run_and_inspect(daemon, station, broker.port, 2, {3, 4})
            await daemon.kill()
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        broker.stop()
    key = births(station)[-1]["public_key"]
    state = workdir / "state"
    assert (state / WAL).stat().st_size > 0, "seqs 3-4 are in the -wal after the SIGKILL"
    return Template(state, {r["seq"]: r for r in station.results}, key)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return asyncio.run(build_template(tmp_path_factory.mktemp("template")))


def copy_state(template: Template, directory: Path) -> Path:
    """A copy of the template's state directory, with a lane config next to it."""
    copy = directory / "state"
    shutil.copytree(template.state, copy, ignore=shutil.ignore_patterns("*.sock"))
    lane_yaml(directory, copy, 9, "socket://127.0.0.1:9")  # nothing listens: not needed
    return copy


@pytest.fixture
def state(template: Template, tmp_path: Path) -> Path:
    return copy_state(template, tmp_path)


def lanegw(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def damage(state: Path, *names: str, content: bytes | None = None) -> None:
    for name in names:
        path = state / name
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(content)


def truncate_half(state: Path) -> None:
    path = state / OUTBOX
    os.truncate(path, path.stat().st_size // 2)
    damage(state, WAL, SHM)


def empty_outbox(state: Path) -> None:
    damage(state, OUTBOX, content=b"")
    damage(state, WAL, SHM)


def other_key(state: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (state / "gateway.key").write_bytes(pem)


CASES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "wal deleted after SIGKILL": (
        lambda s: damage(s, WAL),
        ["the outbox's last seq is 2", "already produced seq 4"],
    ),
    "outbox overwritten": (
        lambda s: damage(s, OUTBOX, content=os.urandom(8192)),
        ["is damaged", "file is not a database"],
    ),
    "outbox truncated": (truncate_half, ["is damaged"]),
    "outbox truncated to 0 bytes": (empty_outbox, ["the outbox is missing", "up to seq 4"]),
    "outbox deleted": (
        lambda s: damage(s, OUTBOX, WAL, SHM),
        ["the outbox is missing", "up to seq 4"],
    ),
    "outbox and sequence.json deleted, key kept": (
        lambda s: damage(s, OUTBOX, WAL, SHM, "sequence.json"),
        ["the outbox is missing", "the signing key (gateway.key)"],
    ),
    "everything but the evidence deleted": (
        lambda s: damage(s, OUTBOX, WAL, SHM, "sequence.json", "gateway.key"),
        ["the outbox is missing", "the evidence archive (evidence/)"],
    ),
    "key deleted": (lambda s: damage(s, "gateway.key"), ["signing key is missing", "seq 4"]),
    "key replaced": (other_key, ["is not the one the records were signed with"]),
}


@dataclass
class Refusal:
    state: Path
    returncode: int | None
    stdout: str
    stderr: str


async def start_daemon(state: Path) -> Refusal:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "run", "--log-format", "json",
        "--config", str(state.parent / "lane.yaml"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
    except TimeoutError:  # it started: the assertions below say so
        proc.kill()
        out, err = await proc.communicate()
    return Refusal(state, proc.returncode, out.decode(), err.decode())


@pytest.fixture(scope="module")
def refusals(template: Template, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Refusal]:
    """Every case's damaged copy, the daemon started on each at once (they are
    independent processes; in parallel the module stays fast)."""
    states = {}
    for case, (change, _) in CASES.items():
        states[case] = copy_state(template, tmp_path_factory.mktemp("case"))
        change(states[case])

    async def all_of_them() -> list[Refusal]:
        return await asyncio.gather(*(start_daemon(s) for s in states.values()))

    return dict(zip(states, asyncio.run(all_of_them()), strict=True))


@pytest.mark.parametrize("case", list(CASES))
def test_the_daemon_refuses_inconsistent_state(case: str, refusals: dict[str, Refusal]) -> None:
    found, expected = refusals[case], CASES[case][1]
    assert found.returncode == 2, found.stdout[-2000:] + found.stderr[-2000:]
    assert "Traceback" not in found.stderr + found.stdout
    (line,) = found.stderr.splitlines()  # one JSON line, like the rest of the log
    event = json.loads(line)
    assert event["event"] == "start_refused" and event["exit"] == 2
    error = event["error"]
    for text in expected:
        assert text in error, error
    assert "lanegw state recover --accept-loss" in error
    assert str(found.state) in error  # names the file
    assert '"event": "record_produced"' not in found.stdout
    if case == "key deleted":
        assert not (found.state / "gateway.key").exists()  # never re-created silently


@contextlib.contextmanager
def started(state: Path) -> Iterator[subprocess.Popen[str]]:
    """The daemon on ``state`` (no broker: it starts, announces nothing, is stopped)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "run", "--log-format", "json", "--config",
         str(state.parent / "lane.yaml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(20)


def wait_for_event(proc: subprocess.Popen[str], event: str) -> list[dict[str, Any]]:
    """Read the daemon's JSON lines until ``event``; every line must be JSON."""
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(json.loads(line))
        if seen[-1]["event"] == event:
            return seen
    raise AssertionError(f"the daemon ended before {event}: {seen}")


def test_a_plain_crash_and_a_lost_sequence_record_start_normally(state: Path) -> None:
    """The SIGKILLed state itself is consistent (the -wal is replayed), and so is an
    outbox without sequence.json (an upgrade): no false alarm, the record is written."""
    (state / "sequence.json").unlink()
    with started(state) as proc:
        events = wait_for_event(proc, "gateway_starting")
    start = events[-1]
    assert start["last_seq"] == 4
    assert any(e["event"] == "sequence_record_updated" for e in events)
    assert json.loads((state / "sequence.json").read_text())["last_seq"] == 4


def test_state_check_names_the_problem_and_exits_3(state: Path) -> None:
    damage(state, WAL)
    result = lanegw("state", "check", "--json", config=state.parent / "lane.yaml")
    assert result.returncode == 3, result.stderr  # done, and the result is a failure
    report = json.loads(result.stdout)
    assert [p["code"] for p in report["problems"]] == ["sequence_behind"]
    assert report["outbox"]["last_seq"] == 2 and report["sequence"]["last_seq"] == 4


async def deliver_after_recovery(state: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """Start the recovered daemon against a broker; the records it sends and its birth."""
    tmp_path.mkdir()
    broker = Mosquitto(tmp_path)
    broker.start()
    station = Station(broker.port)
    config = lane_yaml(tmp_path, state, broker.port, "socket://127.0.0.1:9")
    daemon = Daemon(config, tmp_path / "recovered.log")
    task = asyncio.create_task(station.run())
    try:
        await station.connected.wait()
        await daemon.start()
        await station.wait_for(lambda: any(r["kind"] == "recovery" for r in station.results))
        birth = births(station)[-1]
    finally:
        assert await daemon.stop() == 0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        broker.stop()
    return [birth, *station.results]


async def test_recovery_after_a_deleted_wal_explains_the_gap(
    state: Path, template: Template, tmp_path: Path
) -> None:
    damage(state, WAL)
    config = state.parent / "lane.yaml"
    assert lanegw("state", "recover", "--technician", "Li Wei", config=config).returncode == 2
    result = lanegw(
        "state", "recover", "--accept-loss", "--technician", "Li Wei", "--json", config=config
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["problems"] == ["sequence_behind"]
    birth, *records = await deliver_after_recovery(state, tmp_path / "after")
    (recovery,) = [r for r in records if r["kind"] == "recovery"]
    assert recovery["seq"] == 5  # after the highest seq ever produced: 3 and 4 not reused
    assert recovery["prev_hash"] == record_hash(template.records[4])  # the chain goes on
    declared = recovery["recovery"]
    assert declared["problems"] == ["sequence_behind"] and not declared["chain_restarts"]
    assert 3 <= declared["lost_seq_first"] <= 4 and declared["lost_seq_last"] == 4
    assert declared["technician"] == "Li Wei" and declared["previous_public_key"] is None
    assert birth["public_key"] == template.public_key
    assert signature_valid(recovery, public_key_from_text(template.public_key))


async def test_recovery_of_a_lost_key_and_outbox_names_the_old_key(
    state: Path, template: Template, tmp_path: Path
) -> None:
    damage(state, OUTBOX, WAL, SHM, "gateway.key")
    config = state.parent / "lane.yaml"
    result = lanegw(
        "state", "recover", "--accept-loss", "--technician", "Li Wei", "--json", config=config
    )
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(result.stdout)["problems"]) == ["key_missing", "outbox_missing"]
    birth, *records = await deliver_after_recovery(state, tmp_path / "after")
    (recovery,) = [r for r in records if r["kind"] == "recovery"]
    declared = recovery["recovery"]
    assert recovery["seq"] == 5 and recovery["prev_hash"] == record_hash(template.records[4])
    assert declared["lost_seq_last"] == 4 and declared["previous_public_key"] == template.public_key
    assert birth["public_key"] != template.public_key  # a new key, announced
    assert signature_valid(recovery, public_key_from_text(birth["public_key"]))
    assert json.loads(result.stdout)["new_public_key"] == birth["public_key"]
