"""The dyno methods' regulator hand-off end to end: a real gateway on the simulated dyno
lane (XinCheng dyno, NHA-503, FLV-1000, FLB-100, ELM327: tests/inspection/test_dyno_items.py),
mosquitto, ``lanegw station run`` with the uploader (SQLite), the fake environmental
platform and the fake 公安部 service.

The lane starts with its dyno locked (no coast-down uploaded); a coast-down the platform
refuses keeps it locked with the platform's answer; sent again and accepted, it unlocks.
Then an OBD + ASM inspection and a lug-down inspection arrive at the environmental fake
with their per-second rows (second by second from 1, in order, each once) between the
registration and the result, the OBD result before the ASM rows, and at the PSB as 18C83
with the method's code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from simulators.devices.dyno_physics import plant_of
from tests.harness import order, send_command
from tests.inspection.test_dyno_items import DIESEL_LUG, LUG_SCALE, PETROL_ASM, Lane, dyno_lane
from tests.mosquitto import Mosquitto
from tests.station.receivers import Receiver, station_config, wait_until
from tests.station.upload.fakes import FakeEnv, FakePsb, Received
from tests.station.upload.test_upload_e2e import cli, platforms, rows

LOCKED = "environmental: daily coast_down check not uploaded to the environmental platform"
REFUSED = "environmental: coast_down check refused by the environmental platform: 0 测功机未备案"


def upload_config(psb: FakePsb, env: FakeEnv) -> dict[str, Any]:
    return {
        "enabled": True, "poll_interval_s": 0.2, "retry_min_s": 0.2, "retry_max_s": 1.0,
        "lease_s": 3.0, "lock_interval_s": 0.5,
        "psb": {"url": psb.url, "jkxlh": psb.jkxlh, "station_code": "4401001000",
                "station_name": "广州测试检测站", "timeout_s": 2.0},
        "environmental": {"url": env.url, "jksqm": env.jksqm, "timeout_s": 2.0,
                          "station_code": "4401001000",
                          "daily_checks": {"chassis_dynamometer": ["coast_down"]}},
    }  # fmt: skip


async def dyno_locks(lane: Lane) -> list[str]:
    answer = await send_command(lane.port, "lockouts", {})
    assert answer["ok"], answer
    return list(answer["result"]["locked"].get("dyno", []))


def method_rows(env: FakeEnv, inspection_vin: str, item: str) -> list[Received]:
    """The accepted calls of one inspection (by its registration), in arrival order."""
    inspregid = env.registrations[inspection_vin + "4401001000"]
    return [r for r in env.accepted() if r.values.get("inspregid") == inspregid and
            (r.item == item or r.call == "uploadInspResultOBD")]  # fmt: skip


def assert_rows_complete_in_order(calls: list[Received], item: str) -> None:
    serials = [int(r.values["serialno"]) for r in calls if r.call == "uploadInspProcess"]
    assert serials[0] == 1, serials[:5]  # second by second, from 1
    assert serials == sorted(set(serials)), "per-second rows out of order or sent twice"
    # the live stream is QoS 0 (the newest wins under load): most seconds have their row
    assert len(serials) >= 0.8 * serials[-1] and serials[-1] >= 20, serials
    assert [r.call for r in calls][-1] == "uploadInspResult"
    assert [r.call for r in calls].count("uploadInspResult") == 1
    assert {r.item for r in calls if r.call.startswith("uploadInsp")} <= {item, None}


@pytest.mark.mqtt
@pytest.mark.timeout(240)
async def test_dyno_lane_uploads_its_check_rows_and_results(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with platforms() as (psb, env):
        config = station_config(tmp_path / "station.yaml", mosquitto.port,
                                f"sqlite:{tmp_path}/station.sqlite3",
                                upload=upload_config(psb, env))  # fmt: skip
        receiver = Receiver(config, tmp_path / "station.log")
        await receiver.start()
        try:
            lane_dir = tmp_path / "lane"
            lane_dir.mkdir()
            async with dyno_lane(lane_dir, mosquitto.port, "dyno-empty-rollers.yaml",
                                 LUG_SCALE) as lane:  # fmt: skip
                await coast_down_locks_and_unlocks(lane, env, config)
                await asm_and_lug_down_arrive(lane, psb, env)
            assert env.problems == [] and psb.problems == []
        finally:
            assert await receiver.stop() == 0


async def coast_down_locks_and_unlocks(lane: Lane, env: FakeEnv, config: Path) -> None:
    async def locked_with(reason: str) -> bool:
        return await dyno_locks(lane) == [reason]

    await wait_until(lambda: locked_with(LOCKED), timeout=60)
    env.refuse_checks["7"] = ("0", "测功机未备案")  # opcode 7: coast-down (env.yaml)
    coast = await send_command(lane.port, "check", {"device": "dyno", "kind": "coast_down", "technician": "T042"},
                               timeout=120)  # fmt: skip
    assert coast["ok"] and coast["result"]["passed"], coast
    await wait_until(lambda: locked_with(REFUSED), timeout=60)
    refused = await send_command(lane.port, "inspect", {**order(1, ["ASM"]), **PETROL_ASM})
    assert not refused["ok"] and "coast_down check refused" in refused["error"], refused
    # registered at the platform: the technician sends it again, it is taken, the lock lifts
    env.refuse_checks.clear()
    (row,) = await rows(config_db(config), "SELECT upload_id FROM uploads"
                        " WHERE status = 'refused'")  # fmt: skip
    code, _, err = await cli("station", "upload", "--retry", row[0], "-c", str(config))
    assert code == 0, err

    async def unlocked() -> bool:
        return await dyno_locks(lane) == []

    await wait_until(unlocked, timeout=60)
    (check,) = env.accepted("uploadInspStmDeviceRecord")
    assert check.values["opcode"] == "7" and check.values["result"] == "1"
    assert check.values["extn01"] == str(coast["result"]["measurements"][0]["value"])


def config_db(config: Path) -> str:
    return str(yaml.safe_load(config.read_text())["database"]["url"])


async def asm_and_lug_down_arrive(lane: Lane, psb: FakePsb, env: FakeEnv) -> None:
    lane.swap("dyno-asm-clean.yaml")
    plant = plant_of(lane.sims.position)
    assert plant is not None
    plant.lifted = True  # the coast check left the lift down; the car drives on over it
    asm_id = await lane.inspect(["OBD", "ASM"], timeout=120, **PETROL_ASM)
    lane.swap("dyno-lug-down-pass.yaml")
    lug_vin = "LSVAU2180N2183295"
    lug_id = await lane.inspect(["LUG"], timeout=120, vin=lug_vin, **DIESEL_LUG)
    assert lane.record(asm_id, "ASM")["verdict"] == "pass", lane.record(asm_id, "ASM")["reason"]
    assert lane.record(lug_id, "LUG")["verdict"] == "pass", lane.record(lug_id, "LUG")["reason"]
    await env.wait_for(lambda: len(env.accepted("uploadInspResult")) == 2, timeout=60)
    asm = method_rows(env, "LSVAU2180N2183294", "ASM")
    assert asm[0].call == "uploadInspResultOBD"  # in test order: OBD first
    assert_rows_complete_in_order(asm[1:], "ASM")
    opcodes = [r.values["opcode"] for r in asm if r.call == "uploadInspProcess"]
    assert {"1", "2"} <= set(opcodes) <= {"1", "2", "3"}  # 5025 accelerate, fast check
    assert opcodes == sorted(opcodes)
    result = asm[-1].values
    assert result["TestType"] == "5" and result["TestJudge"] == "1"
    assert result["HC5025Judge"] == "1" and result["HC2540Judge"] == ""  # 2540 not run
    lug = method_rows(env, lug_vin, "LUG")
    assert_rows_complete_in_order(lug, "LUG")
    opcodes = [r.values["opcode"] for r in lug if r.call == "uploadInspProcess"]
    assert opcodes == sorted(opcodes) and {"0", "1", "2", "3", "4"} <= set(opcodes)
    assert lug[-1].values["TestType"] == "7" and lug[-1].values["K80Judge"] == "1"
    # the PSB has the methods as 18C83 (稳态 2, 加载减速 6)
    await psb.wait_for(lambda: len(psb.accepted("18C83")) == 2, timeout=60)
    jyfs = {r.values["jylsh"]: r.values["jyfs"] for r in psb.accepted("18C83")}
    assert jyfs == {asm_id: "2", lug_id: "6"}
