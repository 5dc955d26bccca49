"""The regulator hand-off end to end: two whole simulated lanes (real gateways, simulated
brake, headlamp, speedometer testers, gas analyser and opacimeter), mosquitto,
``lanegw station run`` with the uploader on PostgreSQL, the fake 公安部 service and the
fake environmental platform.

One story, as a station lives it: the lanes start locked (no daily check uploaded); a
check the platform refuses keeps its lane locked; accepted checks unlock both. Two
inspections arrive complete and in order at both platforms, one with a refused 18C81
alarmed with its evidence, sent again with ``lanegw station upload --retry``. Then the
PSB goes down in the middle of an inspection's sequence, the station is SIGKILLed, comes
back with the platform: nothing missing, nothing accepted sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from asyncio.subprocess import PIPE
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from station.store import RecordStore
from tests.mosquitto import Mosquitto
from tests.station.postgres import Postgres
from tests.station.receivers import Receiver, station_config, wait_until
from tests.station.upload.fakes import FakeEnv, FakePsb
from tests.station.upload.lanes import DIESEL, PETROL, FullLane, full_lanes

ITEMS = ("B1", "B2", "B0", "H1", "H4", "S1", "TSI")  # L1: petrol, two-speed idle
DIESEL_ITEMS = ("B1", "B2", "B0", "H1", "H4", "S1", "FA")  # L2: diesel, free acceleration


def expected_psb(items: tuple[str, ...]) -> list[tuple[str, str | None]]:
    calls: list[tuple[str, str | None]] = []
    for item in items:
        if item in ("TSI", "FA"):
            calls.append(("18C83", None))
        else:
            calls += [("18C55", item), ("18C81", item), ("18C58", item)]
    return [*calls, ("18C82", None), ("18C59", None)]


def vin(number: int) -> str:
    return f"LSVAU2180N21832{number:02d}"


def upload_config(psb: FakePsb, env: FakeEnv) -> dict[str, Any]:
    return {
        "enabled": True,
        "poll_interval_s": 0.2,
        "retry_min_s": 0.2,
        "retry_max_s": 1.0,
        "lease_s": 3.0,
        "lock_interval_s": 0.5,
        "psb": {"url": psb.url, "jkxlh": psb.jkxlh, "station_code": "4401001000",
                "lane_codes": {"L1": "01", "L2": "02"}, "timeout_s": 2.0,
                "station_name": "广州测试检测站", "software_id": "BA0001"},
        "environmental": {"url": env.url, "jksqm": env.jksqm, "timeout_s": 2.0,
                          "daily_checks": {"gas_analyser": ["leak"]}},
    }  # fmt: skip


@contextlib.asynccontextmanager
async def platforms() -> AsyncIterator[tuple[FakePsb, FakeEnv]]:
    psb, env = FakePsb(), FakeEnv()
    await psb.start()
    await env.start()
    try:
        yield psb, env
    finally:
        await psb.close()
        await env.close()


async def locks(lane: FullLane) -> dict[str, list[str]]:
    answer = await lane.command("lockouts", {})
    assert answer["ok"], answer
    return dict(answer["result"]["locked"])


async def rows(database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    store = await RecordStore.open(database, "test-reader")
    try:
        async with store.db.transaction() as tx:
            return await tx.all(sql, params)
    finally:
        await store.close()


async def cli(*args: str) -> tuple[int, str, str]:
    """The CLI as a technician runs it, without blocking the simulators' event loop."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, stdout=PIPE, stderr=PIPE, env=env
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def assert_env_inspection(env: FakeEnv, number: int) -> None:
    method = "TSI" if number % 2 else "FA"  # odd: L1 petrol (DIDLE), even: L2 diesel
    """Registration, then the per-second rows in order, then the result, each once."""
    (reg,) = [r for r in env.accepted("downInspRegInfo") if r.values["VIN"] == vin(number)]
    inspregid = env.registrations[vin(number) + "4401001"]
    mine = [r for r in env.accepted() if r.values.get("inspregid") == inspregid]
    calls = [r.call for r in mine]
    assert calls[-1] == "uploadInspResult" and calls.count("uploadInspResult") == 1
    serials = [int(r.values["serialno"]) for r in mine if r.call == "uploadInspProcess"]
    assert len(serials) > 30, serials  # the emission test, second by second
    assert {r.item for r in mine} == {method}  # DIDLE / LIGHTPROOF rows and result
    assert serials == sorted(set(serials)), "per-second rows out of order or sent twice"
    assert env.received.index(reg) < env.received.index(mine[0])


@pytest.mark.timeout(300)  # one long story; on a loaded CI machine it takes minutes
async def test_inspections_reach_both_platforms_complete_in_order_and_once(
    tmp_path: Path, mosquitto: Mosquitto, postgres: Postgres
) -> None:
    database = postgres.database()
    async with platforms() as (psb, env):
        config = station_config(tmp_path / "station.yaml", mosquitto.port, database,
                                upload=upload_config(psb, env))  # fmt: skip
        receiver = Receiver(config, tmp_path / "station.log")
        await receiver.start()
        try:
            async with full_lanes(tmp_path, ("L1", "L2"), mosquitto.port) as (l1, l2):
                await check_locks(l1, l2, env, config, database)
                await refused_result_and_retry(l1, l2, psb, env, config, database)
                receiver = await outage_and_kill(l1, l2, psb, env, config, receiver, tmp_path,
                                                 database)  # fmt: skip

                async def drained() -> bool:
                    return l1.outbox_depth() == l2.outbox_depth() == 0

                await wait_until(drained, timeout=60)
            assert psb.problems == [] and env.problems == []
            listed, table, status = await asyncio.gather(
                cli("station", "uploads", "-c", str(config), "--json", "--limit", "5000"),
                cli("station", "uploads", "-c", str(config), "--platform", "psb", "--status",
                    "accepted", "--limit", "3"),
                cli("station", "status", "-c", str(config), "--json"),
            )  # fmt: skip
            assert listed[0] == 0, listed  # nothing refused
            counts = json.loads(listed[1])["counts"]
            assert set(counts) == {"accepted"}, counts
            assert table[0] == 0 and "18C59" in table[1] and "KEY" in table[1]
            report = json.loads(status[1])
            assert report["open_alarms"] == 0, report["alarms"]
        finally:
            assert await receiver.stop() == 0


async def check_locks(
    l1: FullLane, l2: FullLane, env: FakeEnv, config: Path, database: str
) -> None:
    """No check uploaded: the platform would lock both analysers, so the station does."""

    async def both_locked() -> bool:
        return "analyser" in await locks(l1) and "analyser" in await locks(l2)

    await wait_until(both_locked, timeout=60)
    reason = (await locks(l1))["analyser"]
    assert reason == ["environmental: daily leak check not uploaded to the environmental platform"]
    # L2's leak check is refused by the platform: L2 stays locked, with the platform's answer
    env.refuse_checks["1"] = ("0", "检测设备未备案")
    ok = await l2.command("check", {"device": "analyser", "kind": "leak", "technician": "T042"})
    assert ok["ok"] and ok["result"]["passed"], ok

    async def l2_refused() -> bool:
        return any("refused" in r for r in (await locks(l2)).get("analyser", []))

    await wait_until(l2_refused, timeout=60)
    assert (await locks(l2))["analyser"] == [
        "environmental: leak check refused by the environmental platform: 0 检测设备未备案"
    ]
    env.refuse_checks.clear()
    for lane in (l1, l2):
        answer = await lane.command(
            "check", {"device": "analyser", "kind": "leak", "technician": "T042"}
        )
        assert answer["ok"], answer

    async def unlocked() -> bool:
        return await locks(l1) == {} and await locks(l2) == {}

    await wait_until(unlocked, timeout=60)
    (opcode,) = {r.values["opcode"] for r in env.accepted("uploadInspStmDeviceRecord")}
    assert opcode == "1" and len(env.accepted("uploadInspStmDeviceRecord")) == 2
    assert {r.values["extn01"] for r in env.accepted("uploadInspStmDeviceRecord")} == {"1"}
    # the refused check, sent again by the technician, is taken now
    (refused,) = await rows(database, "SELECT upload_id FROM uploads WHERE status = 'refused'")
    assert (await cli("station", "upload", "--retry", refused[0], "-c", str(config)))[0] == 0
    await env.wait_for(lambda: len(env.accepted("uploadInspStmDeviceRecord")) == 3)


async def refused_result_and_retry(
    l1: FullLane, l2: FullLane, psb: FakePsb, env: FakeEnv, config: Path, database: str
) -> None:
    """Inspection 1 (L1): its H4 result is refused; inspection 2 (L2) goes through."""
    psb.refuse[("18C81", "H4")] = ("-8101", "前照灯检验数据不合法")
    one = await l1.inspect(1, ITEMS, vin=vin(1), **PETROL)
    two_items = tuple(i for i in DIESEL_ITEMS if i != "H4")
    two = await l2.inspect(2, two_items, vin=vin(2), **DIESEL)
    await psb.wait_for(lambda: psb.calls_of(two)[-1:] == [("18C59", None)], timeout=120)
    assert psb.calls_of(two) == expected_psb(two_items)
    await psb.wait_for(
        lambda: bool(
            [r for r in psb.received if r.values.get("jylsh") == one and r.code == "-8101"]
        )
    )
    # the chain stops at the refusal: H4 not ended, S1 and the verdict not sent
    accepted = psb.calls_of(one)
    assert accepted == expected_psb(ITEMS)[: accepted.index(("18C55", "H4")) + 1]
    (alarm,) = await rows(database, "SELECT detail, payload, lane FROM alarms WHERE kind = %s"
                          " AND detail LIKE %s AND resolved_at IS NULL", "upload_refused",
                          "%18C81%")  # fmt: skip
    assert "-8101 前照灯检验数据不合法" in alarm[0] and alarm[2] == "L1"
    kept = json.loads(alarm[1])
    assert "<jkid>18C81</jkid>" in kept["request"] and "ywygqd" in kept["request"]
    assert "writeObjectOutReturn" in kept["response"]
    code, text, _ = await cli("station", "uploads", "-c", str(config), "--status", "refused",
                              "--json")  # fmt: skip
    assert code == 1  # a refusal is open
    (row,) = [u for u in json.loads(text)["uploads"] if u["platform"] == "psb"]
    assert (row["call"], row["item_code"], row["code"]) == ("18C81", "H4", "-8101")
    # fixed at the platform: sent again, the rest of the sequence follows
    psb.refuse.clear()
    code, text, err = await cli("station", "upload", "--retry", row["upload_id"], "-c", str(config))
    assert code == 0 and "queued again" in text, err
    await psb.wait_for(lambda: psb.calls_of(one)[-1:] == [("18C59", None)], timeout=120)
    assert psb.calls_of(one) == expected_psb(ITEMS)
    code, _, err = await cli("station", "upload", "--retry", row["upload_id"], "-c", str(config))
    assert code == 1 and "not sent again" in err
    await env.wait_for(lambda: len(env.accepted("uploadInspResult")) == 2)
    for number in (1, 2):
        assert_env_inspection(env, number)
    assert_no_accepted_call_twice(psb)


def assert_no_accepted_call_twice(psb: FakePsb) -> None:
    seen = Counter((r.values.get("jylsh"), r.call, r.item) for r in psb.accepted()
                   if r.call != "18C50")  # fmt: skip
    assert [key for key, n in seen.items() if n > 1] == []


async def outage_and_kill(
    l1: FullLane, l2: FullLane, psb: FakePsb, env: FakeEnv, config: Path,
    receiver: Receiver, tmp_path: Path, database: str,
) -> Receiver:  # fmt: skip
    """The PSB goes down after inspection 3's first four calls; the station is killed
    while it retries; both come back; inspections 3 and 4 complete, nothing twice."""
    three_id = "44010012026112003"
    psb.outage_after = (three_id, 4)
    three = await l1.inspect(3, ITEMS, vin=vin(3), **PETROL)
    four = await l2.inspect(4, DIESEL_ITEMS, vin=vin(4), **DIESEL)
    assert three == three_id
    await env.wait_for(lambda: len(env.accepted("uploadInspResult")) == 4, timeout=120)
    await psb.wait_for(lambda: psb.unavailable >= 5, timeout=120)  # retried meanwhile
    assert len(psb.calls_of(three)) == 4

    async def recorded() -> bool:  # the station knows what was accepted (kill after that)
        found = await rows(database, "SELECT COUNT(*) FROM uploads WHERE status = 'accepted'"
                           " AND (call = %s OR (inspection_id = %s AND platform = 'psb'))",
                           "uploadInspResult", three)  # fmt: skip
        return int(found[0][0]) == 4 + 4

    await wait_until(recorded, timeout=60)
    await receiver.kill()  # SIGKILL, mid-sequence
    psb.outage_after = None
    restarted = Receiver(config, tmp_path / "station-2.log")
    await restarted.start()
    for number, items in ((three, ITEMS), (four, DIESEL_ITEMS)):
        await psb.wait_for(lambda n=number: psb.calls_of(n)[-1:] == [("18C59", None)],
                           timeout=120)  # fmt: skip
        assert psb.calls_of(number) == expected_psb(items)
    for n in (3, 4):
        assert_env_inspection(env, n)
    assert_no_accepted_call_twice(psb)
    return restarted
