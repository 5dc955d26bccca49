"""The shipped dyno and OBD scenarios load, reject unknown keys, and show their behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from simulators.base import LanePosition, SimContext
from simulators.devices.dyno_physics import RollerPlant, full_throttle_power_kw
from simulators.devices.elm327 import Elm327Sim
from simulators.faults import FaultPlan
from simulators.scenario import Scenario, load_scenario
from tests.drivers.dyno_rig import Clock, make_scenario

SCENARIOS = Path(__file__).parents[2] / "simulators" / "scenarios"
SHIPPED = sorted(p.name for p in SCENARIOS.glob("*.yaml") if p.name.startswith(("dyno-", "obd-")))


def load(name: str) -> Scenario:
    return load_scenario(SCENARIOS / name)


def test_every_behaviour_has_a_scenario() -> None:
    assert SHIPPED == [
        "dyno-asm-clean.yaml",
        "dyno-asm-dirty.yaml",
        "dyno-drop-out.yaml",
        "dyno-lug-down-diesel.yaml",
        "dyno-lug-down-smoky.yaml",
        "dyno-lug-down-weak.yaml",
        "dyno-vmas-off-trace.yaml",
        "obd-mil-on.yaml",
        "obd-vin-mismatch.yaml",
    ]


def test_unknown_keys_are_still_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        make_scenario({"program": "asm", "reaktion_s": 1})
    with pytest.raises(ValidationError, match="extra"):
        make_scenario(dyno={"base_inertia": 900})
    with pytest.raises(ValidationError, match="unknown readiness"):
        make_scenario(vehicle={"obd": {"readiness": {"catalist": "complete"}}})
    with pytest.raises(ValidationError, match="governed"):
        make_scenario(vehicle={"powertrain": {"vel_max_hp_kmh": 80, "governed_speed_kmh": 70}})
    with pytest.raises(ValidationError, match="either holds"):
        make_scenario({"program": [{"hold_kmh": 25, "full_throttle": True}]})


def test_clean_and_dirty_asm_cars() -> None:
    clean, dirty = (
        load("dyno-asm-clean.yaml").vehicle.petrol,
        load("dyno-asm-dirty.yaml").vehicle.petrol,
    )
    assert clean and clean.loaded and dirty and dirty.loaded
    assert (
        clean.loaded.asm5025.co_pct <= 0.25 and clean.loaded.asm5025.hc_ppm <= 45
    )  # half of limit a
    assert dirty.loaded.asm5025.co_pct > 0.5 and dirty.loaded.asm5025.no_ppm > 700


def test_lug_down_cars_differ_in_smoke_and_power() -> None:
    good, smoky, weak = (
        load(f"dyno-lug-down-{n}.yaml").vehicle for n in ("diesel", "smoky", "weak")
    )
    assert good.diesel and good.diesel.lug_down and smoky.diesel and smoky.diesel.lug_down
    assert smoky.diesel.lug_down.k_80_m1 > 1.2 >= good.diesel.lug_down.k_80_m1
    peak = good.powertrain.vel_max_hp_kmh
    assert full_throttle_power_kw(weak.powertrain, peak) < 0.4 * full_throttle_power_kw(
        good.powertrain, peak
    )


def test_drop_out_and_vmas_deviation_are_set() -> None:
    assert load("dyno-drop-out.yaml").dyno.drop_out_after_s == 30
    scenario = load("dyno-vmas-off-trace.yaml")
    assert scenario.driver and scenario.driver.deviations[0].speed_error_kmh == 4
    plant = RollerPlant(scenario, Clock())
    assert plant.driver is not None and plant.driver.started is None
    plant.lift(False)
    plant.command("force", 100.0)  # start_on: control
    assert plant.driver.started is not None


@pytest.mark.parametrize(
    ("name", "request_line", "expected"),
    [
        ("obd-mil-on.yaml", "0101", "7E8 06 41 01 82 07 65 01 00"),
        ("obd-mil-on.yaml", "03", "7E8 06 43 02 03 01 04 20 00"),
        ("obd-vin-mismatch.yaml", "0902", "7E8 10 14 49 02 01 4C 46 56"),
    ],
)
def test_obd_scenarios_answer(name: str, request_line: str, expected: str) -> None:
    sim = Elm327Sim(SimContext(load(name), FaultPlan(), LanePosition()))
    for line in ("ATE0", "ATH1", "ATSP6"):
        sim.answer(line)
    reply = sim.answer(request_line).decode()
    assert reply.splitlines()[0] == expected
    assert reply.endswith("\r\r>")
