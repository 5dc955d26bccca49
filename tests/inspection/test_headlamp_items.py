"""Headlamp items H1..H4: the pure calculations, the limit keys, and end to end (order in
-> simulated MQD-6A -> daemon subprocess -> records on a real mosquitto) a vehicle just
inside and just outside each rule: 2-lamp and 4-lamp, new and in-use, the four-lamp rule,
the total of all high beams; one tester run per inspection; no lamp found; a failed run.

Each lane test runs several vehicles through one daemon (like cars through a lane): the
simulator's lamps are swapped from tests/scenarios/headlamp-*.yaml between orders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.evidence import EvidenceStore
from gateway.inspection.headlamp import HeadlampItem
from gateway.inspection.headlamp_calc import (
    PAIRS,
    POSITIONS,
    TABLE_ROWS,
    TOTAL_KEY,
    best_pair,
    expected_high_slots,
    four_lamp_verdict,
    intensity_key,
    offset_measurements,
    pair_rule_key,
    table_row,
    total_high_cd,
)
from gateway.inspection.order import VehicleCategory
from gateway.inspection.procedures import PROCEDURES
from gateway.limits import load_table
from gateway.records import Verdict
from simulators.faults import Fault
from simulators.lane import SimDevice, SimLane
from simulators.scenario import load_scenario
from tests.harness import Station, order, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto

SCENARIOS = Path(__file__).parents[1] / "scenarios"
TABLE = load_table("gb7258-2017")
HIGH_SLOTS = ["left_main_high", "right_main_high", "left_aux_high", "right_aux_high"]


# --- pure calculations --------------------------------------------------------------------
def test_positions_follow_the_psb_item_codes() -> None:
    assert {c: (p.side, p.lamp) for c, p in POSITIONS.items()} == {
        "H1": ("left", "main"),
        "H2": ("left", "aux"),
        "H3": ("right", "aux"),
        "H4": ("right", "main"),
    }
    assert POSITIONS["H1"].high_slot == "left_main_high" and POSITIONS["H1"].low_slot == "left_low"
    assert POSITIONS["H3"].high_slot == "right_aux_high" and POSITIONS["H3"].low_slot is None
    assert all(isinstance(PROCEDURES[code], HeadlampItem) for code in POSITIONS)


def test_every_order_category_has_a_row_and_every_row_its_keys() -> None:
    assert set(TABLE_ROWS) == {c.value for c in VehicleCategory}
    assert table_row("trailer") is None and table_row("no_such") is None
    for row in {r for r in TABLE_ROWS.values() if r is not None} | {"car_lt70kmh"}:
        for kind in ("new_registration", "in_use"):
            for system in (2, 4):
                assert intensity_key(row, kind, system) in TABLE.limits
            assert pair_rule_key(row, kind) in TABLE.limits
    for row in ("tricycle", "motorcycle", "moped"):
        for kind in ("new_registration", "in_use"):
            for system in (1, 2):
                assert intensity_key(row, kind, system) in TABLE.limits


def test_limit_values_and_confidence_as_in_standards_md() -> None:
    def low(key: str) -> float | None:
        return TABLE.limits[key].low

    assert [
        low(intensity_key("car", k, n)) for k in ("new_registration", "in_use") for n in (2, 4)
    ] == [
        18000,
        15000,
        15000,
        12000,
    ]
    assert TABLE.limits[intensity_key("car", "in_use", 2)].confidence == "sec"
    assert TABLE.limits[pair_rule_key("car", "in_use")].confidence == "mem"  # the rule is [MEM]
    assert TABLE.limits[intensity_key("car_lt70kmh", "in_use", 2)].confidence == "mem"
    assert low(intensity_key("moped", "in_use", 2)) == 2500
    assert TABLE.limits[TOTAL_KEY].high == 430000 and TABLE.limits[TOTAL_KEY].low is None
    for key, entry in TABLE.limits.items():
        if key.startswith("headlamp_"):
            assert entry.unit == "cd" and entry.source.startswith("GB 7258-2017")


def test_limits_are_inclusive_at_the_boundary() -> None:
    key = intensity_key("car", "in_use", 2)
    assert TABLE.judge(key, "x", 15000).verdict is Verdict.PASS
    assert TABLE.judge(key, "x", 14999).verdict is Verdict.FAIL
    assert TABLE.judge(TOTAL_KEY, "x", 430000).verdict is Verdict.PASS
    assert TABLE.judge(TOTAL_KEY, "x", 430001).verdict is Verdict.FAIL


intensities = st.dictionaries(
    st.sampled_from([*HIGH_SLOTS, "left_low", "right_low"]), st.integers(0, 999_900)
)


@given(intensities)
def test_total_counts_high_beams_only(values: dict[str, int]) -> None:
    expected = sum(v for k, v in values.items() if k.endswith("_high"))
    assert total_high_cd(values) == expected


@given(intensities)
def test_best_pair_is_the_complete_pair_with_the_brightest_weaker_lamp(
    values: dict[str, int],
) -> None:
    result = best_pair(values)
    complete = {n: (a, b) for n, (a, b) in PAIRS.items() if a in values and b in values}
    if not complete:
        assert result is None
        return
    assert result is not None
    name, weaker = result
    assert name in complete and weaker == min(values[s] for s in complete[name])
    assert all(weaker >= min(values[a], values[b]) for a, b in complete.values())


def test_best_pair_examples() -> None:
    lamps = {"left_main_high": 15100, "right_main_high": 16000, "left_aux_high": 11900}
    assert best_pair(lamps) == ("outer", 15100)  # the inner pair is incomplete
    lamps["right_aux_high"] = 20000
    assert best_pair(lamps) == ("outer", 15100)
    assert best_pair({"left_main_high": 1, "right_aux_high": 2}) is None


@given(st.sampled_from([Verdict.PASS, Verdict.FAIL, None]), st.sampled_from([Verdict.PASS, None]))
def test_four_lamp_verdict(own: Verdict | None, pair: Verdict | None) -> None:
    passed = Verdict.PASS in (own, pair)
    assert four_lamp_verdict(own, pair) is (Verdict.PASS if passed else Verdict.FAIL)


def test_offsets_are_recorded_with_units_and_not_judged() -> None:
    high = offset_measurements("high", 15.0, -30.0, 710, 0.96)
    low = offset_measurements("low", 0.0, -123.0, 710, (710 - 123) / 710)
    assert [(m.name, m.unit) for m in high] == [
        ("high_beam_horizontal_offset", "mm/10m"),
        ("high_beam_vertical_offset", "mm/10m"),
        ("lamp_height", "mm"),
    ]
    assert low[-1].name == "low_beam_height_ratio" and low[-1].value == 0.827
    assert all(m.verdict is None and m.limit is None for m in high + low)
    assert [m.name for m in offset_measurements("low", 0, 0, 0, None)][
        -1
    ] != "low_beam_height_ratio"
    assert expected_high_slots(2) == ("left_main_high", "right_main_high")
    assert set(expected_high_slots(4)) == set(HIGH_SLOTS)


# --- end to end -----------------------------------------------------------------------------
@dataclass
class Lane:
    station: Station
    sims: SimLane
    port: int
    state_dir: Path
    number: int = 0

    async def inspect(self, scenario: str, items: list[str], **fields: Any) -> dict[str, Any]:
        """Put ``scenario``'s lamps in front of the tester, run an order, return its records."""
        self.sims.running["headlamp"].sim.lamps = load_scenario(SCENARIOS / scenario).vehicle.lamps
        self.number += 1
        body = {**order(self.number, items), **fields}
        answer = await send_command(self.port, "inspect", body)
        assert answer["ok"], answer
        iid = body["inspection_id"]

        def closed() -> bool:
            return any(
                r["inspection_id"] == iid and r["kind"] == "summary" for r in self.station.results
            )

        await self.station.wait_for(closed, timeout=20)
        # progress is published live (QoS 0, after the record): wait for the last event
        await self.station.wait_for(lambda: (None, "inspection_finished") in self.steps(iid))
        return {
            r["item_code"]: r for r in self.station.unique_results() if r["inspection_id"] == iid
        }

    def steps(self, inspection_id: str) -> list[tuple[str | None, str]]:
        progress = self.station.messages.get("progress", [])
        return [
            (p["item_code"], p["step"]) for p in progress if p["inspection_id"] == inspection_id
        ]


def headlamp_lane(options: dict[str, Any]) -> Callable[[SimLane], Any]:
    def config(lane: SimLane) -> Any:
        bus = {"id": "com1", "url": lane.running["headlamp"].url, "response_timeout_s": 0.5}
        device = {
            "id": "headlamp",
            "class": "headlamp_tester",
            "protocol": "mqd6a",
            "bus": "com1",
            "poll_period_s": 0.5,
            "options": {
                "command_gap_s": 0.01,
                "beam_timeout_s": 3,
                "home_timeout_s": 3,
                **options,
            },
        }
        return [bus], [device]

    return config


@pytest.fixture
async def lane(
    request: pytest.FixtureRequest, tmp_path: Path, mosquitto: Mosquitto
) -> AsyncIterator[Lane]:
    options = getattr(request, "param", {})
    first = scenario_at_speed(SCENARIOS / "headlamp-2lamp-inuse-edge.yaml", 0.02)
    sims = SimLane(first, [SimDevice("headlamp", "mqd6a")])
    extra = {"procedure_time_scale": 0.02}
    async with running_lane(tmp_path, mosquitto.port, sims, headlamp_lane(options), extra) as (
        _,
        station,
    ):

        def online() -> bool:
            status = station.messages.get("devices/headlamp/status", [])
            return any(m["availability"] == "online" for m in status)

        await station.wait_for(online)
        yield Lane(station, sims, mosquitto.port, tmp_path / "state")


def intensity(record: dict[str, Any]) -> dict[str, Any]:
    (value,) = [m for m in record["measurements"] if m["name"] == "high_beam_intensity"]
    return dict(value)


def value_of(record: dict[str, Any], name: str) -> Any:
    (value,) = [m for m in record["measurements"] if m["name"] == name]
    return value["value"]


def verdicts(records: dict[str, Any]) -> dict[str, str]:
    return {code: r["verdict"] for code, r in records.items()}


def four_lamps(h1: str, h2: str, h3: str, h4: str, summary: str) -> dict[str, str]:
    return {"H1": h1, "H2": h2, "H3": h3, "H4": h4, "summary": summary}


@pytest.mark.mqtt
async def test_two_lamp_limits_total_and_one_tester_run(lane: Lane) -> None:
    """In-use 15000 and new-registration 18000 cd just inside/outside; the 430000 cd total
    just inside/outside (summary); the tester runs once per inspection, whichever headlamp
    item comes first, and every item's record carries the same raw readings."""
    records = await lane.inspect("headlamp-2lamp-inuse-edge.yaml", ["H4", "H1"])
    assert verdicts(records) == {"H1": "pass", "H4": "fail", "summary": "fail"}
    h1, h4 = records["H1"], records["H4"]
    assert (intensity(h1)["value"], intensity(h4)["value"]) == (15100, 14900)
    assert intensity(h1)["limit"]["low"] == 15000 and intensity(h1)["limit"]["confidence"] == "sec"
    assert h1["limit_set"] == "GB7258-2017" and h1["devices"][0]["id"] == "headlamp"
    assert value_of(h1, "high_beam_horizontal_offset") == 15.0  # 1.5 cm/dam
    assert value_of(h1, "low_beam_vertical_offset") == -123.0
    assert value_of(h1, "low_beam_height_ratio") == round((710 - 123) / 710, 3)
    iid = h1["inspection_id"]
    steps = lane.steps(iid)
    assert steps.count(("H4", "headlamp_left_measuring")) == 1  # H4 came first: it measured
    assert ("H1", "headlamp_reused") in steps
    assert not any(code == "H1" and "measuring" in step for code, step in steps)
    (readings,) = {e["sha256"] for e in h1["evidence"] if e["kind"] == "headlamp_readings"}
    assert readings in {e["sha256"] for e in h4["evidence"]}
    document = EvidenceStore(lane.state_dir / "evidence").get(readings)
    assert document["measured_by"] == "H4" and document["lamp_system"] == 2
    assert {r["slot"] for r in document["readings"]} >= {"left_main_high", "right_main_high"}
    total = value_of(records["summary"], "headlamp_high_beam_total")
    assert total == 30000

    records = await lane.inspect(
        "headlamp-2lamp-new-edge.yaml", ["H1", "H4"], inspection_type="new_registration"
    )
    assert verdicts(records) == {"H1": "pass", "H4": "fail", "summary": "fail"}
    assert intensity(records["H1"])["limit"]["low"] == 18000

    records = await lane.inspect("headlamp-total-inside.yaml", ["H1", "H4"])
    assert verdicts(records) == {"H1": "pass", "H4": "pass", "summary": "pass"}
    assert value_of(records["summary"], "headlamp_high_beam_total") == 429900
    records = await lane.inspect("headlamp-total-outside.yaml", ["H1", "H4"])
    assert verdicts(records) == {"H1": "pass", "H4": "pass", "summary": "fail"}
    (total,) = [m for m in records["summary"]["measurements"] if m["name"].endswith("_total")]
    assert (total["value"], total["verdict"], total["limit"]["high"]) == (430100, "fail", 430000)


@pytest.mark.mqtt
async def test_four_lamp_limits_and_the_four_lamp_rule(lane: Lane) -> None:
    """In-use 12000 and new 15000 cd per lamp just inside/outside; the [MEM] four-lamp
    rule: a failing lamp passes when a symmetrical pair meets the 2-lamp value, and does
    not when the pair's weaker lamp is just below it."""
    four = ["H1", "H2", "H3", "H4"]
    records = await lane.inspect("headlamp-4lamp-inuse-edge.yaml", four, headlamp_system=4)
    assert verdicts(records) == four_lamps("pass", "fail", "fail", "pass", "fail")
    assert intensity(records["H2"])["limit"]["low"] == 12000
    assert value_of(records["H2"], "outer_pair_weaker_high_beam_intensity") == 12100
    assert value_of(records["summary"], "headlamp_high_beam_total") == 48000
    steps = lane.steps(records["H1"]["inspection_id"])
    assert [s for c, s in steps if s == "headlamp_left_measuring"] == ["headlamp_left_measuring"]

    records = await lane.inspect("headlamp-4lamp-pair-inside.yaml", four, headlamp_system=4)
    assert verdicts(records) == four_lamps("pass", "pass", "pass", "pass", "pass")
    h2 = records["H2"]
    assert intensity(h2)["verdict"] == "fail"  # the lamp itself still misses 12000 cd
    (pair,) = [m for m in h2["measurements"] if m["name"].startswith("outer_pair")]
    assert (pair["value"], pair["verdict"], pair["limit"]["low"]) == (15100, "pass", 15000)
    assert pair["limit"]["confidence"] == "mem" and "four-lamp rule" in h2["reason"]

    records = await lane.inspect("headlamp-4lamp-pair-outside.yaml", four, headlamp_system=4)
    # H1's 14900 cd meets the 4-lamp 12000 cd; the inner lamps fail, the rule does not help
    assert verdicts(records) == four_lamps("pass", "fail", "fail", "pass", "fail")
    assert value_of(records["H3"], "outer_pair_weaker_high_beam_intensity") == 14900

    records = await lane.inspect(
        "headlamp-4lamp-new-edge.yaml", four, headlamp_system=4, inspection_type="new_registration"
    )
    assert verdicts(records) == four_lamps("pass", "fail", "fail", "pass", "fail")
    assert intensity(records["H1"])["limit"]["low"] == 15000
    (pair,) = [m for m in records["H2"]["measurements"] if m["name"].startswith("outer_pair")]
    assert (pair["value"], pair["limit"]["low"], pair["verdict"]) == (15100, 18000, "fail")


@pytest.mark.mqtt
@pytest.mark.parametrize("lane", [{"status_query": False}], indirect=True)
async def test_missing_lamps_impossible_items_and_a_failed_run_abort(lane: Lane) -> None:
    """E 0x13 "no lamp found" aborts the lamps of that side that were not measured (the
    others are judged); an inner lamp on a 2-lamp order or a trailer's lamp is aborted
    without measuring; a tester that fails the run (NAK) aborts every headlamp item of
    the inspection with the reason, without a second run. The daemon stays up."""
    four = ["H1", "H2", "H3", "H4"]
    records = await lane.inspect("headlamp-outer-only.yaml", four, headlamp_system=4)
    assert verdicts(records) == four_lamps("pass", "aborted", "aborted", "pass", "aborted")
    assert "no lamp found" in records["H2"]["reason"] and "right" in records["H3"]["reason"]
    assert not any(m["name"].endswith("_total") for m in records["summary"]["measurements"])

    records = await lane.inspect("headlamp-outer-only.yaml", ["H1", "H2"])
    assert verdicts(records) == {"H1": "pass", "H2": "aborted", "summary": "aborted"}
    assert "does not exist on a 2-lamp system" in records["H2"]["reason"]

    records = await lane.inspect("headlamp-outer-only.yaml", ["H1"], category="trailer")
    assert records["H1"]["verdict"] == "aborted" and "no headlamps" in records["H1"]["reason"]

    lane.sims.running["headlamp"].faults.inject(Fault.NAK)  # replaces the first event
    records = await lane.inspect("headlamp-outer-only.yaml", ["H1", "H4"])
    assert verdicts(records) == {"H1": "aborted", "H4": "aborted", "summary": "aborted"}
    assert records["H1"]["reason"].startswith("DeviceRefused")
    assert "tester run (H1) failed: DeviceRefused" in records["H4"]["reason"]
    steps = lane.steps(records["H1"]["inspection_id"])
    assert not any(code == "H4" and "measuring" in step for code, step in steps)
