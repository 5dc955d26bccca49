"""Lug-down machine on plain events with a fake clock: the power scan finds VelMaxHP, the
100 % and 80 % points, k at both, NOx at 80 %, the wheel power against 40 % of rated power
with the correction factor, the rated-speed check, a wrong gear, and a dyno lost mid-scan.
Also at 10 Hz: the machine counts procedure seconds, not samples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from drivers.protocols.flb100 import StatusFlags
from drivers.protocols.nha503 import AnalyserStatus
from gateway.inspection.dyno_calc import Formulas
from gateway.inspection.lug_down import LugDownMachine, measurements_named
from gateway.inspection.sansio import Command
from gateway.limits import load_table
from gateway.records import Verdict
from tests.inspection.machine_driver import STANDARD_AMBIENT, FakeLane, Gas

TABLE = load_table("gb3847-2018")
FORMULAS = Formulas.from_table(load_table("emission-formulas"))
ALPHA = FORMULAS.power_correction(STANDARD_AMBIENT)


@dataclass(frozen=True)
class Smoke:
    k_m1: float
    n_pct: float
    engine_speed_rpm: int
    oil_temp_c: int = 85


@dataclass
class Diesel:
    """A truck at full throttle on the rollers: governed 75 km/h, peak power at 60 km/h."""

    peak_kw: float = 60.0
    peak_kmh: float = 60.0
    governed_kmh: float = 75.0
    k100: float = 0.5
    k80: float = 0.55
    nox80: int = 700
    rpm_per_kmh: float = 40.0

    def speed(self, t: float, lane: FakeLane) -> float:
        if lane.when("lug_stopping") is not None or lane.when("lug_full_throttle") is None:
            return 0.0
        mode, target = lane.control
        if mode == "speed" and target is not None:
            return min(target, self.governed_kmh)
        return self.governed_kmh

    def power(self, t: float, lane: FakeLane) -> float:
        mode, target = lane.control
        if mode != "speed" or target is None:
            return 0.0
        v = min(target, self.governed_kmh)
        return max(self.peak_kw * (1 - ((v - self.peak_kmh) / 30.0) ** 2), 0.0)

    def extra(self, t: float, lane: FakeLane) -> dict[str, Any]:
        v = self.speed(t, lane)
        k = self.k80 if 0 < v < 0.9 * self.peak_kmh else self.k100
        return {"opacimeter": Smoke(k, k * 20, int(v * self.rpm_per_kmh))}

    def gas(self, t: float, lane: FakeLane) -> Gas:
        v = self.speed(t, lane)
        return Gas(nox_ppm=self.nox80 if 0 < v < 0.9 * self.peak_kmh else 400)


def lane(engine: Diesel, **kw: Any) -> FakeLane:
    return FakeLane(
        speed=engine.speed, power=engine.power, extra=engine.extra, gas=engine.gas,
        replies={("analyser", "read_status"): AnalyserStatus.READY,
                 ("opacimeter", "read_status"): StatusFlags(0)}, **kw,
    )  # fmt: skip


def machine(limit_set: str = "a", sample_s: float = 1.0) -> LugDownMachine:
    return LugDownMachine(TABLE, FORMULAS, 100.0, 2400.0, limit_set, sample_s)


def test_clean_diesel_passes_with_vel_max_hp_found() -> None:
    fake = lane(Diesel())
    m = machine()
    finish = fake.run(m)
    got: dict[str, Any] = measurements_named(finish.measurements)
    assert finish.verdict is Verdict.PASS, finish
    assert got["vel_max_hp_kmh"].value == pytest.approx(60.0, abs=1.0)
    assert got["max_wheel_power_kw"].value == pytest.approx(60.0 * ALPHA, abs=0.2)
    assert got["max_wheel_power_kw"].limit.low == pytest.approx(40.0)  # 40 % of 100 kW
    assert got["power_correction_factor"].value == pytest.approx(ALPHA, abs=1e-4)
    assert got["k100_m1"].value == 0.5 and got["k80_m1"].value == 0.55
    assert got["nox80_ppm"].value == 700 and got["nox80_ppm"].limit.high == 1500
    assert got["engine_speed_100_rpm"].verdict is Verdict.PASS
    assert got["speed80_kmh"].value == pytest.approx(0.8 * got["vel_max_hp_kmh"].value, abs=0.2)
    # the scan went down from 75 km/h at 0.5 km/h per s, to 20 % below the peak power
    speeds = [c.args[0] for c in fake.commands if c.method == "set_constant_speed"]
    assert speeds[0] == pytest.approx(74.5) and speeds[1] == pytest.approx(74.0)
    scan = m.evidence()["power_scan"]
    assert min(p for _, p in scan) <= 0.8 * max(p for _, p in scan)
    phases = [row[1] for row in m.rows]
    assert phases.count("sampling") == 18  # 9 s at each point
    assert fake.commands[-1] == Command("dyno", "lift", (True,))


def test_diesel_failing_on_k80() -> None:
    finish = lane(Diesel(k80=1.5)).run(machine())
    got: dict[str, Any] = measurements_named(finish.measurements)
    assert finish.verdict is Verdict.FAIL
    assert got["k80_m1"].verdict is Verdict.FAIL and got["k100_m1"].verdict is Verdict.PASS


def test_diesel_failing_on_power() -> None:
    finish = lane(Diesel(peak_kw=30.0)).run(machine())
    got: dict[str, Any] = measurements_named(finish.measurements)
    assert finish.verdict is Verdict.FAIL
    assert got["max_wheel_power_kw"].verdict is Verdict.FAIL
    assert got["k80_m1"].verdict is Verdict.PASS


def test_limit_set_b_fails_nox() -> None:
    finish = lane(Diesel(nox80=1000)).run(machine(limit_set="b"))
    got: dict[str, Any] = measurements_named(finish.measurements)
    assert got["nox80_ppm"].verdict is Verdict.FAIL and got["nox80_ppm"].limit.high == 900


def test_engine_far_from_its_rated_speed_is_invalid() -> None:
    """Max power at 60 km/h = 1800 r/min but the order says 2400 (band 2040-2760)."""
    finish = lane(Diesel(rpm_per_kmh=30.0)).run(machine())
    assert finish.verdict is Verdict.ABORTED
    assert finish.reason is not None and "outside 2040-2760 r/min" in finish.reason
    got: dict[str, Any] = measurements_named(finish.measurements)
    assert got["engine_speed_100_rpm"].verdict is Verdict.FAIL
    assert "k80_m1" in got  # the measured values stay on the record


def test_wrong_gear_is_invalid() -> None:
    finish = lane(Diesel(governed_kmh=25.0, peak_kmh=20.0)).run(machine())
    assert finish.verdict is Verdict.ABORTED
    assert finish.reason is not None and "wrong gear" in finish.reason


def test_dyno_lost_during_the_scan() -> None:
    fake = lane(Diesel(), fail_at=(10.0, "dyno", "link down"))
    m = machine()
    finish = fake.run(m)
    assert finish.verdict is Verdict.ABORTED
    assert (
        finish.reason is not None
        and "chassis dynamometer failed during LUG scanning" in finish.reason
    )
    assert m.rows and m.evidence()["power_scan"]


def test_at_10_hz_the_windows_are_seconds_not_samples() -> None:
    fake = lane(Diesel())
    m = machine(sample_s=0.1)
    finish = fake.run(m)
    assert finish.verdict is Verdict.PASS
    phases = [row[1] for row in m.rows]
    assert phases.count("sampling") == 180
    assert m.evidence()["interval_s"] == 0.1
