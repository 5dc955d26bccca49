"""VMAS machine on plain events with a fake clock: the 195-s trace followed (pass and fail
on g/km), the tolerance band and its invalidation, the driver's aid values, per-second
mass, a flowmeter not ready and a flowmeter lost mid-cycle."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.devices.dyno_api import FlowReading, FlowStatus, RoadLoad
from drivers.protocols.nha503 import AnalyserStatus
from gateway.inspection.dyno_calc import Formulas, target_at
from gateway.inspection.sansio import Command
from gateway.inspection.vmas import VmasMachine, load_trace
from gateway.limits import load_table
from gateway.records import Verdict
from tests.inspection.machine_driver import FakeLane, Gas

TABLE = load_table("gb18285-2018")
FORMULAS = Formulas.from_table(load_table("emission-formulas"))
TRACE = load_trace()
READY = FlowStatus(False, False, False, False)


def follower(offset: float = 0.0, lag_from: float | None = None, lag_kmh: float = 0.0) -> Any:
    """A driver on the trace (``offset`` km/h off it), slower by ``lag_kmh`` after ``lag_from``."""

    def speed(t: float, lane: FakeLane) -> float:
        t0 = lane.when("vmas_start")
        if t0 is None or lane.when("vmas_stopping") is not None:
            return 0.0
        cycle = t - t0
        v = target_at(TRACE, cycle) + offset
        if lag_from is not None and cycle >= lag_from:
            v -= lag_kmh
        return max(v, 0.0)

    return speed


def flow(exhaust_l_s: float = 8.0, total_l_s: float = 100.0) -> Any:
    def extra(t: float, lane: FakeLane) -> dict[str, Any]:
        share = exhaust_l_s / total_l_s
        o2 = share * 0.3 + (1 - share) * 20.9
        return {"flowmeter": FlowReading(round(o2, 2), 101.3, 30.0, total_l_s * 1.05, total_l_s)}

    return extra


def lane(**kw: Any) -> FakeLane:
    fake = FakeLane(
        speed=kw.pop("speed", follower()), extra=kw.pop("extra", flow()),
        replies={("analyser", "read_status"): AnalyserStatus.READY,
                 ("flowmeter", "read_status"): kw.pop("status", READY)}, **kw,
    )  # fmt: skip
    return fake


def machine(limit_set: str = "a") -> VmasMachine:
    return VmasMachine(TABLE, FORMULAS, 1500.0, limit_set)


def values(finish: Any) -> dict[str, Any]:
    return {m.name: m for m in finish.measurements}


def test_clean_car_follows_the_trace_and_passes() -> None:
    fake = lane(gas=lambda t, ln: Gas(hc_ppm=40, co_pct_vol=0.3, nox_ppm=200))
    m = machine()
    finish = fake.run(m)
    assert finish.verdict is Verdict.PASS, finish
    got = values(finish)
    assert got["distance_km"].value == pytest.approx(1.013, abs=0.01)
    assert got["vmas_co_g_km"].limit.high == 8.0
    assert got["vmas_hc_nox_g_km"].verdict is Verdict.PASS
    assert len(m.rows) == 195  # one row a second of the cycle
    assert (m.rows[0][1], m.rows[-1][1]) == pytest.approx((1.0, 195.0))
    assert Command("dyno", "set_road_load", (RoadLoad(150.0, 0.0, 0.035, 1500.0),)) in fake.commands
    live = [s for s in fake.says if s.step == "vmas_live"]
    assert len(live) == 195
    assert {"target_kmh", "band_low_kmh", "band_high_kmh", "target_ahead_kmh"} <= set(
        live[20].values
    )
    at10: dict[str, Any] = dict(live[9].values)
    assert at10["target_ahead_kmh"] > at10["target_kmh"] == 0  # 10 s: idle, accelerating soon


def test_per_second_mass_sums_to_the_result() -> None:
    fake = lane(gas=lambda t, ln: Gas(hc_ppm=40, co_pct_vol=0.3, nox_ppm=200))
    m = machine()
    finish = fake.run(m)
    col = {name: i for i, name in enumerate(m.columns)}
    rows: list[list[Any]] = m.rows
    co_total = sum(r[col["co_g_s"]] for r in rows)
    got = values(finish)
    assert got["vmas_co_g"].value == pytest.approx(co_total, rel=1e-3)
    assert got["vmas_co_g_km"].value == pytest.approx(co_total / got["distance_km"].value, abs=0.02)
    assert rows[5][col["dilution_ratio"]] == pytest.approx(0.08, abs=0.002)
    assert rows[5][col["exhaust_flow_l_s"]] == pytest.approx(8.0, abs=0.2)


def test_dirty_car_fails_on_co() -> None:
    finish = lane(gas=lambda t, ln: Gas(hc_ppm=150, co_pct_vol=2.5, nox_ppm=600)).run(machine())
    got = values(finish)
    assert finish.verdict is Verdict.FAIL
    assert got["vmas_co_g_km"].verdict is Verdict.FAIL and got["vmas_co_g_km"].value > 8.0


def test_small_deviations_inside_the_band_are_fine() -> None:
    assert lane(speed=follower(offset=1.5)).run(machine()).verdict is Verdict.PASS


def test_driver_out_of_the_band_too_long_invalidates() -> None:
    """5 km/h too slow from 62 s (the 32 km/h cruise): more than 2 s in a row."""
    fake = lane(speed=follower(lag_from=62, lag_kmh=5))
    m = machine()
    finish = fake.run(m)
    assert finish.verdict is Verdict.ABORTED
    assert finish.reason is not None and "driver out of the speed band at 64 s" in finish.reason
    assert "3 s in a row" in finish.reason
    assert "vmas_invalid" in fake.steps() and "vmas_result" not in fake.steps()
    assert values(finish)["out_of_band_s"].value == 3.0
    assert m.rows and m.evidence()["states"][-2:] == ["STOPPING", "DONE"]


def test_flowmeter_not_ready_aborts() -> None:
    finish = lane(status=FlowStatus(False, False, False, True)).run(machine())
    assert finish.verdict is Verdict.ABORTED and "flowmeter not ready" in (finish.reason or "")


def test_flowmeter_lost_mid_cycle_aborts_and_keeps_the_rows() -> None:
    fake = lane(fail_at=(100.0, "flowmeter", "no answer"))
    m = machine()
    finish = fake.run(m)
    assert finish.verdict is Verdict.ABORTED
    assert finish.reason is not None and finish.reason.startswith("flowmeter failed during VMAS")
    assert len(m.rows) == 98  # cycle seconds 1..98 (the cycle began at 1 s)
