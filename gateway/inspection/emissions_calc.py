"""Pure calculations of the emission items: windows, averages, rounding, validity checks.

No I/O here: the two-speed-idle (TSI) and free-acceleration (FA) items record samples and
ask these functions for the window averages, the dilution sum and the free-acceleration
average, so every rule can be tested directly. Limits are *not* here: they come from the
limit tables (``gb18285-2018``, ``gb3847-2018``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

#: gross mass above which a vehicle is heavy (GB/T 15089 M/N classes) for the
#: high-idle speed band: a classification boundary, not a limit
HEAVY_GROSS_MASS_KG: Final = 3500

#: reporting resolution of each value (the analyser's and the platforms' resolution)
RESOLUTION: Final = {
    "co_pct": "0.01",
    "hc_ppm": "1",
    "co2_pct": "0.01",
    "o2_pct": "0.01",
    "lambda": "0.01",
    "rpm": "1",
    "oil_temp_c": "0.1",
    "k_m1": "0.01",
}


def _decimal(value: float) -> Decimal:
    """The decimal text of ``value`` (0.1 is 0.1, not its binary neighbour)."""
    if not math.isfinite(value):
        raise ValueError(f"cannot report {value!r}")
    return Decimal(repr(value))


def _round(value: Decimal, step: str) -> float:
    return float(value.quantize(Decimal(step), rounding=ROUND_HALF_EVEN))


def reported(value: float, step: str) -> float:
    """``value`` rounded to ``step`` by GB/T 8170 (round half to even on the decimal text).

    Rounding the decimal text, not the binary float, keeps 0.125 -> 0.12 and 0.135 -> 0.14
    as written on paper; the value is judged as it is reported.
    """
    return _round(_decimal(value), step)


def mean_reported(values: Sequence[float], step: str) -> float:
    """The arithmetic mean of instrument readings, computed in decimal and reported.

    The readings are decimal numbers (0.28, 0.29); their mean 0.285 must round like the
    number on paper (0.28), not like the binary sum's 0.28500000000000003.
    """
    if not values:
        raise ValueError("no samples in the window")
    total = sum((_decimal(v) for v in values), Decimal(0))
    return _round(total / len(values), step)


@dataclass(frozen=True, slots=True)
class GasSample:
    """One per-second row of the two-speed-idle process data."""

    t_s: float  # procedure seconds since the probe pump started
    phase: str  # e.g. "high_idle_measuring"
    rpm: int
    co_pct: float
    hc_ppm: int
    co2_pct: float
    o2_pct: float
    lambda_: float
    oil_temp_c: float

    def row(self) -> list[float | int | str]:
        """The sample as a row of ``GAS_COLUMNS``."""
        return [
            self.t_s, self.phase, self.rpm, self.co_pct, self.hc_ppm,
            self.co2_pct, self.o2_pct, self.lambda_, self.oil_temp_c,
        ]  # fmt: skip


GAS_COLUMNS: Final = ("t_s", "phase", "rpm", "co_pct", "hc_ppm", "co2_pct", "o2_pct", "lambda",
                      "oil_temp_c")  # fmt: skip


@dataclass(frozen=True, slots=True)
class WindowMeans:
    """Reported averages of one measuring window."""

    samples: int
    co_pct: float
    hc_ppm: int
    co2_pct: float
    o2_pct: float
    lambda_: float
    rpm: int
    oil_temp_c: float

    @property
    def co_plus_co2_pct(self) -> float:
        """The dilution check's sum, reported at the CO/CO2 resolution."""
        return _round(_decimal(self.co_pct) + _decimal(self.co2_pct), RESOLUTION["co_pct"])


def window(samples: Sequence[GasSample], phase: str) -> list[GasSample]:
    """The samples taken in ``phase``, in order."""
    return [s for s in samples if s.phase == phase]


def window_means(samples: Sequence[GasSample]) -> WindowMeans:
    """Arithmetic means of a window, each reported at its resolution."""

    def mean(values: list[float], what: str) -> float:
        return mean_reported(values, RESOLUTION[what])

    return WindowMeans(
        samples=len(samples),
        co_pct=mean([s.co_pct for s in samples], "co_pct"),
        hc_ppm=int(mean([s.hc_ppm for s in samples], "hc_ppm")),
        co2_pct=mean([s.co2_pct for s in samples], "co2_pct"),
        o2_pct=mean([s.o2_pct for s in samples], "o2_pct"),
        lambda_=mean([s.lambda_ for s in samples], "lambda"),
        rpm=int(mean([s.rpm for s in samples], "rpm")),
        oil_temp_c=mean([s.oil_temp_c for s in samples], "oil_temp_c"),
    )


def in_band(value: float, low: float | None, high: float | None) -> bool:
    """Whether ``value`` lies in the inclusive band (an open side is unbounded)."""
    return (low is None or value >= low) and (high is None or value <= high)


def high_idle_band_key(gross_mass_kg: int) -> str:
    """The limit-table key of the high-idle speed band for a vehicle of this gross mass."""
    heavy = gross_mass_kg > HEAVY_GROSS_MASS_KG
    return "tsi_high_idle_rpm_heavy" if heavy else "tsi_high_idle_rpm_light"


def limit_key(base: str, limit_set: str) -> str:
    """The key of a limit that depends on the limit set: ``tsi_idle_co_pct`` + a -> ..._a."""
    if limit_set not in ("a", "b"):
        raise ValueError(f"unknown limit set {limit_set!r}")
    return f"{base}_{limit_set}"


# --- free acceleration ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpacitySample:
    """One row of the free-acceleration process data."""

    t_s: float  # procedure seconds since the first acceleration was armed
    phase: str  # "purge" / "measure" / "idle"
    acceleration: int  # 1-based number of the acceleration this row belongs to
    rpm: int
    k_m1: float
    n_pct: float
    gas_temp_c: int
    oil_temp_c: int

    def row(self) -> list[float | int | str]:
        """The sample as a row of ``OPACITY_COLUMNS``."""
        return [
            self.t_s, self.phase, self.acceleration, self.rpm, self.k_m1,
            self.n_pct, self.gas_temp_c, self.oil_temp_c,
        ]  # fmt: skip


OPACITY_COLUMNS: Final = ("t_s", "phase", "acceleration", "rpm", "k_m1", "n_pct", "gas_temp_c",
                          "oil_temp_c")  # fmt: skip


def free_acceleration_average(recorded_k: Sequence[float]) -> float:
    """ERA: the arithmetic mean of the recorded accelerations' peak k, reported to 0.01."""
    return mean_reported(recorded_k, RESOLUTION["k_m1"])


def agrees(ours: Sequence[float], instrument: Sequence[float], tolerance: float) -> bool:
    """Whether the instrument's last peaks are the ones we recorded (newest last)."""
    if len(instrument) < len(ours):
        return False
    tail = instrument[len(instrument) - len(ours) :]
    return all(abs(a - b) <= tolerance for a, b in zip(ours, tail, strict=True))
