"""Brake items B1..B5, B0 and the whole-vehicle ratio end to end: order in -> simulated
JXGT2 (and XK3190 axle plate) -> daemon subprocess -> records on a real mosquitto.

Vehicles (tests/scenarios/brake-*.yaml): a passenger car in good order weighed on the
axle plate; a car just inside and a car just outside every rule (front-axle ratio,
unbalance, the rear-axle rule below 60 % of the axle load, parking, whole vehicle),
weighed by the tester and without noise so the values are exact; a complete three-axle
truck; the brake tester lost in the middle of a test. Plus the simulator's parking mode
against the driver, without the daemon."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers.devices.jxgt2_brake import Jxgt2BrakeTester
from gateway.evidence import EvidenceStore
from gateway.inspection.curve import parse_upload_string
from simulators.base import LanePosition, SimContext
from simulators.devices.jxgt2 import Jxgt2Sim
from simulators.faults import Fault, FaultPlan
from simulators.lane import SimDevice, SimLane
from simulators.scenario import load_scenario
from tests.drivers.stream_rig import stream_bus
from tests.harness import Station, order, running_lane, send_command
from tests.mosquitto import Mosquitto

SCENARIOS = Path(__file__).parents[1] / "scenarios"
DEVICES = {"brake": ("brake_tester", "jxgt2"), "weigher": ("axle_weigher", "xk3190")}
Records = dict[str, dict[str, Any]]


def lane_config(lane: SimLane) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    buses, devices = [], []
    for device_id, running in lane.running.items():
        device_class, protocol = DEVICES[device_id]
        bus = f"bus-{device_id}"
        buses.append({"id": bus, "url": running.url, "response_timeout_s": 1.0})
        devices.append(
            {
                "id": device_id,
                "class": device_class,
                "protocol": protocol,
                "bus": bus,
                "poll_period_s": 0.5,
            }
        )
    return buses, devices


@contextlib.asynccontextmanager
async def brake_lane(
    tmp_path: Path, port: int, scenario: str, weigher: bool = False
) -> AsyncIterator[tuple[SimLane, Station]]:
    devices = [SimDevice("brake", "jxgt2")] + ([SimDevice("weigher", "xk3190")] if weigher else [])
    sims = SimLane(load_scenario(SCENARIOS / scenario), devices)
    extra = {"procedure_time_scale": 0.02}
    async with running_lane(tmp_path, port, sims, lane_config, extra) as (_, station):
        yield sims, station


def vehicle_order(number: int, items: list[str], **fields: Any) -> dict[str, Any]:
    """An in-use passenger car of 1300 kg curb, 1700 kg gross (parking limit 20 %)."""
    body = {**order(number, items), "inspection_type": "in_use", "curb_mass_kg": 1300}
    return {**body, "gross_mass_kg": 1700, **fields}


async def inspect(station: Station, port: int, body: dict[str, Any]) -> Records:
    """Run an order to its summary; its records (this attempt's) by item code."""
    iid, attempt = body["inspection_id"], body.get("attempt", 1)

    def finished() -> int:
        return steps(station, iid).count((None, "inspection_finished"))

    before = finished()
    answer = await send_command(port, "inspect", body)
    assert answer["ok"], answer

    def records() -> Records:
        return {
            r["item_code"]: r
            for r in station.unique_results()
            if r["inspection_id"] == iid and r["attempt"] == attempt
        }

    # the summary record and the last progress event travel separately: wait for both
    await station.wait_for(lambda: finished() > before and "summary" in records(), timeout=30)
    return records()


def values(record: dict[str, Any]) -> dict[str, Any]:
    return {m["name"]: m["value"] for m in record["measurements"]}


def verdicts(record: dict[str, Any]) -> dict[str, str | None]:
    return {m["name"]: m["verdict"] for m in record["measurements"] if m["verdict"] is not None}


def steps(station: Station, iid: str) -> list[tuple[str | None, str]]:
    return [
        (p["item_code"], p["step"])
        for p in station.messages.get("progress", [])
        if p["inspection_id"] == iid
    ]


def judged(record: dict[str, Any], name: str) -> tuple[Any, str]:
    (m,) = [m for m in record["measurements"] if m["name"] == name]
    return m["value"], m["verdict"]


@pytest.mark.mqtt
async def test_passenger_car_passes_weighed_on_the_axle_plate(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with brake_lane(tmp_path, mosquitto.port, "brake-passing-car.yaml", True) as (_, st):
        body = vehicle_order(1, ["B1", "B2", "B0"], inspection_type="new_registration")
        records = await inspect(st, mosquitto.port, body)
        progress = steps(st, body["inspection_id"])
    b1, b2, b0, summary = (records[c] for c in ("B1", "B2", "B0", "summary"))
    assert [r["verdict"] for r in (b1, b2, b0, summary)] == ["pass"] * 4
    front = values(b1)
    assert front["static_load_source"] == "weigher" and "static_load_left" not in front
    assert front["static_axle_load"] == pytest.approx(950, rel=0.05)
    assert front["axle_brake_ratio"] == pytest.approx(825 / 9.31, rel=0.05)
    assert front["max_force_left"] == pytest.approx(420, rel=0.05)
    assert front["drag_force_left"] == pytest.approx(6, abs=2)
    assert set(verdicts(b1)) == {
        "drag_ratio_left",
        "drag_ratio_right",
        "axle_brake_ratio",
        "unbalance",
    }
    assert b1["limit_set"] == "GB7258-2017" and b1["devices"][0]["id"] == "brake"
    assert {d["id"] for d in b1["devices"]} == {"brake", "weigher"}
    assert values(b2)["axle_position"] == "rear" and values(b2)["lock_state"] == 0
    assert values(b0)["parking_axle"] == 2
    assert values(b0)["parking_brake_ratio"] == pytest.approx(24.9, abs=1.5)
    assert judged(summary, "vehicle_brake_ratio")[1] == "pass"
    assert values(summary)["brake_road_test_advised"] is False
    # the full curve is evidence, the record has its hash and the upload string
    (curve,) = [e for e in b1["evidence"] if e["kind"] == "brake_curve"]
    document = EvidenceStore(tmp_path / "state" / "evidence").get(curve["sha256"])
    assert document["mode"] == "service" and document["axle"] == 1
    assert curve["samples"] == len(document["left_dan"]) > 30 and curve["interval_ms"] == 10
    interval, pairs = parse_upload_string(curve["upload_string"])
    assert interval == 10 and len(pairs) == curve["samples"]
    assert max(left for left, _ in pairs) == round(max(document["left_dan"]))
    (parking,) = [e for e in b0["evidence"] if e["kind"] == "brake_curve"]
    assert parking["sha256"] != curve["sha256"]
    # progress: the steps of each axle, live forces, the vehicle staying for B0
    for step in ("brake_positioning", "brake_weighed", "brake_drag", "brake_braking"):
        assert ("B1", step) in progress
    assert ("B1", "brake_live") in progress and ("B1", "brake_lift_up") in progress
    assert ("B2", "brake_stay") in progress and ("B2", "brake_lift_up") not in progress
    assert ("B0", "brake_lift_up") in progress and ("B0", "brake_weighing") not in progress
    live = [s for s in progress if s == ("B1", "brake_live")]
    assert len(live) < curve["samples"] / 10  # a few per second, not every sample


@pytest.mark.mqtt
async def test_just_inside_every_brake_rule(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with brake_lane(tmp_path, mosquitto.port, "brake-edge-inside.yaml") as (_, station):
        records = await inspect(station, mosquitto.port, vehicle_order(1, ["B1", "B2", "B0"]))
    b1, b2, b0, summary = (records[c] for c in ("B1", "B2", "B0", "summary"))
    assert values(b1)["static_load_source"] == "brake_tester"
    assert values(b1)["static_load_left"] == 500
    assert judged(b1, "axle_brake_ratio") == (60.1, "pass")
    assert judged(b1, "unbalance") in ((23.7, "pass"), (24.0, "pass"))  # 79 (or 80) / 334
    assert judged(b2, "axle_brake_ratio") == (60.3, "pass")
    assert values(b2)["unbalance_basis"] == "max_force"
    assert judged(b2, "unbalance")[1] == "pass"
    assert judged(b0, "parking_brake_ratio") == (20.1, "pass")
    assert values(b0)["parking_force_total"] == 355 and values(b0)["vehicle_weight"] == 1800
    assert judged(summary, "vehicle_brake_ratio") == (60.2, "pass")
    assert [r["verdict"] for r in (b1, b2, b0, summary)] == ["pass"] * 4


@pytest.mark.mqtt
async def test_just_outside_every_brake_rule(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with brake_lane(tmp_path, mosquitto.port, "brake-edge-outside.yaml") as (_, station):
        records = await inspect(station, mosquitto.port, vehicle_order(1, ["B1", "B2", "B0"]))
    b1, b2, b0, summary = (records[c] for c in ("B1", "B2", "B0", "summary"))
    assert judged(b1, "axle_brake_ratio") == (59.9, "fail")
    assert judged(b1, "unbalance")[1] == "fail"  # 81 / 334 = 24.3 % > 24
    assert judged(b2, "axle_brake_ratio") == (45.0, "pass")  # a car's rear axle: >= 20 %
    assert values(b2)["unbalance_basis"] == "axle_load"
    assert judged(b2, "unbalance")[1] == "fail"  # 79 / 784 = 10.1 % > 10
    assert judged(b0, "parking_brake_ratio") == (19.9, "fail")
    assert judged(summary, "vehicle_brake_ratio") == (53.3, "fail")
    assert (values(b2)["locked_right"], values(b2)["lock_state"]) == (True, 2)
    assert values(summary)["brake_road_test_advised"] is True  # locked, yet the vehicle fails
    assert [r["verdict"] for r in (b1, b2, b0, summary)] == ["fail"] * 4


@pytest.mark.mqtt
async def test_three_axle_truck_complete(tmp_path: Path, mosquitto: Mosquitto) -> None:
    truck = {"category": "other", "axle_count": 3, "curb_mass_kg": 9000, "gross_mass_kg": 25000}
    body = vehicle_order(1, ["B1", "B2", "B3", "B0"], **truck)
    async with brake_lane(tmp_path, mosquitto.port, "brake-truck.yaml") as (_, station):
        records = await inspect(station, mosquitto.port, body)
    assert [records[c]["verdict"] for c in ("B1", "B2", "B3", "B0", "summary")] == ["pass"] * 5
    assert [values(records[c])["axle_position"] for c in ("B1", "B2", "B3")] == [
        "front",
        "rear",
        "rear",
    ]
    assert [values(records[c])["static_axle_load"] for c in ("B1", "B2", "B3")] == [
        5000,
        3000,
        3000,
    ]
    assert judged(records["B1"], "axle_brake_ratio") == (70.0, "pass")
    b2 = records["B2"]
    assert judged(b2, "axle_brake_ratio") == (55.0, "pass")  # >= 50 % for 其他汽车
    assert values(b2)["unbalance_basis"] == "axle_load"
    assert judged(b2, "unbalance") == (9.9, "pass")  # 291 / 2940, just inside 10 %
    assert values(records["B0"])["parking_axle"] == 3
    assert judged(records["B0"], "parking_brake_ratio") == (20.4, "pass")
    assert judged(records["summary"], "vehicle_brake_ratio") == (65.9, "pass")


@pytest.mark.mqtt
async def test_brake_tester_lost_mid_test_then_retried(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with brake_lane(tmp_path, mosquitto.port, "brake-edge-inside.yaml") as (sims, st):
        iid = vehicle_order(1, ["B1"])["inspection_id"]

        def braking() -> bool:
            return ("B1", "brake_live") in steps(st, iid)

        answer = await send_command(mosquitto.port, "inspect", vehicle_order(1, ["B1"]))
        assert answer["ok"], answer
        await st.wait_for(braking, timeout=20)
        sims.running["brake"].faults.inject(Fault.DISCONNECT, delay_s=0.5)
        await st.wait_for(lambda: len({r["item_code"] for r in st.unique_results()}) == 2)
        lost = {r["item_code"]: r for r in st.unique_results()}
        assert lost["B1"]["verdict"] == "aborted" and lost["B1"]["reason"]
        assert lost["summary"]["verdict"] == "aborted"
        # B0 cannot run without its axle before it; the lane stays usable
        alone = await inspect(st, mosquitto.port, vehicle_order(2, ["B0"]))
        assert alone["B0"]["verdict"] == "aborted" and "right after" in alone["B0"]["reason"]
        polls = len(st.messages.get("telemetry/brake", []))
        await st.wait_for(lambda: len(st.messages.get("telemetry/brake", [])) > polls + 1)
        retry = await inspect(st, mosquitto.port, vehicle_order(1, ["B1"], attempt=2))
    assert retry["B1"]["verdict"] == "pass" and retry["B1"]["attempt"] == 2
    assert judged(retry["B1"], "axle_brake_ratio") == (60.1, "pass")
    assert "vehicle_brake_ratio" not in values(retry["summary"])  # B1 alone: not the vehicle


async def test_simulator_parking_mode_follows_the_lane_routine() -> None:
    """After the service test of the parking axle the vehicle stays for B0 (same START);
    a lift up instead moves it on; an axle without a parking brake moves on at once."""
    scenario = load_scenario(SCENARIOS / "brake-edge-inside.yaml")
    position = LanePosition(axle_count=2)
    sim = Jxgt2Sim(SimContext(scenario, FaultPlan(), position))
    async with stream_bus(sim, FaultPlan(), "brake-bus", response_timeout=0.5) as (bus, _, _):
        tester = Jxgt2BrakeTester("brake", bus)
        await tester.lift_down()
        await tester.zero()
        await tester.run_brake_test()
        assert position.axle_index == 1 and not sim.parking_pending  # axle 1: no hand brake
        service = await tester.run_brake_test()
        assert (service.max_force_left_dan, position.axle_index) == (277, 1)  # stays for B0
        assert sim.parking_pending
        parking = await tester.run_brake_test()
        assert (parking.max_force_left_dan, parking.max_force_right_dan) == (178, 177)
        assert position.axle_index == 0 and not sim.parking_pending
        position.axle_index = 1
        await tester.run_brake_test()
        await tester.lift_up()  # no parking test: the vehicle drives on
        assert position.axle_index == 0 and not sim.parking_pending
