"""The vehicle scenario: what the simulated testers should measure, as a YAML file.

A scenario describes a vehicle (axles, wheels, brakes, lamps, speedometer, engine) and
the timing of the simulated lane; simulators turn it into physically plausible time
series. Unknown keys are rejected so a typo never silently becomes a default.
See docs/scenarios.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


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


class LoadedGas(_Model):
    """Engine-out exhaust while the car drives a dyno mode (gas analyser, flowmeter)."""

    hc_ppm: float = Field(default=30, ge=0)
    co_pct: float = Field(default=0.1, ge=0)
    no_ppm: float = Field(default=200, ge=0)
    co2_pct: float = Field(default=14.5, ge=0)
    o2_pct: float = Field(default=0.3, ge=0)


class PetrolLoaded(_Model):
    """Exhaust per dyno mode: a clean car is well under the limits, a dirty one over them."""

    asm5025: LoadedGas = LoadedGas()
    asm2540: LoadedGas = LoadedGas()
    vmas: LoadedGas = LoadedGas()


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
    loaded: PetrolLoaded | None = Field(default=None, description="exhaust on the dyno, per mode")


class LugDown(_Model):
    """Smoke and NOx of a diesel at full throttle on the dyno (100 % / 80 % VelMaxHP)."""

    k_100_m1: float = Field(default=0.5, ge=0)
    k_80_m1: float = Field(default=0.6, ge=0)
    nox_100_ppm: float = Field(default=600, ge=0)
    nox_80_ppm: float = Field(default=700, ge=0)


class DieselEngine(_Model):
    """Free-acceleration smoke of a diesel engine (opacimeter)."""

    idle_rpm: float = 750
    max_rpm: float = 3800
    peak_k_m1: list[float] = Field(default_factory=lambda: [0.9, 0.85, 0.8, 0.82])
    oil_temp_c: float = 80.0
    lug_down: LugDown | None = Field(default=None, description="smoke and NOx on the dyno")


class Powertrain(_Model):
    """The car on the rollers: full-throttle wheel power over roller speed, in the test gear.

    Wheel power at full throttle is ``P(v) = P_max · (v/v_m) · (2 − v/v_m)`` up to
    ``v_m = vel_max_hp_kmh`` and falls to 0 at ``governed_speed_kmh`` above it (the
    governor / rev limit). Engine speed is ``rpm_per_kmh · v``, never below ``idle_rpm``.
    """

    max_wheel_power_kw: float = Field(default=60.0, gt=0)
    vel_max_hp_kmh: float = Field(default=60.0, gt=0)
    governed_speed_kmh: float = Field(default=72.0, gt=0)
    rpm_per_kmh: float = Field(default=40.0, gt=0, description="engine r/min per km/h in gear")
    idle_rpm: float = Field(default=800.0, gt=0)
    wheel_inertia_kg: float = Field(default=40.0, ge=0, description="wheels + drive line")
    roller_loss_n: float = Field(default=60.0, ge=0, description="tyre losses on the rollers")
    max_brake_n: float = Field(default=4000.0, gt=0, description="what the driver's brake can do")

    @model_validator(mode="after")
    def _governor_above_peak(self) -> Powertrain:
        if self.governed_speed_kmh <= self.vel_max_hp_kmh:
            raise ValueError("governed_speed_kmh must be above vel_max_hp_kmh")
        return self


OBD_MONITORS: tuple[str, ...] = (
    "misfire", "fuel_system", "components",
    "catalyst", "heated_catalyst", "evaporative_system", "secondary_air_system",
    "ac_refrigerant", "oxygen_sensor", "oxygen_sensor_heater", "egr_system",
    "nmhc_catalyst", "nox_scr_monitor", "boost_pressure", "exhaust_gas_sensor",
    "pm_filter", "egr_vvt_system",
)  # fmt: skip
ObdMonitorState = Literal["complete", "incomplete"]
#: monitors a petrol car supports when the scenario lists none
DEFAULT_READY: tuple[str, ...] = (
    "misfire", "fuel_system", "components", "catalyst", "evaporative_system",
    "oxygen_sensor", "oxygen_sensor_heater",
)  # fmt: skip


def _all_complete(names: tuple[str, ...]) -> dict[str, ObdMonitorState]:
    return {name: "complete" for name in names}


_DTC = r"^[PCBU][0-3][0-9A-F]{3}$"


class Obd(_Model):
    """What the car's OBD answers (ELM327 simulator); unlisted monitors are unsupported."""

    protocol: Literal["3", "4", "5", "6", "7", "8", "9"] = Field(
        default="6", description="ATDPN digit: 6 = ISO 15765-4 CAN 11/500"
    )
    ignition_on: bool = True
    vin: str | None = Field(default=None, description="None: vehicle.vin; '' : not reported")
    mil_on: bool = False
    dtcs: list[Annotated[str, Field(pattern=_DTC)]] = Field(default_factory=list)
    readiness: dict[str, ObdMonitorState] = Field(
        default_factory=lambda: _all_complete(DEFAULT_READY)
    )
    calibration_ids: list[Annotated[str, Field(max_length=16)]] = Field(
        default_factory=lambda: ["JMB*36761500"]
    )
    cvns: list[Annotated[str, Field(pattern=r"^[0-9A-F]{8}$")]] = Field(
        default_factory=lambda: ["1791BC82"]
    )
    coolant_temp_c: float = 88.0
    battery_v: float = 13.8

    @model_validator(mode="after")
    def _known_monitors(self) -> Obd:
        unknown = set(self.readiness) - set(OBD_MONITORS)
        if unknown:
            raise ValueError(f"unknown readiness monitors {sorted(unknown)}; known: {OBD_MONITORS}")
        return self


class Vehicle(_Model):
    """The simulated vehicle."""

    plate: str = "粤A12345"
    vin: str = "LSVAU2180N2183294"
    axles: list[Axle] = Field(min_length=1, max_length=6)
    lamps: Lamps | None = None
    speedometer: Speedometer | None = None
    petrol: PetrolEngine | None = None
    diesel: DieselEngine | None = None
    reference_mass_kg: float = Field(default=1470.0, gt=0, description="RM: ASM/VMAS loads")
    powertrain: Powertrain = Powertrain()
    obd: Obd | None = None


class Timing(_Model):
    """How fast the simulated lane runs; ``time_scale`` < 1 speeds everything up for CI."""

    time_scale: float = Field(default=1.0, gt=0, le=10)
    brake_sample_hz: float = Field(default=100.0, gt=0, le=1000)
    analyser_warmup_s: float = Field(default=0.0, ge=0)
    noise: float = Field(default=0.01, ge=0, le=0.2, description="relative noise on values")
    seed: int | None = None


class Parasitic(_Model):
    """The dyno's own losses (bearings, windage), ``A + B·v + C·v²`` N, v in km/h."""

    a_n: float = Field(default=25.0, ge=0)
    b_n_per_kmh: float = Field(default=0.4, ge=0)
    c_n_per_kmh2: float = Field(default=0.002, ge=0)


class DynoRig(_Model):
    """The lane's chassis dynamometer (XinCheng / NHC-03 simulators)."""

    base_inertia_kg: float = Field(default=907.2, gt=0, description="rollers + flywheel")
    parasitic: Parasitic = Parasitic()
    max_force_n: float = Field(default=10_000.0, gt=0, description="the PAU's limit")
    pau_tau_s: float = Field(default=0.15, gt=0, description="PAU force lag (eddy current)")
    motor_speed_kmh: float = Field(default=75.0, gt=0, description="the motor's top speed")
    motor_force_n: float = Field(default=900.0, gt=0)
    frame_interval_s: float = Field(
        default=0.02, ge=0.005, le=0.2, description="pushed frames in a control mode (not scaled)"
    )
    ambient_temp_c: float = 25.0
    ambient_humidity_pct: float = 55.0
    ambient_pressure_kpa: float = 101.3
    drop_out_after_s: float | None = Field(
        default=None, gt=0, description="the controller goes silent this long after a mode began"
    )


class Flowmeter(_Model):
    """The lane's VMAS flowmeter (FLV-1000 simulator)."""

    total_flow_l_s: float = Field(default=110.0, gt=0, description="diluted flow, actual")
    temperature_c: float = 38.0
    pressure_kpa: float = 101.0
    warmup_s: float = Field(default=0.0, ge=0, description="O2 sensor warming at power-on")
    idle_exhaust_l_s: float = Field(default=2.5, ge=0)
    exhaust_l_s_per_kw: float = Field(default=1.1, ge=0, description="exhaust flow per kW")


class DriveStep(_Model):
    """One step of the scripted driver's program."""

    hold_kmh: float | None = Field(default=None, ge=0, description="drive to and hold a speed")
    trace: Literal["vmas"] | None = Field(default=None, description="follow a drive cycle")
    full_throttle: bool = Field(default=False, description="floor it (lug-down)")
    for_s: float = Field(default=100.0, gt=0, description="longest time on this step")
    until_load_change: bool = Field(
        default=False, description="end when the host changes the dyno's set-point (next mode)"
    )
    until_control_off: bool = Field(default=False, description="end when the host unloads")
    phase: str | None = Field(default=None, description="label the gas sims use (asm5025...)")

    @model_validator(mode="after")
    def _one_action(self) -> DriveStep:
        actions = (self.hold_kmh is not None) + (self.trace is not None) + self.full_throttle
        if actions > 1:
            raise ValueError("a step either holds a speed, follows a trace or is full throttle")
        return self


class Deviation(_Model):
    """The driver misses the target: ``speed_error_kmh`` added from ``at_s`` for ``for_s``."""

    at_s: float = Field(ge=0, description="scenario seconds from the program's start")
    for_s: float = Field(gt=0)
    speed_error_kmh: float


DRIVE_PROGRAMS: dict[str, list[DriveStep]] = {
    "asm": [
        DriveStep(hold_kmh=25, for_s=120, until_load_change=True, phase="asm5025"),
        DriveStep(hold_kmh=40, for_s=120, until_control_off=True, phase="asm2540"),
    ],
    "vmas": [DriveStep(trace="vmas", for_s=195, phase="vmas")],
    "lug_down": [
        DriveStep(full_throttle=True, for_s=300, until_control_off=True, phase="lug_down")
    ],
}


class ScriptedDriver(_Model):
    """The inspector at the wheel of the car on the dyno (see docs/scenarios.md)."""

    program: Literal["asm", "vmas", "lug_down"] | list[DriveStep] = "asm"
    start_on: Literal["lift_down", "control", "immediately"] = Field(
        default="lift_down", description="what starts the program"
    )
    reaction_s: float = Field(default=1.0, ge=0, description="delay after the start event")
    deviations: list[Deviation] = Field(default_factory=list)
    speed_noise_kmh: float = Field(default=0.0, ge=0, le=2, description="unsteady foot")

    def steps(self) -> list[DriveStep]:
        """The program as steps."""
        return DRIVE_PROGRAMS[self.program] if isinstance(self.program, str) else self.program


class Scenario(_Model):
    """A whole scenario file."""

    name: str = "scenario"
    description: str = ""
    vehicle: Vehicle
    timing: Timing = Timing()
    dyno: DynoRig = DynoRig()
    flowmeter: Flowmeter = Flowmeter()
    driver: ScriptedDriver | None = Field(default=None, description="car on the dyno, driven")


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return Scenario.model_validate(data)
