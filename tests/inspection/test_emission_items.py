"""Emission items TSI (petrol two-speed idle) and FA (diesel free acceleration) end to end:
order in -> simulated NHA-503 analyser / FLB-100 opacimeter -> daemon subprocess ->
records on a real mosquitto. Vehicles just inside and just outside every judged rule of
limit sets a and b; invalid tests (diluted sample, engine never at high idle), orders
whose method or fuel does not fit the item, and testers still warming up: aborted.

Each lane test runs several vehicles through one daemon (like cars through a lane): the
simulators' engines are swapped from tests/scenarios/emission-*.yaml between orders. The
analyser simulator plays the driver with its ``driver_script`` option."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.evidence import EvidenceStore
from gateway.inspection.emissions_diesel import PURGE_COUNT, RECORDED_COUNT
from gateway.inspection.emissions_diesel import TRANSITIONS as FA_TRANSITIONS
from gateway.inspection.emissions_petrol import TRANSITIONS as TSI_TRANSITIONS
from simulators.faults import Fault
from simulators.lane import SimDevice, SimLane
from simulators.scenario import Scenario, load_scenario
from tests.harness import Station, order, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto

SCENARIOS = Path(__file__).parents[1] / "scenarios"
SCALE = 0.02  # both the simulators' and the procedures' time scale: the script keeps step
JUDGED_TSI = ("high_idle_co_pct", "high_idle_hc_ppm", "high_idle_lambda", "idle_co_pct",
              "idle_hc_ppm")  # fmt: skip
PETROL = {"fuel": "petrol", "emission_method": "two_speed_idle"}
DIESEL = {"fuel": "diesel", "emission_method": "free_acceleration"}


@dataclass
class Lane:
    station: Station
    sims: SimLane
    port: int
    state_dir: Path
    number: int = 0

    async def inspect(self, scenario: str | None, items: list[str], **fields: Any) -> Any:
        """Put ``scenario``'s engine in front of the testers, run an order, return the
        first item's record."""
        return await self.finish(await self.start(scenario, items, **fields), items[0])

    async def start(self, scenario: str | None, items: list[str], **fields: Any) -> str:
        """Swap the engine in (``None``: keep it) and send the order; its id."""
        if scenario is not None:
            vehicle = load_scenario(SCENARIOS / scenario).vehicle
            self.sims.running["analyser"].sim.petrol = vehicle.petrol
            self.sims.running["opacimeter"].sim.diesel = vehicle.diesel
        self.number += 1
        body = {**order(self.number, items), **fields}
        answer = await send_command(self.port, "inspect", body)
        assert answer["ok"], answer
        return str(body["inspection_id"])

    async def finish(self, iid: str, item: str) -> Any:
        """Wait for the inspection to close; the record of ``item``."""

        def closed() -> bool:
            return any(
                r["inspection_id"] == iid and r["kind"] == "summary" for r in self.station.results
            )

        await self.station.wait_for(closed, timeout=30)
        await self.station.wait_for(lambda: "inspection_finished" in self.steps(iid))
        (record,) = [
            r
            for r in self.station.unique_results()
            if r["inspection_id"] == iid and r["item_code"] == item
        ]
        return record

    def steps(self, inspection_id: str) -> list[str]:
        progress = self.station.messages.get("progress", [])
        return [p["step"] for p in progress if p["inspection_id"] == inspection_id]

    def evidence(self, record: dict[str, Any]) -> dict[str, Any]:
        (process,) = [e for e in record["evidence"] if e["kind"] == "emission_process"]
        return EvidenceStore(self.state_dir / "evidence").get(process["sha256"])


def emission_lane(lane: SimLane) -> Any:
    buses, devices = [], []
    for name, cls, protocol, options in (
        ("analyser", "gas_analyser", "nha503", {"action_poll_s": 0.02}),
        ("opacimeter", "opacimeter", "flb100", {}),
    ):
        buses.append({"id": name, "url": lane.running[name].url, "response_timeout_s": 0.5})
        devices.append(
            {"id": name, "class": cls, "protocol": protocol, "bus": name,
             "poll_period_s": 0.5, "options": options}
        )  # fmt: skip
    return buses, devices


@contextlib.asynccontextmanager
async def start_lane(tmp_path: Path, port: int, first: Scenario) -> AsyncIterator[Lane]:
    devices = [
        SimDevice("analyser", "nha503", {"driver_script": {}}),
        SimDevice("opacimeter", "flb100"),
    ]
    sims = SimLane(first, devices)
    extra = {"procedure_time_scale": SCALE}
    async with running_lane(tmp_path, port, sims, emission_lane, extra) as (_, station):

        def online() -> bool:
            return all(
                any(m["availability"] == "online" for m in station.messages.get(topic, []))
                for topic in ("devices/analyser/status", "devices/opacimeter/status")
            )

        await station.wait_for(online, timeout=60)  # a loaded machine starts slowly
        yield Lane(station, sims, port, tmp_path / "state")


@pytest.fixture
async def lane(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Lane]:
    first = scenario_at_speed(SCENARIOS / "emission-petrol-a-inside.yaml", SCALE)
    diesel = load_scenario(SCENARIOS / "emission-diesel-a-inside.yaml")
    vehicle = first.vehicle.model_copy(update={"diesel": diesel.vehicle.diesel})
    timing = first.timing.model_copy(update={"noise": 0.005})
    scenario = first.model_copy(update={"vehicle": vehicle, "timing": timing})
    async with start_lane(tmp_path, mosquitto.port, scenario) as running:
        yield running


def measurement(record: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [m for m in record["measurements"] if m["name"] == name]
    return found


def judged(record: dict[str, Any]) -> dict[str, str]:
    return {name: measurement(record, name)["verdict"] for name in JUDGED_TSI}


def assert_tsi_process_and_progress(lane: Lane, record: dict[str, Any]) -> None:
    """15 s + 30 s per speed in the per-second process data; a live value per second."""
    document = lane.evidence(record)
    assert document["columns"][:4] == ["t_s", "phase", "rpm", "co_pct"]
    phases = [row[1] for row in document["rows"]]
    for name, count in (("high_idle_stabilising", 15), ("high_idle_measuring", 30),
                        ("idle_stabilising", 15), ("idle_measuring", 30)):  # fmt: skip
        assert phases.count(name) == count, name
    assert document["states"][-2:] == ["PROBE_OUT", "DONE"]
    steps = lane.steps(record["inspection_id"])
    live = steps.count("tsi_live")  # one a second (QoS 0: the newest win under load)
    assert 0.9 * len(document["rows"]) <= live <= len(document["rows"])
    messages = [p["message"] for p in lane.station.messages["progress"]]
    assert "hold high idle 2500 r/min (2300-2700 r/min)" in messages
    for step in ("tsi_precheck", "tsi_zeroing", "tsi_probe_in", "tsi_to_high_idle",
                 "tsi_high_idle_result", "tsi_to_idle", "tsi_idle_result", "tsi_probe_out"):  # fmt: skip
        assert step in steps, step


@pytest.mark.mqtt
async def test_two_speed_idle_limits_a_and_b(lane: Lane) -> None:
    """Limit a (sec) and b (mem): CO and HC at idle and high idle and λ at high idle, each
    just inside (pass) and just outside (fail), λ on both sides; rpm bands, dilution sum,
    30-s windows after 15 s, per-second process data as evidence, live progress."""
    record = await lane.inspect("emission-petrol-a-inside.yaml", ["TSI"], **PETROL)
    assert record["verdict"] == "pass", record
    assert record["limit_set"] == "GB18285-2018 limit a"
    assert set(judged(record).values()) == {"pass"}
    expected = {"high_idle_co_pct": 0.28, "high_idle_hc_ppm": 47, "high_idle_lambda": 1.04,
                "idle_co_pct": 0.58, "idle_hc_ppm": 77}  # fmt: skip
    for name, value in expected.items():
        assert measurement(record, name)["value"] == pytest.approx(value, abs=0.011), name
    co = measurement(record, "idle_co_pct")
    assert (co["limit"]["high"], co["unit"], co["limit"]["confidence"]) == (0.6, "%", "sec")
    assert "GB18285-2018: GB 18285-2018 table 1" in co["limit"]["source"]
    assert measurement(record, "high_idle_engine_speed_rpm")["value"] == pytest.approx(2500, 30)
    assert measurement(record, "idle_engine_speed_rpm")["limit"]["high"] == 1200
    assert measurement(record, "high_idle_co_plus_co2_pct")["verdict"] == "pass"
    assert measurement(record, "idle_oil_temp_c")["value"] == 85.0
    assert_tsi_process_and_progress(lane, record)

    record = await lane.inspect("emission-petrol-a-outside.yaml", ["TSI"], **PETROL)
    assert record["verdict"] == "fail"
    assert set(judged(record).values()) == {"fail"}, judged(record)
    assert measurement(record, "high_idle_lambda")["value"] == pytest.approx(1.06, abs=0.011)

    record = await lane.inspect(
        "emission-petrol-b-inside.yaml", ["TSI"], **PETROL, emission_limit_set="b"
    )
    assert record["verdict"] == "pass" and record["limit_set"] == "GB18285-2018 limit b"
    assert set(judged(record).values()) == {"pass"}
    hc = measurement(record, "high_idle_hc_ppm")
    assert (hc["limit"]["high"], hc["limit"]["confidence"]) == (30, "mem")

    record = await lane.inspect(
        "emission-petrol-b-outside.yaml", ["TSI"], **PETROL, emission_limit_set="b"
    )
    assert record["verdict"] == "fail"
    assert set(judged(record).values()) == {"fail"}, judged(record)  # λ 0.94: the low side
    assert measurement(record, "idle_co_pct")["limit"]["high"] == 0.4  # would pass under a


@pytest.mark.mqtt
async def test_free_acceleration_limits_a_and_b(lane: Lane) -> None:
    """k average of the three recorded accelerations (after three purges) just inside and
    just outside 1.2 m⁻¹ (a) and 0.7 m⁻¹ (b), both [MEM]; per-acceleration k as progress,
    10 Hz process data as evidence."""
    cases = (
        ("emission-diesel-a-inside.yaml", "a", "pass", 1.17, 1.2),
        ("emission-diesel-a-outside.yaml", "a", "fail", 1.23, 1.2),
        ("emission-diesel-b-inside.yaml", "b", "pass", 0.68, 0.7),
        ("emission-diesel-b-outside.yaml", "b", "fail", 0.72, 0.7),
    )
    for scenario, limit_set, verdict, k, limit in cases:
        record = await lane.inspect(scenario, ["FA"], **DIESEL, emission_limit_set=limit_set)
        assert record["verdict"] == verdict, (scenario, record)
        assert record["limit_set"] == f"GB3847-2018 limit {limit_set}"
        average = measurement(record, "free_accel_k_avg_m1")
        assert average["value"] == pytest.approx(k, abs=0.02), scenario
        assert (average["limit"]["high"], average["limit"]["confidence"]) == (limit, "mem")
        recorded = [measurement(record, f"free_accel_k{i}_m1")["value"] for i in (1, 2, 3)]
        assert average["value"] == pytest.approx(sum(recorded) / 3, abs=0.006)
        assert measurement(record, "free_accel_max_rpm1")["value"] > 3000
    steps = lane.steps(record["inspection_id"])
    assert steps.count("fa_accelerate") == PURGE_COUNT + RECORDED_COUNT
    assert steps.count("fa_acceleration_result") == PURGE_COUNT + RECORDED_COUNT
    assert "fa_live" in steps and "fa_result" in steps
    document = lane.evidence(record)
    rows = document["rows"]
    assert {row[1] for row in rows} == {"purge", "measure", "idle"}
    peak = max(row[4] for row in rows if row[1] == "measure")
    assert 0.6 < peak < 0.8 and max(row[3] for row in rows) > 3000


@pytest.mark.mqtt
async def test_invalid_tests_and_wrong_orders_are_aborted(lane: Lane) -> None:
    """A diluted sample (CO+CO2 < 6 %) and an engine that never reaches the high-idle band
    abort TSI with the reason and keep the process data; an analyser lost mid-test aborts
    it (the daemon stays up); TSI on a diesel, FA on a petrol car and FA under a
    two-speed-idle order are aborted before any device is touched."""
    record = await lane.inspect("emission-petrol-diluted.yaml", ["TSI"], **PETROL)
    assert record["verdict"] == "aborted" and "sample diluted at high idle" in record["reason"]
    dilution = measurement(record, "high_idle_co_plus_co2_pct")
    assert dilution["verdict"] == "fail" and dilution["limit"]["low"] == 6.0
    assert dilution["limit"]["confidence"] == "mem" and dilution["value"] < 6.0
    document = lane.evidence(record)
    assert document["states"][-4:] == ["HIGH_IDLE_MEASURING", "INVALID", "PROBE_OUT", "DONE"]
    (flag,) = record["flags"]  # every measuring second was diluted: flagged, with its data
    assert flag["code"] == "diluted_sample" and "below 6 %" in flag["message"]
    assert flag["evidence"] in {e["sha256"] for e in record["evidence"]}

    record = await lane.inspect("emission-petrol-slow-engine.yaml", ["TSI"], **PETROL)
    assert record["verdict"] == "aborted"
    assert "did not reach the high idle band 2300-2700 r/min" in record["reason"]
    assert {row[1] for row in lane.evidence(record)["rows"]} == {"to_high_idle"}

    iid = await lane.start("emission-petrol-a-inside.yaml", ["TSI"], **PETROL)
    await lane.station.wait_for(lambda: "tsi_high_idle_measuring" in lane.steps(iid))
    faults = lane.sims.running["analyser"].faults
    faults.inject(Fault.NO_REPLY, count=100_000)  # the analyser goes silent mid-test
    record = await lane.finish(iid, "TSI")
    faults.clear()
    assert record["verdict"] == "aborted" and record["reason"].startswith("ResponseTimeout")

    record = await lane.inspect(None, ["TSI"], fuel="diesel", emission_method="two_speed_idle")
    assert record["verdict"] == "aborted" and "fuel 'diesel'" in record["reason"]
    assert record["evidence"] == [] and "tsi_precheck" not in lane.steps(record["inspection_id"])
    record = await lane.inspect(None, ["FA"], fuel="petrol", emission_method="free_acceleration")
    assert record["verdict"] == "aborted" and "needs a diesel/hybrid vehicle" in record["reason"]
    record = await lane.inspect(None, ["FA"], fuel="diesel", emission_method="two_speed_idle")
    assert record["verdict"] == "aborted"
    assert "emission_method is 'two_speed_idle'" in record["reason"]


@pytest.mark.mqtt
async def test_testers_warming_up_abort(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Pre-test: an analyser or opacimeter still warming up aborts the item with the reason."""
    first = scenario_at_speed(SCENARIOS / "emission-petrol-a-inside.yaml", SCALE)
    diesel = load_scenario(SCENARIOS / "emission-diesel-a-inside.yaml").vehicle.diesel
    timing = first.timing.model_copy(update={"analyser_warmup_s": 3000})  # 60 s at SCALE
    scenario = first.model_copy(
        update={"timing": timing, "vehicle": first.vehicle.model_copy(update={"diesel": diesel})}
    )
    async with start_lane(tmp_path, mosquitto.port, scenario) as lane:
        record = await lane.inspect(None, ["TSI"], **PETROL)
        assert record["verdict"] == "aborted"
        assert record["reason"].startswith("ItemAborted: analyser warming up (")
        record = await lane.inspect(None, ["FA"], **DIESEL)
        assert record["verdict"] == "aborted" and "opacimeter warming up" in record["reason"]


def test_state_tables_end_in_done() -> None:
    for table in (TSI_TRANSITIONS, FA_TRANSITIONS):
        reachable = {s for targets in table.values() for s in targets}
        assert {s.name for s in reachable} >= {"PROBE_OUT", "DONE", "INVALID"}
        assert not any(s.name == "DONE" for s in table)  # DONE is final
