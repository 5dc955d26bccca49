"""Pure calculations and limit data of the emission items (TSI, FA), the order check, the
sampling clock, and the analyser simulator's scripted driver."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.evidence import EvidenceStore
from gateway.inspection.emissions_calc import (
    HEAVY_GROSS_MASS_KG,
    GasSample,
    agrees,
    free_acceleration_average,
    high_idle_band_key,
    in_band,
    limit_key,
    mean_reported,
    reported,
    window,
    window_means,
)
from gateway.inspection.emissions_common import InvalidTest, Ticker, check_order
from gateway.inspection.emissions_diesel import FreeAccelerationItem
from gateway.inspection.emissions_petrol import TwoSpeedIdleItem
from gateway.inspection.items import InspectionState, ItemAborted, ItemContext
from gateway.inspection.order import InspectionOrder
from gateway.inspection.procedures import PROCEDURES
from gateway.limits import load_table
from gateway.records import Verdict
from simulators.devices.engine_script import DriverScript, DriverScriptOptions, EngineRegime
from tests.drivers.test_nha503_driver import FAST, FakeClock, rig
from tests.harness import order

PETROL = load_table("gb18285-2018")
DIESEL = load_table("gb3847-2018")


def sample(phase: str = "idle_measuring", **values: Any) -> GasSample:
    base: dict[str, Any] = {"t_s": 1.0, "phase": phase, "rpm": 800, "co_pct": 0.3,
                            "hc_ppm": 50, "co2_pct": 14.5, "o2_pct": 0.4, "lambda_": 1.0,
                            "oil_temp_c": 85.0}  # fmt: skip
    return GasSample(**{**base, **values})


# --- rounding, windows, averages ------------------------------------------------------------
def test_reported_rounds_half_to_even_on_the_decimal_text() -> None:
    assert reported(0.125, "0.01") == 0.12 and reported(0.135, "0.01") == 0.14
    assert reported(78.5, "1") == 78 and reported(79.5, "1") == 80
    assert reported(1.0449, "0.01") == 1.04 and reported(0.1 + 0.2, "0.01") == 0.3
    assert mean_reported([0.28, 0.29], "0.01") == 0.28  # 0.285 on paper, half to even
    assert mean_reported([0.29, 0.30], "0.01") == 0.30  # 0.295 -> 0.30
    with pytest.raises(ValueError, match="cannot report"):
        reported(math.nan, "0.01")


@given(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from(["1", "0.1", "0.01"]))
def test_reported_is_within_half_a_step_and_idempotent(value: float, step: str) -> None:
    once = reported(value, step)
    assert abs(once - value) <= float(step) / 2 + 1e-9
    assert reported(once, step) == once


def test_window_keeps_the_phase_in_order() -> None:
    samples = [sample("a", t_s=1), sample("b", t_s=2), sample("a", t_s=3)]
    assert [s.t_s for s in window(samples, "a")] == [1, 3]
    assert window(samples, "c") == []


def test_window_means_are_reported_at_the_resolution() -> None:
    samples = [sample(co_pct=0.28, hc_ppm=47, lambda_=1.04, rpm=2510),
               sample(co_pct=0.29, hc_ppm=48, lambda_=1.05, rpm=2490)]  # fmt: skip
    means = window_means(samples)
    assert (means.samples, means.co_pct, means.hc_ppm, means.lambda_, means.rpm) == (
        2, 0.28, 48, 1.04, 2500,  # 0.285 -> 0.28 and 1.045 -> 1.04 (half to even), 47.5 -> 48
    )  # fmt: skip
    assert isinstance(means.hc_ppm, int) and isinstance(means.rpm, int)
    assert means.co_plus_co2_pct == 14.78
    with pytest.raises(ValueError, match="no samples"):
        window_means([])


@given(st.lists(st.tuples(st.floats(0, 10), st.integers(0, 9999)), min_size=1, max_size=60))
def test_window_means_lie_between_the_extremes(values: list[tuple[float, int]]) -> None:
    means = window_means([sample(co_pct=co, hc_ppm=hc) for co, hc in values])
    cos, hcs = [co for co, _ in values], [hc for _, hc in values]
    assert min(cos) - 0.005 <= means.co_pct <= max(cos) + 0.005
    assert min(hcs) <= means.hc_ppm <= max(hcs)
    assert means.samples == len(values)


def test_bands_are_inclusive_and_open_sides_unbounded() -> None:
    assert in_band(2300, 2300, 2700) and in_band(2700, 2300, 2700)
    assert not in_band(2299, 2300, 2700) and not in_band(2701, 2300, 2700)
    assert in_band(1e9, 6.0, None) and in_band(-1e9, None, 1.2)


def test_high_idle_band_by_gross_mass() -> None:
    assert high_idle_band_key(HEAVY_GROSS_MASS_KG) == "tsi_high_idle_rpm_light"
    assert high_idle_band_key(HEAVY_GROSS_MASS_KG + 1) == "tsi_high_idle_rpm_heavy"
    light, heavy = (
        PETROL.limits["tsi_high_idle_rpm_light"],
        PETROL.limits["tsi_high_idle_rpm_heavy"],
    )
    assert (light.low, light.high, heavy.low, heavy.high) == (2300, 2700, 1600, 2000)


def test_limit_keys_by_limit_set() -> None:
    assert limit_key("tsi_idle_co_pct", "b") == "tsi_idle_co_pct_b"
    with pytest.raises(ValueError, match="unknown limit set"):
        limit_key("tsi_idle_co_pct", "c")


@given(st.lists(st.floats(0, 10), min_size=3, max_size=3))
def test_free_acceleration_average_is_the_mean_of_the_recorded(ks: list[float]) -> None:
    era = free_acceleration_average(ks)
    assert abs(era - sum(ks) / 3) <= 0.005 + 1e-9
    assert min(ks) - 0.005 <= era <= max(ks) + 0.005


def test_free_acceleration_examples_and_agreement() -> None:
    assert free_acceleration_average([1.17, 1.18, 1.19]) == 1.18
    assert free_acceleration_average([1.20, 1.21, 1.20]) == 1.20  # 1.2033: reported 1.20
    assert agrees([0.8, 0.82, 0.81], (0.9, 0.8, 0.82, 0.81), 0.005)
    assert not agrees([0.8, 0.82, 0.81], (0.8, 0.82, 0.9, 0.81), 0.005)
    assert not agrees([0.8, 0.82, 0.81], (0.82, 0.81), 0.005)


# --- limit data -----------------------------------------------------------------------------
def test_two_speed_idle_limits_as_in_standards_md() -> None:
    expected = {  # key base: (limit a, limit b)
        "tsi_idle_co_pct": (0.6, 0.4), "tsi_idle_hc_ppm": (80, 40),
        "tsi_high_idle_co_pct": (0.3, 0.3), "tsi_high_idle_hc_ppm": (50, 30),
    }  # fmt: skip
    for base, (a, b) in expected.items():
        entry_a, entry_b = PETROL.limits[f"{base}_a"], PETROL.limits[f"{base}_b"]
        assert (entry_a.high, entry_b.high) == (a, b)
        assert (entry_a.confidence, entry_b.confidence) == ("sec", "mem")  # b is [MEM]
        assert entry_a.low is None and entry_a.source.startswith("GB 18285-2018 table 1")
    lam = PETROL.limits["tsi_high_idle_lambda"]
    assert (lam.low, lam.high, lam.confidence) == (0.95, 1.05, "sec")
    dilution = PETROL.limits["tsi_co_plus_co2_pct_min"]
    assert (dilution.low, dilution.high, dilution.confidence) == (6.0, None, "mem")
    assert "RunningParameter.h" in dilution.source
    assert PETROL.name == "GB18285-2018"


def test_free_acceleration_limits_as_in_standards_md() -> None:
    a, b = DIESEL.limits["free_accel_k_m1_a"], DIESEL.limits["free_accel_k_m1_b"]
    assert (a.high, b.high, a.confidence, b.confidence) == (1.2, 0.7, "mem", "mem")
    assert a.unit == "m^-1" and DIESEL.name == "GB3847-2018"


def test_judgement_is_inclusive_at_the_limits() -> None:
    assert PETROL.judge("tsi_idle_co_pct_a", "x", 0.6).verdict is Verdict.PASS
    assert PETROL.judge("tsi_idle_co_pct_a", "x", 0.61).verdict is Verdict.FAIL
    assert PETROL.judge("tsi_high_idle_lambda", "x", 0.95).verdict is Verdict.PASS
    assert PETROL.judge("tsi_high_idle_lambda", "x", 1.06).verdict is Verdict.FAIL
    assert DIESEL.judge("free_accel_k_m1_b", "x", 0.7).verdict is Verdict.PASS
    assert DIESEL.judge("free_accel_k_m1_b", "x", 0.71).verdict is Verdict.FAIL


# --- order check, clock, registry -----------------------------------------------------------
def context(tmp_path: Path, **fields: Any) -> ItemContext:
    body = InspectionOrder.model_validate({**order(1, ["TSI"]), **fields})
    return ItemContext(body, "TSI", {}, lambda *_: None, EvidenceStore(tmp_path), InspectionState())


def test_order_must_fit_the_method_and_fuel(tmp_path: Path) -> None:
    petrol = frozenset({"petrol", "hybrid"})
    check_order(context(tmp_path, emission_method="two_speed_idle"), "two_speed_idle", petrol)
    check_order(
        context(tmp_path, emission_method="two_speed_idle", fuel="hybrid"), "two_speed_idle", petrol
    )
    with pytest.raises(ItemAborted, match="emission_method is 'none'"):
        check_order(context(tmp_path), "two_speed_idle", petrol)
    ctx = context(tmp_path, emission_method="two_speed_idle", fuel="diesel")
    with pytest.raises(ItemAborted, match="needs a hybrid/petrol vehicle"):
        check_order(ctx, "two_speed_idle", petrol)
    assert issubclass(InvalidTest, ItemAborted) and InvalidTest("x").measurements == []


def test_items_are_registered_with_their_devices() -> None:
    assert isinstance(PROCEDURES["TSI"], TwoSpeedIdleItem)
    assert isinstance(PROCEDURES["FA"], FreeAccelerationItem)
    assert [c.value for c in PROCEDURES["TSI"].needs] == ["gas_analyser"]
    assert [c.value for c in PROCEDURES["FA"].needs] == ["opacimeter"]


class SleepClock:
    """Time that moves only when slept through or spent by hand."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_ticker_does_not_drift() -> None:
    clock = SleepClock()
    ticker = Ticker(0.01, clock.time, clock.sleep)
    for _ in range(20):
        await ticker.tick()
        clock.now += 0.004  # a read inside the period does not push the schedule
    assert ticker.elapsed() == pytest.approx(20 * 0.01 + 0.004)
    assert clock.sleeps[1:] == pytest.approx([0.006] * 19)


async def test_a_late_ticker_catches_up_without_a_burst() -> None:
    clock = SleepClock()
    ticker = Ticker(1.0, clock.time, clock.sleep)
    await ticker.tick()
    clock.now += 3.5  # a read took three and a half periods
    await ticker.tick()  # late by more than a period: the schedule restarts from now
    await ticker.tick()
    assert clock.sleeps == pytest.approx([1.0, 0.0, 1.0])


# --- the simulator's scripted driver --------------------------------------------------------
def test_driver_script_follows_the_clock() -> None:
    script = DriverScript(DriverScriptOptions(reaction_s=3, high_idle_s=70), time_scale=0.5)
    assert script.change(10.0, EngineRegime.IDLE) is None  # not started
    script.on_flow(probe=True, was_probe=False, now=100.0)
    assert script.change(101.0, EngineRegime.IDLE) is None  # still reacting (1.5 s scaled)
    assert script.change(101.0, EngineRegime.HIGH_IDLE) == (EngineRegime.IDLE, 100.0)
    assert script.change(102.0, EngineRegime.IDLE) == (EngineRegime.HIGH_IDLE, 101.5)
    assert script.change(137.0, EngineRegime.HIGH_IDLE) == (EngineRegime.IDLE, 136.5)
    script.on_flow(probe=True, was_probe=True, now=200.0)  # pump on again: no restart
    assert script.started == 100.0
    script.on_flow(probe=False, was_probe=True, now=201.0)
    assert script.change(300.0, EngineRegime.HIGH_IDLE) is None
    inert = DriverScript(None, 1.0)
    inert.on_flow(probe=True, was_probe=False, now=0.0)
    assert inert.change(5.0, EngineRegime.IDLE) is None


async def test_analyser_simulator_plays_the_driver() -> None:
    clock = FakeClock()
    async with rig(sim_options={"driver_script": {}}, clock=clock) as r:
        await r.driver.pump_on()
        assert (await r.driver.read_gases()).engine_speed_rpm == 800
        clock.advance(3.5 * FAST)
        assert (await r.driver.read_gases()).engine_speed_rpm == 2500
        clock.advance(70 * FAST)
        assert (await r.driver.read_gases()).engine_speed_rpm == 800
        await r.driver.pump_off()
        await r.driver.pump_on()  # a new test: the script starts again
        clock.advance(3.5 * FAST)
        assert (await r.driver.read_gases()).engine_speed_rpm == 2500
