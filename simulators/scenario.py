"""The vehicle scenario: what the simulated testers should measure, as a YAML file.

A scenario describes a vehicle (axles, wheels, brakes, lamps, speedometer, engine) and
the timing of the simulated lane; simulators turn it into physically plausible time
series. Unknown keys are rejected so a typo never silently becomes a default.
See docs/scenarios.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WheelBrake(_Model):
    """Brake behaviour of one wheel on the roller tester."""

    max_force_dan: float = Field(gt=0, description="force reached when braking hard, daN")
    drag_force_dan: float = Field(default=5.0, ge=0, description="residual (drag) force, daN")
    rise_time_s: float = Field(default=1.2, gt=0, description="time from pedal to max force")
    locks: bool = Field(default=False, description="wheel locks (slips) at max force")
    delay_s: float = Field(default=0.0, ge=0, description="extra onset delay vs the other side")


class Axle(_Model):
    """One axle: static wheel loads and the brakes of both wheels."""

    load_left_kg: float = Field(gt=0)
    load_right_kg: float = Field(gt=0)
    brake_left: WheelBrake
    brake_right: WheelBrake
    parking_brake: bool = Field(default=False, description="axle carries the parking brake")
    parking_force_left_dan: float = Field(default=0.0, ge=0)
    parking_force_right_dan: float = Field(default=0.0, ge=0)


class Lamp(_Model):
    """One headlamp as the tester sees it."""

    high_intensity_cd: float = Field(ge=0)
    high_horizontal_offset: float = Field(default=0.0, description="tester units (see driver doc)")
    high_vertical_offset: float = Field(default=0.0)
    low_horizontal_offset: float = Field(default=0.0)
    low_vertical_offset: float = Field(default=-0.5)
    height_mm: int = Field(default=700, ge=0)


class Lamps(_Model):
    """The headlamp system: two or four lamps."""

    system: Literal[2, 4] = 2
    left_outer: Lamp
    right_outer: Lamp
    left_inner: Lamp | None = None
    right_inner: Lamp | None = None


class Speedometer(_Model):
    """Speedometer error: actual roller speed when the dashboard shows 40 km/h."""

    actual_at_indicated_40_kmh: float = Field(default=38.0, gt=0, le=60)
    ramp_kmh_per_s: float = Field(default=8.0, gt=0)


class PetrolEngine(_Model):
    """Two-speed idle emissions of a petrol engine (gas analyser)."""

    idle_rpm: float = 800
    high_idle_rpm: float = 2500
    co_idle_pct: float = 0.3
    hc_idle_ppm: float = 80
    co_high_pct: float = 0.2
    hc_high_ppm: float = 50
    co2_pct: float = 14.5
    o2_pct: float = 0.4
    nox_ppm: float = 150
    lambda_high: float = 1.00
    oil_temp_c: float = 85.0
    response_delay_s: float = Field(default=3.0, ge=0, description="probe-to-bench gas delay")


class DieselEngine(_Model):
    """Free-acceleration smoke of a diesel engine (opacimeter)."""

    idle_rpm: float = 750
    max_rpm: float = 3800
    peak_k_m1: list[float] = Field(default_factory=lambda: [0.9, 0.85, 0.8, 0.82])
    oil_temp_c: float = 80.0


class Vehicle(_Model):
    """The simulated vehicle."""

    plate: str = "粤A12345"
    vin: str = "LSVAU2180N2183294"
    axles: list[Axle] = Field(min_length=1, max_length=6)
    lamps: Lamps | None = None
    speedometer: Speedometer | None = None
    petrol: PetrolEngine | None = None
    diesel: DieselEngine | None = None


class Timing(_Model):
    """How fast the simulated lane runs; ``time_scale`` < 1 speeds everything up for CI."""

    time_scale: float = Field(default=1.0, gt=0, le=10)
    brake_sample_hz: float = Field(default=100.0, gt=0, le=1000)
    analyser_warmup_s: float = Field(default=0.0, ge=0)
    noise: float = Field(default=0.01, ge=0, le=0.2, description="relative noise on values")
    seed: int | None = None


class Scenario(_Model):
    """A whole scenario file."""

    name: str = "scenario"
    description: str = ""
    vehicle: Vehicle
    timing: Timing = Timing()


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return Scenario.model_validate(data)
