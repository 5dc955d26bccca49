"""Pure formulas of the dynamometer emission tests (ASM, VMAS, lug-down) and dyno checks.

No I/O and no constants of the standards here: every coefficient comes from a limit table
(``emission-formulas``, ``gb18285-2018``, ``gb3847-2018``, ``dyno-checks``) through
``Formulas.from_table``, so the formulas can be property-tested and their data changed
without touching code. The DF and kH forms are the commonly published US EPA ones;
standards.md says GB 18285-2018's own forms are unread (the table marks them ``mem``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from gateway.limits import LimitTable

#: ppm in one % by volume
PPM_PER_PCT: Final = 10_000.0
#: 0 °C in kelvin
KELVIN: Final = 273.15


class AmbientLike(Protocol):
    """Ambient conditions as a dyno or analyser reports them."""

    @property
    def temperature_c(self) -> float: ...
    @property
    def humidity_pct(self) -> float: ...
    @property
    def pressure_kpa(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Formulas:
    """The constants of the emission formulas (from ``emission-formulas.yaml``)."""

    df_a: float
    df_b: float
    df_min: float
    df_max: float
    kh_coefficient: float
    kh_reference_g_kg: float
    humidity_ratio_factor: float
    kh_min: float
    kh_max: float
    magnus_c0_kpa: float
    magnus_a: float
    magnus_b_c: float
    molar_volume_l: float
    molar_mass_hc_g: float
    hc_carbon_per_ppm: float
    molar_mass_co_g: float
    molar_mass_nox_g: float
    power_ref_kpa: float
    power_ref_k: float
    power_pressure_exponent: float
    power_temperature_exponent: float
    power_engine_factor: float

    @classmethod
    def from_table(cls, table: LimitTable) -> Formulas:
        """Every field read from the table's parameters of the same name."""
        return cls(**{name: table.number(name) for name in cls.__dataclass_fields__})

    # --- ASM corrections ------------------------------------------------------------------
    def theoretical_co2_pct(self, co2_pct: float, co_pct: float) -> float:
        """Undiluted CO2 of a petrol exhaust with this CO2/CO split: 100x/(a + b·x)."""
        total = co2_pct + co_pct
        x = co2_pct / total if total > 0 else 1.0
        return 100.0 * x / (self.df_a + self.df_b * x)

    def dilution_factor(self, co2_pct: float, co_pct: float) -> float:
        """DF = theoretical CO2 / measured CO2, kept within [df_min, df_max]."""
        if co2_pct <= 0:
            return self.df_max
        df = self.theoretical_co2_pct(co2_pct, co_pct) / co2_pct
        return min(max(df, self.df_min), self.df_max)

    def saturation_pressure_kpa(self, temperature_c: float) -> float:
        """Saturation vapour pressure of water over a flat surface (Magnus form)."""
        t = temperature_c
        return self.magnus_c0_kpa * math.exp(self.magnus_a * t / (t + self.magnus_b_c))

    def humidity_ratio_g_kg(self, ambient: AmbientLike) -> float:
        """Absolute humidity H, g water per kg dry air, from RH, temperature and pressure."""
        rh = min(max(ambient.humidity_pct, 0.0), 100.0)
        pv = self.saturation_pressure_kpa(ambient.temperature_c)
        dry = ambient.pressure_kpa - pv * rh / 100.0
        if dry <= 0:
            raise ValueError(f"ambient pressure {ambient.pressure_kpa} kPa is implausible")
        return self.humidity_ratio_factor * rh * pv / dry

    def kh_unclamped(self, ambient: AmbientLike) -> float:
        """kH = 1 / (1 - c·(H - H_ref)); 1 at the reference humidity."""
        h = self.humidity_ratio_g_kg(ambient)
        return 1.0 / (1.0 - self.kh_coefficient * (h - self.kh_reference_g_kg))

    def kh(self, ambient: AmbientLike) -> float:
        """NO humidity correction factor, clamped to the plausible range."""
        value = self.kh_unclamped(ambient)
        if value <= 0:  # beyond the pole of the formula: absurdly humid input
            return self.kh_max
        return min(max(value, self.kh_min), self.kh_max)

    def kh_plausible(self, ambient: AmbientLike) -> bool:
        """Whether kH needed no clamping."""
        value = self.kh_unclamped(ambient)
        return value > 0 and self.kh_min <= value <= self.kh_max

    # --- VMAS mass emissions ----------------------------------------------------------------
    def density_g_l(self, molar_mass_g: float) -> float:
        """Density of a gas at the flowmeter's standard condition."""
        return molar_mass_g / self.molar_volume_l

    def mass_rates_g_s(
        self, exhaust_flow_l_s: float, hc_ppm: float, co_pct: float, nox_ppm: float
    ) -> tuple[float, float, float]:
        """Mass of HC, CO, NOx per second from raw concentrations and exhaust flow.

        HC is the analyser's n-hexane equivalent, counted as carbon (× 6) of CH1.85; NOx is
        counted as NO2. Concentrations must already be corrected (NO for humidity).
        """
        flow = max(exhaust_flow_l_s, 0.0)
        hc_c = max(hc_ppm, 0.0) * self.hc_carbon_per_ppm
        hc = flow * hc_c * 1e-6 * self.density_g_l(self.molar_mass_hc_g)
        co = flow * max(co_pct, 0.0) / 100.0 * self.density_g_l(self.molar_mass_co_g)
        nox = flow * max(nox_ppm, 0.0) * 1e-6 * self.density_g_l(self.molar_mass_nox_g)
        return hc, co, nox

    # --- lug-down power correction -----------------------------------------------------------
    def power_correction(self, ambient: AmbientLike) -> float:
        """α = fa^fm, fa = (p_ref/pd)^pe · (T/T_ref)^te with pd the dry-air pressure."""
        pv = self.saturation_pressure_kpa(ambient.temperature_c)
        pd = ambient.pressure_kpa - pv * min(max(ambient.humidity_pct, 0.0), 100.0) / 100.0
        if pd <= 0:
            raise ValueError(f"ambient pressure {ambient.pressure_kpa} kPa is implausible")
        t_k = ambient.temperature_c + KELVIN
        fa = (self.power_ref_kpa / pd) ** self.power_pressure_exponent * (
            t_k / self.power_ref_k
        ) ** self.power_temperature_exponent
        return float(fa**self.power_engine_factor)


def dilution_ratio(ambient_o2_pct: float, diluted_o2_pct: float, exhaust_o2_pct: float) -> float:
    """Share of exhaust in the diluted flow, from O2 balance: (O2a - O2d)/(O2a - O2e) in [0, 1]."""
    span = ambient_o2_pct - exhaust_o2_pct
    if span <= 0:
        return 0.0
    return min(max((ambient_o2_pct - diluted_o2_pct) / span, 0.0), 1.0)


def asm_load_kw(reference_mass_kg: float, divisor_kg_per_kw: float) -> float:
    """ASM load P = RM / divisor (148 for 5025, 185 for 2540)."""
    if reference_mass_kg <= 0 or divisor_kg_per_kw <= 0:
        raise ValueError("reference mass and divisor must be positive")
    return reference_mass_kg / divisor_kg_per_kw


def distance_km(speeds_kmh: Sequence[float], interval_s: float) -> float:
    """Distance of a run sampled every ``interval_s`` (rectangle rule on the samples)."""
    return sum(max(v, 0.0) for v in speeds_kmh) * interval_s / 3600.0


def per_km(mass_g: float, km: float) -> float:
    """g/km; a run that went nowhere has no result."""
    if km <= 0:
        raise ValueError("no distance driven")
    return mass_g / km


# --- the VMAS trace --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ramp:
    """One operation of a driving cycle: linear from ``v0`` to ``v1`` over ``duration_s``."""

    duration_s: float
    v0: float
    v1: float


def expand_trace(ramps: Sequence[Ramp]) -> list[float]:
    """Target speed at every whole second from 0 to the cycle's end."""
    out = [ramps[0].v0 if ramps else 0.0]
    for ramp in ramps:
        steps = round(ramp.duration_s)
        for i in range(1, steps + 1):
            out.append(ramp.v0 + (ramp.v1 - ramp.v0) * i / steps)
    return out


def target_at(trace: Sequence[float], t_s: float) -> float:
    """The trace at ``t_s`` (linear between whole seconds; held at the ends)."""
    if t_s <= 0:
        return trace[0]
    if t_s >= len(trace) - 1:
        return trace[-1]
    i = int(t_s)
    frac = t_s - i
    return trace[i] + (trace[i + 1] - trace[i]) * frac


def band_at(
    trace: Sequence[float], t_s: float, tolerance_kmh: float, tolerance_s: float
) -> tuple[float, float]:
    """Allowed speeds at ``t_s``: the trace's range over t ± tolerance_s, ± tolerance_kmh."""
    points = [target_at(trace, t_s + d) for d in (-tolerance_s, 0.0, tolerance_s)]
    whole = range(math.ceil(t_s - tolerance_s), math.floor(t_s + tolerance_s) + 1)
    points += [target_at(trace, float(s)) for s in whole]
    return max(min(points) - tolerance_kmh, 0.0), max(points) + tolerance_kmh


# --- tolerance bookkeeping (ASM restarts, VMAS invalidation) -----------------------------------


@dataclass(slots=True)
class Excursions:
    """Time spent outside a tolerance: in the current run of misses and in all."""

    continuous_s: float = 0.0
    cumulative_s: float = 0.0

    def add(self, inside: bool, dt_s: float) -> None:
        """Count one sample lasting ``dt_s``."""
        if inside:
            self.continuous_s = 0.0
        else:
            self.continuous_s += dt_s
            self.cumulative_s += dt_s

    def exceeded(self, continuous_max_s: float, cumulative_max_s: float) -> bool:
        """Strictly more than allowed in a row or in all (a tiny epsilon absorbs float sums)."""
        eps = 1e-9
        return (
            self.continuous_s > continuous_max_s + eps or self.cumulative_s > cumulative_max_s + eps
        )


# --- lug-down ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanPoint:
    """One sample of the power scan: roller speed and corrected wheel power."""

    speed_kmh: float
    power_kw: float


def max_power_point(points: Sequence[ScanPoint]) -> ScanPoint:
    """The scan point of maximum power (the first one on a tie): VelMaxHP and MaxHP."""
    if not points:
        raise ValueError("empty power scan")
    return max(points, key=lambda p: p.power_kw)


def smoothed(points: Sequence[ScanPoint], width: int) -> list[ScanPoint]:
    """Power as a centred moving average over ``width`` points (fewer at the ends), speeds
    kept: a flat peak and sensor noise do not throw VelMaxHP about."""
    if width < 1:
        raise ValueError("width must be at least 1")
    half = width // 2
    out = []
    for i, point in enumerate(points):
        window = points[max(0, i - half) : i + half + 1]
        out.append(ScanPoint(point.speed_kmh, sum(p.power_kw for p in window) / len(window)))
    return out


def scan_finished(points: Sequence[ScanPoint], drop: float, end_speed_ratio: float) -> bool:
    """Whether the scan is past the peak: power has fallen ``drop`` (0.2 = 20 %) below the
    maximum after it, or the speed is below ``end_speed_ratio`` of the peak's speed (the
    80 % point is then behind it too)."""
    if len(points) < 2:
        return False
    best = max_power_point(points)
    after = points[points.index(best) + 1 :]
    if best.power_kw <= 0 or not after:
        return False
    dropped = any(p.power_kw <= (1 - drop) * best.power_kw for p in after)
    return dropped or after[-1].speed_kmh < end_speed_ratio * best.speed_kmh


# --- dyno checks -------------------------------------------------------------------------------


def kinetic_kj(inertia_kg: float, v1_kmh: float, v2_kmh: float) -> float:
    """Kinetic energy released between two roller speeds by an inertia, kJ."""
    a, b = v1_kmh / 3.6, v2_kmh / 3.6
    return inertia_kg * (a * a - b * b) / 2000.0


def coast_time_s(inertia_kg: float, v1_kmh: float, v2_kmh: float, power_kw: float) -> float:
    """Computed coast time from v1 to v2 at a constant absorbed power (CCDT)."""
    if power_kw <= 0:
        raise ValueError("coast-down power must be positive")
    return kinetic_kj(inertia_kg, v1_kmh, v2_kmh) / power_kw


def coast_power_kw(inertia_kg: float, v1_kmh: float, v2_kmh: float, time_s: float) -> float:
    """Mean absorbed power while coasting from v1 to v2 in ``time_s`` (parasitic loss)."""
    if time_s <= 0:
        raise ValueError("coast time must be positive")
    return kinetic_kj(inertia_kg, v1_kmh, v2_kmh) / time_s


def crossing_time(
    times: Sequence[float], speeds: Sequence[float], threshold: float
) -> float | None:
    """When a falling speed first crosses ``threshold`` (linear between samples)."""
    for i in range(1, len(speeds)):
        a, b = speeds[i - 1], speeds[i]
        if a >= threshold > b:
            frac = (a - threshold) / (a - b)
            return times[i - 1] + (times[i] - times[i - 1]) * frac
    return None


def band_time_s(
    times: Sequence[float], speeds: Sequence[float], v1: float, v2: float
) -> float | None:
    """Time a falling speed takes from ``v1`` to ``v2``, from a least-squares line of v²
    over time through the samples in the band (and one either side).

    Coasting against a constant power, ½·I·v² falls linearly with time, so the line fits a
    loaded coast exactly and a free one closely; fitting all the band's samples averages
    out the jitter of when each was read. Fewer than three samples: the interpolated
    crossings.
    """
    inside = [i for i, v in enumerate(speeds) if v2 <= v <= v1]
    if len(inside) < 3:
        t1, t2 = crossing_time(times, speeds, v1), crossing_time(times, speeds, v2)
        return None if t1 is None or t2 is None else t2 - t1
    lo, hi = max(inside[0] - 1, 0), min(inside[-1] + 1, len(speeds) - 1)
    ts = list(times[lo : hi + 1])
    ys = [v * v for v in speeds[lo : hi + 1]]
    n = len(ts)
    mt, my = sum(ts) / n, sum(ys) / n
    sxx = sum((t - mt) ** 2 for t in ts)
    if sxx <= 0:
        return None
    slope = sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / sxx
    if slope >= 0:
        return None  # not slowing down
    return (v2 * v2 - v1 * v1) / slope
