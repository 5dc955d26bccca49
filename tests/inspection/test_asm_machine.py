"""ASM 5025/2540 machine on plain events with a fake clock (no simulator, no sleeps):
phases and their lengths, loads from the reference mass, per-second DF and kH, the fast
pass, the full 65-s test, restarts on tolerance violations, invalid tests and device loss."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.protocols.nha503 import AnalyserStatus
from gateway.inspection.asm import AsmMachine, State
from gateway.inspection.dyno_calc import Formulas
from gateway.inspection.sansio import Command
from gateway.limits import load_table
from gateway.records import Verdict
from tests.inspection.machine_driver import FakeLane, Gas

TABLE = load_table("gb18285-2018")
FORMULAS = Formulas.from_table(load_table("emission-formulas"))
READY = {("analyser", "read_status"): AnalyserStatus.READY}


def driver(lane: FakeLane) -> float:
    """The driver follows the prompts: the last target, 0 once asked to stop."""
    target = 0.0
    for say in lane.says:
        if say.step.endswith("_stopping"):
            return 0.0
        if "target_kmh" in say.values and say.step == "asm_accelerate":
            target = float(say.values["target_kmh"])  # type: ignore[arg-type]
    return target


def lane(**kw: Any) -> FakeLane:
    return FakeLane(speed=kw.pop("speed", lambda t, ln: driver(ln)), replies=dict(READY), **kw)


def machine(rm: float = 1500.0, limit_set: str = "a") -> AsmMachine:
    return AsmMachine(TABLE, FORMULAS, rm, limit_set)


def values(finish: Any) -> dict[str, Any]:
    return {m.name: m for m in finish.measurements}


def test_clean_car_fast_passes_at_5025_and_ends() -> None:
    fake = lane(gas=lambda t, ln: Gas(hc_ppm=20, co_pct_vol=0.05, nox_ppm=100))
    m = machine()
    finish = fake.run(m)
    assert finish.verdict is Verdict.PASS, finish
    got = values(finish)
    assert got["asm_5025_fast_pass"].value is True
    assert got["asm_5025_window"].value == "fast_check"
    assert "asm_2540_hc_ppm" not in got  # the test ended after the 5025 fast pass
    assert got["asm_5025_hc_ppm"].verdict is Verdict.PASS
    assert got["asm_5025_load_kw"].value == pytest.approx(1500 / 148, abs=0.01)
    # 5 s stabilisation, 10 s sync, 10 s fast check: 25 rows in mode states
    phases = [row[2] for row in m.rows]
    assert (phases.count("stabilising"), phases.count("sync"), phases.count("fast_check")) == (
        5,
        10,
        10,
    )
    assert "testing" not in phases
    assert [c for c in fake.commands if c.method == "set_constant_power"] == [
        Command("dyno", "set_constant_power", (round(1500 / 148, 2),))
    ]
    assert m.evidence()["states"][-2:] == ["STOPPING", "DONE"]
    assert fake.commands[-1] == Command("dyno", "lift", (True,))


def test_borderline_car_runs_both_full_modes() -> None:
    """Above half the limit but below it: no fast pass; both modes run 65 s and pass."""
    fake = lane(gas=lambda t, ln: Gas(hc_ppm=60, co_pct_vol=0.30, nox_ppm=400))
    m = machine()
    finish = fake.run(m)
    got = values(finish)
    assert finish.verdict is Verdict.PASS
    assert got["asm_5025_fast_pass"].value is False and got["asm_2540_fast_pass"].value is False
    assert got["asm_5025_window"].value == "test" and got["asm_2540_window"].value == "test"
    phases = [(row[1], row[2]) for row in m.rows]
    for mode in ("5025", "2540"):
        assert phases.count((mode, "testing")) == 65
    assert got["asm_2540_load_kw"].value == pytest.approx(1500 / 185, abs=0.01)


def test_dirty_car_fails_5025_and_2540_is_not_run() -> None:
    fake = lane(gas=lambda t, ln: Gas(hc_ppm=200, co_pct_vol=0.8, nox_ppm=300))
    finish = fake.run(machine())
    got = values(finish)
    assert finish.verdict is Verdict.FAIL
    assert got["asm_5025_hc_ppm"].verdict is Verdict.FAIL
    assert got["asm_5025_co_pct"].verdict is Verdict.FAIL
    assert got["asm_5025_no_ppm"].verdict is Verdict.PASS
    assert got["asm_5025_hc_ppm"].limit.high == 90
    assert not any(name.startswith("asm_2540_hc") for name in got)


def test_limit_set_b_is_stricter() -> None:
    gas = lambda t, ln: Gas(hc_ppm=60, co_pct_vol=0.30, nox_ppm=400)  # noqa: E731
    assert lane(gas=gas).run(machine(limit_set="b")).verdict is Verdict.FAIL


def test_corrections_are_applied_per_second() -> None:
    """A diluted sample (CO2 7 %) doubles the corrected values; humid air raises NO."""
    humid = FakeLane(speed=lambda t, ln: driver(ln), replies=dict(READY),
                     gas=lambda t, ln: Gas(hc_ppm=20, co_pct_vol=0.05, co2_pct_vol=7.2, nox_ppm=100))  # fmt: skip
    humid.ambient = type(humid.ambient)(temperature_c=30.0, humidity_pct=80.0, pressure_kpa=100.0)
    m = machine()
    humid.run(m)
    row: dict[str, Any] = dict(zip(m.columns, m.rows[-1], strict=True))
    assert row["df"] == pytest.approx(FORMULAS.dilution_factor(7.2, 0.05), abs=1e-3)
    assert row["df"] > 1.9
    assert row["kh"] == pytest.approx(FORMULAS.kh(humid.ambient), abs=1e-3) and row["kh"] > 1.1
    assert row["hc_corrected_ppm"] == pytest.approx(20 * row["df"], abs=0.1)
    assert row["no_corrected_ppm"] == pytest.approx(100 * row["df"] * row["kh"], abs=0.2)


def test_speed_excursion_restarts_the_mode() -> None:
    """3 s too slow during the 5025 sync (more than 2 s in a row): the mode restarts."""

    def speed(t: float, ln: FakeLane) -> float:
        slow = any(s.step == "asm_sync" for s in ln.says) and len(
            [s for s in ln.says if s.step == "asm_restart"]) == 0  # fmt: skip
        return driver(ln) - (5.0 if slow and t > 12 else 0.0)

    fake = lane(speed=speed, gas=lambda t, ln: Gas(hc_ppm=20, co_pct_vol=0.05, nox_ppm=100))
    m = machine()
    finish = fake.run(m)
    assert finish.verdict is Verdict.PASS
    assert "asm_restart" in fake.steps()
    assert values(finish)["asm_5025_restarts"].value == 1
    states = m.evidence()["states"]
    assert states.count("ACCELERATING") == 2 and states.count("SYNC") == 2


def test_four_restarts_make_the_test_invalid() -> None:
    """A driver who cannot hold the speed: the fourth restart aborts (never fails)."""

    def speed(t: float, ln: FakeLane) -> float:
        target = driver(ln)
        return target if int(t) % 6 < 2 else target - 4.0  # reaches, then drops off

    fake = lane(speed=speed)
    m = machine()
    finish = fake.run(m)
    assert finish.verdict is Verdict.ABORTED
    assert finish.reason is not None and "restarted 3 times" in finish.reason
    assert "out of tolerance" in finish.reason and "ASM5025" in finish.reason
    assert m.rows  # the process data is kept


def test_load_out_of_tolerance_restarts() -> None:
    """The PAU delivers 20 % less than asked: a load violation, not a speed one."""

    def power(t: float, ln: FakeLane) -> float:
        _, target = ln.control
        return 0.8 * (target or 0.0)

    finish = lane(power=power).run(machine())
    assert finish.verdict is Verdict.ABORTED
    assert finish.reason is not None and "load" in finish.reason


def test_never_reaching_the_speed_is_invalid() -> None:
    finish = lane(speed=lambda t, ln: 10.0).run(machine())
    assert finish.verdict is Verdict.ABORTED
    assert finish.reason is not None and "did not reach 25 ± 2 km/h within 60 s" in finish.reason


def test_warming_analyser_aborts_before_anything_moves() -> None:
    fake = lane()
    fake.replies[("analyser", "read_status")] = AnalyserStatus.WARMING_UP
    finish = fake.run(machine())
    assert finish.verdict is Verdict.ABORTED and finish.reason == "gas analyser warming up"
    assert [c.method for c in fake.commands] == ["read_status"]


def test_dyno_lost_mid_mode_aborts_with_the_reason_and_keeps_the_data() -> None:
    fake = lane(fail_at=(20.0, "dyno", "no answer within 0.5 s"))
    m = machine()
    finish = fake.run(m)
    assert finish.verdict is Verdict.ABORTED
    assert finish.reason is not None
    assert finish.reason.startswith("chassis dynamometer failed during ASM")
    assert "no answer within 0.5 s" in finish.reason
    assert len(m.rows) == 19 and m.evidence()["states"][-1] == "ABORTED"
    assert Command("dyno", "control_off") in m.safe_state()


def test_transition_table_is_closed() -> None:
    from gateway.inspection.asm import TRANSITIONS

    reachable = {State.IDLE} | {s for targets in TRANSITIONS.values() for s in targets}
    assert reachable == set(State)
