"""Dyno emission items end to end: order in -> simulated XinCheng dyno, NHA-503 analyser,
FLV-1000 flowmeter, FLB-100 opacimeter and ELM327 reader (shared roller physics, scripted
driver) -> daemon subprocess -> records on a real mosquitto.

A clean petrol car passes ASM on the fast-pass path (with a clean OBD); a dirty one fails
5025; a VMAS driver out of the band too long invalidates the run; a diesel passes lug-down
and others fail on k80 and on power; OBD with the MIL on or another VIN fails; a dyno that
falls silent mid-mode aborts the item with the reason and keeps the process data.
Scenarios: tests/scenarios/dyno-*.yaml, sped up by SCALE (simulators and procedures)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway.evidence import EvidenceStore
from simulators.lane import SimDevice, SimLane
from tests.harness import Station, order, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto

SCENARIOS = Path(__file__).parents[1] / "scenarios"
SCALE = 0.04  # the simulators' and the procedures' time scale
DEVICES = (
    ("dyno", "chassis_dynamometer", "xincheng", {}),
    ("analyser", "gas_analyser", "nha503", {"action_poll_s": 0.02}),
    ("flowmeter", "flowmeter", "flv1000", {}),
    ("opacimeter", "opacimeter", "flb100", {}),
    ("obd", "obd_reader", "elm327", {}),
)
PETROL_ASM = {"fuel": "petrol", "emission_method": "asm", "reference_mass_kg": 1470}
PETROL_VMAS = {"fuel": "petrol", "emission_method": "vmas", "reference_mass_kg": 1470}
DIESEL_LUG = {
    "fuel": "diesel", "emission_method": "lug_down", "rated_power_kw": 100,
    "rated_speed_rpm": 2400, "category": "other", "gross_mass_kg": 4500, "curb_mass_kg": 2900,
}  # fmt: skip


@dataclass
class Lane:
    station: Station
    sims: SimLane
    port: int
    state_dir: Path

    async def inspect(self, items: list[str], timeout: float = 60, **fields: Any) -> str:
        body = {**order(1, items), **fields}
        answer = await send_command(self.port, "inspect", body)
        assert answer["ok"], answer
        iid = str(body["inspection_id"])

        def closed() -> bool:
            return any(
                r["inspection_id"] == iid and r["kind"] == "summary" for r in self.station.results
            )

        await self.station.wait_for(closed, timeout=timeout)
        return iid

    def record(self, iid: str, item: str) -> dict[str, Any]:
        (found,) = [
            r for r in self.station.unique_results()
            if r["inspection_id"] == iid and r["item_code"] == item
        ]  # fmt: skip
        return found

    def progress(self, iid: str) -> list[dict[str, Any]]:
        return [p for p in self.station.messages.get("progress", []) if p["inspection_id"] == iid]

    def evidence(self, record: dict[str, Any], kind: str = "emission_process") -> dict[str, Any]:
        (found,) = [e for e in record["evidence"] if e["kind"] == kind]
        return EvidenceStore(self.state_dir / "evidence").get(found["sha256"])


def lane_config(lane: SimLane) -> Any:
    buses, devices = [], []
    for name, cls, protocol, options in DEVICES:
        buses.append({"id": name, "url": lane.running[name].url, "response_timeout_s": 0.5})
        devices.append(
            {"id": name, "class": cls, "protocol": protocol, "bus": name,
             "poll_period_s": 0.5, "options": options}
        )  # fmt: skip
    return buses, devices


@contextlib.asynccontextmanager
async def dyno_lane(tmp_path: Path, port: int, scenario: str) -> AsyncIterator[Lane]:
    sims = SimLane(
        scenario_at_speed(SCENARIOS / scenario, SCALE),
        [SimDevice(name, protocol) for name, _, protocol, _ in DEVICES],
    )
    extra = {"procedure_time_scale": SCALE}
    async with running_lane(tmp_path, port, sims, lane_config, extra) as (_, station):

        def online() -> bool:
            return all(
                any(m["availability"] == "online" for m in station.messages.get(f"devices/{n}/status", []))
                for n, *_ in DEVICES
            )  # fmt: skip

        await station.wait_for(online)
        yield Lane(station, sims, port, tmp_path / "state")


def measurements(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in record["measurements"]}


@pytest.mark.mqtt
async def test_clean_car_passes_obd_and_asm_on_the_fast_pass(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with dyno_lane(tmp_path, mosquitto.port, "dyno-asm-clean.yaml") as lane:
        iid = await lane.inspect(["OBD", "ASM"], **PETROL_ASM)
        obd, asm = lane.record(iid, "OBD"), lane.record(iid, "ASM")
        assert obd["verdict"] == "pass", obd
        assert asm["verdict"] == "pass", asm
        got = measurements(asm)
        assert got["asm_5025_fast_pass"]["value"] is True
        assert got["asm_5025_window"]["value"] == "fast_check"
        assert "asm_2540_hc_ppm" not in got
        assert got["asm_5025_hc_ppm"]["value"] <= 45  # half of limit a
        assert got["asm_5025_load_kw"]["value"] == pytest.approx(1470 / 148, abs=0.01)
        assert got["asm_5025_power_kw"]["value"] == pytest.approx(1470 / 148, rel=0.05)
        assert 1.0 < got["asm_5025_df"]["value"] < 1.1
        assert asm["limit_set"] == "GB18285-2018 limit a"
        document = lane.evidence(asm)
        phases = [row[2] for row in document["rows"]]
        assert phases.count("fast_check") >= 9 and phases.count("sync") >= 9
        assert document["states"][-2:] == ["STOPPING", "DONE"]
        assert document["columns"][17:20] == [
            "hc_corrected_ppm",
            "co_corrected_pct",
            "no_corrected_ppm",
        ]
        steps = [p["step"] for p in lane.progress(iid)]
        live = [p for p in lane.progress(iid) if p["step"] == "asm_live"]
        assert len(live) >= 0.9 * len(document["rows"])
        assert {"band_low_kmh", "band_high_kmh", "target_kmh", "speed_kmh"} <= set(
            live[-1]["values"]
        )
        for step in ("asm_precheck", "asm_accelerate", "asm_stabilising", "asm_fast_check",
                     "asm_fast_check_result", "asm_stopping", "obd_result"):  # fmt: skip
            assert step in steps, step
        readout = lane.evidence(obd, "obd_readout")
        assert readout["vin"] == "LSVAU2180N2183294" and readout["mil"]["mil_on"] is False
