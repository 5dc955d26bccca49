"""Physics sanity of the simulated car on the rollers (sans-I/O, scenario time stepped by a
manual clock): ASM load, the VMAS trace, the lug-down power scan, coast-down, the lift."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.devices.dyno_api import RoadLoad
from drivers.devices.dyno_common import RoadLoadFollower
from simulators.devices.drive_cycles import VMAS, distance_km, duration, speed_at
from simulators.devices.dyno_physics import (
    RollerPlant,
    full_throttle_force_n,
    full_throttle_power_kw,
)
from simulators.scenario import Powertrain
from tests.drivers.dyno_rig import Clock, make_scenario

RM = 1470.0
P5025, P2540 = RM / 148, RM / 185


def plant(driver=None, **kwargs) -> tuple[RollerPlant, Clock]:
    clock = Clock()
    return RollerPlant(make_scenario(driver, **kwargs), clock), clock


def run(p: RollerPlant, clock: Clock, seconds: float, step: float = 0.1):
    """Advance ``seconds`` of scenario time, yielding (t, speed) every ``step``."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
        p.advance()
        yield p.t, p.speed_kmh


def test_the_vmas_cycle_is_the_195_s_urban_cycle() -> None:
    assert duration(VMAS) == 195
    assert distance_km(VMAS) == pytest.approx(1.013, rel=0.03)
    assert max(v for _, v in VMAS) == 50
    assert speed_at(VMAS, 5) == 0 and speed_at(VMAS, 19) == 15 and speed_at(VMAS, 150) == 50


def test_asm_5025_holds_25_kmh_and_the_dyno_reads_the_commanded_power() -> None:
    p, clock = plant({"program": "asm", "reaction_s": 1})
    p.lift(False)
    p.command("power", P5025)
    list(run(p, clock, 20))  # accelerate and settle
    for _, speed in run(p, clock, 90):  # the whole mode
        assert speed == pytest.approx(25.0, abs=0.5)
        assert p.power_kw == pytest.approx(P5025, rel=0.02)
    assert p.engine().phase == "asm5025"
    p.command("power", P2540)  # next mode: the driver goes on to 40 km/h
    list(run(p, clock, 20))
    for _, speed in run(p, clock, 60):
        assert speed == pytest.approx(40.0, abs=0.5)
        assert p.power_kw == pytest.approx(P2540, rel=0.02)
    assert p.engine().phase == "asm2540"


@settings(max_examples=15, deadline=None)
@given(st.floats(2.0, 18.0))  # ASM 5025 loads of RM 300-2650 kg
def test_any_constant_power_is_absorbed_at_the_hold_speed(kw: float) -> None:
    p, clock = plant({"program": "asm", "reaction_s": 0})
    p.lift(False)
    p.command("power", kw)
    list(run(p, clock, 30, step=1.0))
    assert p.speed_kmh == pytest.approx(25.0, abs=0.3)
    assert p.power_kw == pytest.approx(kw, rel=0.01)


def vmas_run(deviations=()):
    """The VMAS cycle with the road load kept by the driver's follower every 0.1 s."""
    driver = {
        "program": "vmas",
        "start_on": "control",
        "reaction_s": 0,
        "deviations": list(deviations),
    }
    p, clock = plant(driver)
    follower = RoadLoadFollower(RoadLoad(120.0, 1.5, 0.04, inertia_kg=RM), p.rig.base_inertia_kg)
    p.lift(False)
    p.command("force", follower.target(0.0, 0.0))
    errors = []
    for t, speed in run(p, clock, 195):
        p.command("force", follower.target(t, speed))
        assert p.driver is not None and p.driver.started is not None
        errors.append((t - p.driver.started, speed - speed_at(VMAS, t - p.driver.started)))
    return errors


def test_vmas_driver_follows_the_trace_within_2_kmh() -> None:
    errors = vmas_run()
    assert max(abs(e) for _, e in errors) < 2.0
    assert len(errors) >= 1900


def test_vmas_driver_told_to_deviate_leaves_the_band_then_returns() -> None:
    errors = vmas_run([{"at_s": 60, "for_s": 5, "speed_error_kmh": 4}])
    inside = [abs(e) for t, e in errors if 61.5 <= t < 65]
    after = [abs(e) for t, e in errors if t >= 68]
    assert min(inside) > 2.0  # out of the ±2 km/h band for several seconds
    assert max(after) < 2.0


def test_lug_down_power_scan_peaks_at_velmaxhp() -> None:
    p, clock = plant({"program": "lug_down", "reaction_s": 0})
    p.lift(False)
    list(run(p, clock, 20))  # full throttle, no load: the governor
    governed = p.speed_kmh
    assert 60.0 < governed < Powertrain().governed_speed_kmh
    scan = {}
    for target in range(70, 30, -2):
        p.command("speed", float(target))
        list(run(p, clock, 6))
        scan[target] = p.power_kw
        assert p.speed_kmh == pytest.approx(min(target, governed), abs=0.5)
    peak = max(scan, key=scan.__getitem__)
    assert peak == pytest.approx(Powertrain().vel_max_hp_kmh, abs=2)
    assert scan[48] < scan[60]  # the 80 % point
    # what the PAU absorbs is the wheel power less the dyno's own and the tyres' losses
    pt = Powertrain()
    assert scan[60] == pytest.approx(
        full_throttle_power_kw(pt, 60) - 60 * 250 / 3600 / 1000 * 60, rel=0.05
    )
    assert p.engine().phase == "lug_down" and p.engine().throttle == 1.0


def test_full_throttle_curve() -> None:
    pt = Powertrain()
    assert full_throttle_power_kw(pt, 60) == pt.max_wheel_power_kw
    assert full_throttle_power_kw(pt, 0) == 0 == full_throttle_power_kw(pt, 80)
    assert full_throttle_force_n(pt, 0) == pytest.approx(2 * 60 * 3600 / 60)
    assert full_throttle_force_n(pt, 30) == pytest.approx(
        full_throttle_power_kw(pt, 30) * 3600 / 30
    )


def test_coast_down_matches_the_parasitic_losses() -> None:
    p, clock = plant()  # no car on the rollers
    p.lift(False)
    p.motor(True)
    list(run(p, clock, 30))
    assert p.speed_kmh == pytest.approx(p.rig.motor_speed_kmh, abs=2)
    p.motor(False)
    times = {}
    for t, speed in run(p, clock, 500, step=0.05):
        for mark in (48, 32):
            if mark not in times and speed <= mark:
                times[mark] = t
        if 32 in times:
            break
    # expected: integral of M dv / F_parasitic(v) from 32 to 48 km/h
    par, mass, expected, v = p.rig.parasitic, p.rig.base_inertia_kg, 0.0, 32.0
    while v < 48:
        force = par.a_n + par.b_n_per_kmh * v + par.c_n_per_kmh2 * v * v
        expected += mass * (0.01 / 3.6) / force
        v += 0.01
    assert times[32] - times[48] == pytest.approx(expected, rel=0.02)


def test_the_lift_and_the_pau_only_brake() -> None:
    p, clock = plant({"program": "asm", "reaction_s": 0})
    assert not p.car_on_rollers
    p.lift(False)
    list(run(p, clock, 10))
    assert p.lift(True) is False and not p.lifted  # rollers turning: refused
    p.command("force", 0.0)
    p.command("off")
    list(run(p, clock, 5))
    assert p.pau_force_n >= 0
    p.command("speed", 100.0)  # above what the car does: the PAU cannot push it there
    list(run(p, clock, 5))
    assert p.pau_force_n == pytest.approx(0.0, abs=1) and p.speed_kmh < 30


@pytest.mark.parametrize("time_scale", [1.0, 0.05])
def test_road_load_follower_takes_dv_dt_in_the_lanes_seconds(time_scale: float) -> None:
    """1 km/h per lane second at any time scale: the inertia term is (I − base) · 0.278 N."""
    road_load = RoadLoad(100.0, 0.0, 0.0, inertia_kg=1907.2, time_scale=time_scale)
    follower = RoadLoadFollower(road_load, 907.2)
    force = 0.0
    for i in range(60):  # 6 lane seconds in 0.1-s steps
        force = follower.target(i * 0.1 * time_scale, i * 0.1)
    assert force == pytest.approx(100 + 1000 / 3.6, rel=0.01)
    assert follower.target(6.0 * time_scale + 1e-9, 0.0) == 0.0  # braking hard: never negative


def test_device_side_road_load_makes_the_car_feel_its_reference_mass() -> None:
    """NHC-03 'Q': F = A + B·v + C·v² + (RM − base)·a, solved by the plant itself."""
    p, clock = plant({"program": "vmas", "start_on": "control", "reaction_s": 0})
    p.lift(False)
    p.command_road_load(120.0, 1.5, 0.04, RM)
    errors = []
    extra = RM - p.rig.base_inertia_kg
    pushes = []
    for t, speed in run(p, clock, 195):
        assert p.driver is not None and p.driver.started is not None
        cycle_t = t - p.driver.started
        errors.append(abs(speed - speed_at(VMAS, cycle_t)))
        if 12 < cycle_t < 14.5:  # 0 -> 15 km/h in 4 s: the PAU adds the inertia of RM
            pushes.append(p.pau_force_n - (120 + 1.5 * speed + 0.04 * speed * speed))
    assert max(errors) < 2.0
    assert sum(pushes) / len(pushes) == pytest.approx(extra * 15 / 3.6 / 4, rel=0.15)
    list(run(p, clock, 5))  # after the cycle: standing, no force
    assert p.pau_force_n == 0.0
