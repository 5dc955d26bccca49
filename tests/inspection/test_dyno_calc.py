"""Property tests of the dyno-method formulas (gateway/inspection/dyno_calc.py): dilution
factor, NO humidity correction, ASM loads, VMAS mass and g/km, the power correction, the
ECE R15 trace and its band, the power scan and the coast-down formulas."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.inspection import dyno_calc as calc
from gateway.inspection.vmas import load_trace
from gateway.limits import load_table

F = calc.Formulas.from_table(load_table("emission-formulas"))
co2s = st.floats(min_value=0.5, max_value=16.0)
cos = st.floats(min_value=0.0, max_value=8.0)
temps = st.floats(min_value=-20.0, max_value=45.0)
rhs = st.floats(min_value=0.0, max_value=100.0)
pressures = st.floats(min_value=80.0, max_value=106.0)


@dataclass(frozen=True)
class Air:
    temperature_c: float
    humidity_pct: float
    pressure_kpa: float


def test_every_constant_comes_from_the_table_and_is_marked() -> None:
    table = load_table("emission-formulas")
    assert set(calc.Formulas.__dataclass_fields__) <= set(table.parameters)
    assert table.parameters["df_a"].confidence == "mem"  # unverified against GB 18285
    assert table.parameters["kh_coefficient"].confidence == "mem"


@given(co2s, cos)
def test_dilution_factor_is_bounded_and_never_lowers(co2: float, co: float) -> None:
    df = F.dilution_factor(co2, co)
    assert F.df_min <= df <= F.df_max


@given(st.floats(min_value=0.0, max_value=0.9))
def test_undiluted_exhaust_needs_no_correction(co_share: float) -> None:
    """At the theoretical CO2 of its CO/CO2 split, DF is exactly 1."""
    x = 1.0 - co_share
    total = 100.0 / (F.df_a + F.df_b * x)  # theoretical CO+CO2 of a stoichiometric burn
    co2, co = total * x, total * co_share
    assert F.dilution_factor(co2, co) == pytest.approx(1.0, abs=1e-9)


@given(st.floats(min_value=1.0, max_value=2.9), st.floats(min_value=0.0, max_value=0.5))
def test_dilution_with_air_is_undone(dilution: float, co_share: float) -> None:
    """Mixing the exhaust with air by a factor d scales CO and CO2 by 1/d: DF recovers d."""
    x = 1.0 - co_share
    total = 100.0 / (F.df_a + F.df_b * x)
    assert F.dilution_factor(total * x / dilution, total * co_share / dilution) == pytest.approx(
        dilution, rel=1e-9
    )


@given(co2s, co2s, cos)
def test_more_co2_means_less_correction(a: float, b: float, co: float) -> None:
    assume(a < b)
    assert F.dilution_factor(a, co) >= F.dilution_factor(b, co)


def test_kh_is_one_at_the_reference_humidity() -> None:
    """H = 10.71 g/kg: find the RH giving it at 25 °C / 101.3 kPa; kH = 1 there."""
    pv = F.saturation_pressure_kpa(25.0)
    # H = k·RH·pv/(pb - pv·RH/100)  =>  RH = H·pb / (k·pv + H·pv/100)
    h, pb = F.kh_reference_g_kg, 101.3
    rh = h * pb / (F.humidity_ratio_factor * pv + h * pv / 100)
    assert F.kh(Air(25.0, rh, pb)) == pytest.approx(1.0, abs=1e-9)


@given(temps, rhs, rhs, pressures)
def test_kh_grows_with_humidity_and_is_clamped(t: float, rh1: float, rh2: float, p: float) -> None:
    assume(rh1 < rh2)
    low, high = F.kh(Air(t, rh1, p)), F.kh(Air(t, rh2, p))
    assert F.kh_min <= low <= high <= F.kh_max


def test_saturation_pressure_known_points() -> None:
    assert F.saturation_pressure_kpa(0.0) == pytest.approx(0.611, abs=0.002)
    assert F.saturation_pressure_kpa(20.0) == pytest.approx(2.339, abs=0.01)
    assert F.saturation_pressure_kpa(40.0) == pytest.approx(7.38, abs=0.02)


@given(st.floats(min_value=500, max_value=4000))
def test_asm_loads(rm: float) -> None:
    table = load_table("gb18285-2018")
    p5025 = calc.asm_load_kw(rm, table.number("asm_5025_load_divisor_kg_per_kw"))
    p2540 = calc.asm_load_kw(rm, table.number("asm_2540_load_divisor_kg_per_kw"))
    assert p5025 == pytest.approx(rm / 148) and p2540 == pytest.approx(rm / 185)
    assert p5025 > p2540


def test_asm_load_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        calc.asm_load_kw(0, 148)


flows = st.floats(min_value=0.0, max_value=200.0)


@given(flows, st.floats(0, 2000), st.floats(0, 10), st.floats(0, 4000), st.floats(1.1, 5.0))
def test_mass_is_linear_in_flow(flow: float, hc: float, co: float, no: float, k: float) -> None:
    one = F.mass_rates_g_s(flow, hc, co, no)
    scaled = F.mass_rates_g_s(flow * k, hc, co, no)
    for a, b in zip(one, scaled, strict=True):
        assert b == pytest.approx(a * k, rel=1e-9, abs=1e-12)


def test_mass_of_a_known_second() -> None:
    """1 L/s of exhaust with 1 % CO at 20 °C: 0.01 L CO = 0.01·28.01/24.055 g."""
    hc, co, nox = F.mass_rates_g_s(1.0, 100, 1.0, 1000)
    assert co == pytest.approx(0.01 * 28.01 / 24.055)
    assert nox == pytest.approx(1e-3 * 46.01 / 24.055)
    assert hc == pytest.approx(600e-6 * 13.876 / 24.055)  # hexane ppm x 6 as CH1.85


@given(st.floats(19.0, 21.0), st.floats(0.0, 5.0), st.floats(0.0, 1.0))
def test_dilution_ratio_from_o2(ambient: float, exhaust: float, share: float) -> None:
    """Mixing ``share`` of exhaust into air gives an O2 from which the share comes back."""
    diluted = share * exhaust + (1 - share) * ambient
    assert calc.dilution_ratio(ambient, diluted, exhaust) == pytest.approx(share, abs=1e-9)


def test_dilution_ratio_is_clamped() -> None:
    assert calc.dilution_ratio(20.9, 21.5, 1.0) == 0.0
    assert calc.dilution_ratio(20.9, 0.0, 1.0) == 1.0
    assert calc.dilution_ratio(20.9, 10.0, 21.0) == 0.0


@given(
    st.lists(st.floats(0, 120, allow_subnormal=False), min_size=1, max_size=300),
    st.floats(0.1, 1.0),
)
def test_distance_and_per_km(speeds: list[float], dt: float) -> None:
    km = calc.distance_km(speeds, dt)
    assert km == pytest.approx(sum(speeds) * dt / 3600)
    if km > 1e-9:
        assert calc.per_km(10.0, km) * km == pytest.approx(10.0)


def test_trace_is_the_195_s_ece15_cycle() -> None:
    trace = load_trace()
    assert len(trace) == 196 and trace[0] == trace[-1] == 0.0
    assert max(trace) == 50.0
    assert calc.distance_km(trace, 1.0) == pytest.approx(1.013, abs=0.005)
    assert trace[15:24] == [15.0] * 9 and trace[61:86] == [32.0] * 25


@given(st.floats(0.0, 195.0))
def test_band_contains_the_target(t: float) -> None:
    trace = load_trace()
    low, high = calc.band_at(trace, t, 2.0, 1.0)
    assert low <= calc.target_at(trace, t) <= high
    assert high - low >= 4.0 - 1e-9 or low == 0.0


def test_band_widens_with_the_time_tolerance_on_ramps() -> None:
    trace = load_trace()
    low, high = calc.band_at(trace, 13.0, 2.0, 1.0)  # accelerating at 3.75 km/h per s
    assert (low, high) == pytest.approx((3.75 - 2.0, 11.25 + 2.0))


def test_excursions() -> None:
    e = calc.Excursions()
    for inside in (False, False, True, False):
        e.add(inside, 1.0)
    assert (e.continuous_s, e.cumulative_s) == (1.0, 3.0)
    assert not e.exceeded(2.0, 3.0) and e.exceeded(2.0, 2.5)


@given(temps, rhs, pressures)
def test_power_correction_is_one_at_reference_and_monotone(t: float, rh: float, p: float) -> None:
    alpha = F.power_correction(Air(t, rh, p))
    assert alpha > 0
    assert F.power_correction(Air(t, rh, p - 5)) > alpha  # thinner air: more correction
    assert F.power_correction(Air(t + 5, rh, p)) > alpha  # hotter air: more correction


def test_power_correction_reference() -> None:
    assert F.power_correction(Air(24.85, 0.0, 99.0)) == pytest.approx(1.0, abs=1e-9)


@given(st.lists(st.floats(1.0, 200.0), min_size=2, max_size=60))
def test_scan_maximum_and_end(powers: list[float]) -> None:
    points = [calc.ScanPoint(80.0 - i, p) for i, p in enumerate(powers)]
    best = calc.max_power_point(points)
    assert best.power_kw == max(powers)
    i = powers.index(max(powers))
    after = powers[i + 1 :]
    dropped = any(p <= 0.8 * max(powers) for p in after)
    slow = bool(after) and points[-1].speed_kmh < 0.75 * points[i].speed_kmh
    assert calc.scan_finished(points, 0.2, 0.75) == (dropped or slow)


@given(st.floats(500, 3000), st.floats(30, 80), st.floats(1, 29), st.floats(1, 40))
def test_coast_time_and_power_are_inverse(m: float, v1: float, dv: float, p: float) -> None:
    t = calc.coast_time_s(m, v1, v1 - dv, p)
    assert t > 0
    assert calc.coast_power_kw(m, v1, v1 - dv, t) == pytest.approx(p)


def test_coast_time_known_value() -> None:
    """907 kg from 48 to 32 km/h at 10 kW: 907·(13.33² - 8.89²)/2000/10 = 4.48 s."""
    assert calc.coast_time_s(907, 48, 32, 10) == pytest.approx(4.479, abs=0.01)


def test_crossing_time_interpolates() -> None:
    assert calc.crossing_time([0, 1, 2], [50, 46, 42], 48) == pytest.approx(0.5)
    assert calc.crossing_time([0, 1], [30, 29], 48) is None
    assert calc.crossing_time([0, 0.1], [48.0, 47.0], 48.0) == 0.0


@given(st.lists(st.floats(0.0, 200.0), min_size=1, max_size=40), st.integers(1, 9))
def test_smoothing_keeps_speeds_and_bounds(powers: list[float], width: int) -> None:
    points = [calc.ScanPoint(80.0 - i, p) for i, p in enumerate(powers)]
    out = calc.smoothed(points, width)
    assert [p.speed_kmh for p in out] == [p.speed_kmh for p in points]
    assert all(min(powers) - 1e-9 <= p.power_kw <= max(powers) + 1e-9 for p in out)
    if width == 1:
        assert [p.power_kw for p in out] == powers


def test_smoothing_moves_a_noisy_peak_back() -> None:
    """A flat-topped curve with one noisy spike below the true peak."""
    speeds = range(70, 40, -1)
    curve = [60 * (v / 60) * (2 - v / 60) if v <= 60 else 60 * (72 - v) / 12 for v in speeds]
    curve[speeds.index(52)] += 1.5  # +2.5 % noise at 52 km/h
    points = [calc.ScanPoint(float(v), p) for v, p in zip(speeds, curve, strict=True)]
    assert calc.max_power_point(points).speed_kmh == 52.0
    assert 56.0 <= calc.max_power_point(calc.smoothed(points, 5)).speed_kmh <= 60.0


@given(st.floats(500, 3000), st.floats(1, 30), st.floats(0.05, 0.5), st.integers(0, 2**16))
def test_band_time_of_a_constant_power_coast(m: float, p: float, dt: float, seed: int) -> None:
    """v² falls linearly at constant power: the fit gives the exact band time even when
    the samples are read at jittered times (their stamps are exact)."""
    assume(calc.coast_time_s(m, 48, 32, p) >= 5 * dt)  # a few samples in the band
    rng = random.Random(seed)
    v0 = 60.0
    k = 2000 * p / m * 3.6**2  # d(v²)/dt in (km/h)²/s
    end = (v0 * v0 - 20.0 * 20.0) / k  # sample until 20 km/h
    times = [i * dt + rng.uniform(-0.3, 0.3) * dt for i in range(int(end / dt) + 1)]
    speeds = [(v0 * v0 - k * t) ** 0.5 for t in times]
    got = calc.band_time_s(times, speeds, 48, 32)
    assert got == pytest.approx(calc.coast_time_s(m, 48, 32, p), rel=1e-6)


def test_band_time_needs_a_falling_speed() -> None:
    assert calc.band_time_s([0, 1, 2, 3], [40.0, 40.0, 40.0, 40.0], 48, 32) is None
    assert calc.band_time_s([0, 1], [50.0, 40.0], 48, 32) is None  # never below 32
