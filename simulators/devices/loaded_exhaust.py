"""What the exhaust of a car on the dyno contains, for the analyser and opacimeter sims.

The scenario says it per mode (docs/scenarios.md): ``vehicle.petrol.loaded`` gives the
exhaust of ASM 5025, ASM 2540 and VMAS (a clean car well under the limits, a dirty one
over them), used while the scripted driver is in a step of that ``phase``;
``vehicle.diesel.lug_down`` gives k and NOx at 100 % and 80 % VelMaxHP, used at full
throttle and interpolated linearly over roller speed / VelMaxHP (held beyond 0.6-1.1).
Without the section, or off the rollers, the sims keep their two-speed-idle / free-
acceleration behaviour.
"""

from __future__ import annotations

from typing import Final

from simulators.base import LanePosition
from simulators.devices.dyno_physics import EngineState, plant_of
from simulators.scenario import DieselEngine, LoadedGas, PetrolEngine

PETROL_PHASES: Final = ("asm5025", "asm2540", "vmas")
FULL_THROTTLE: Final = 0.95
RATIO_RANGE: Final = (0.6, 1.1)
#: the rest of a diesel's exhaust at full load (the NO comes from the scenario)
DIESEL_CO2_PCT: Final = 9.0
DIESEL_O2_PCT: Final = 8.0
DIESEL_CO_PCT: Final = 0.03
DIESEL_HC_PPM: Final = 15.0


def engine_on_rollers(position: LanePosition) -> EngineState | None:
    """The engine of the car on the lane's dyno, None when no car is driven on it."""
    plant = plant_of(position)
    if plant is None:
        return None
    engine = plant.engine()
    return engine if engine.on_rollers else None


def petrol_loaded_gas(petrol: PetrolEngine | None, engine: EngineState | None) -> LoadedGas | None:
    """The scenario's exhaust for the driver's phase, if it gives one."""
    if (
        petrol is None
        or petrol.loaded is None
        or engine is None
        or engine.phase not in PETROL_PHASES
    ):
        return None
    gas: LoadedGas = getattr(petrol.loaded, engine.phase)
    return gas


def between_points(at_100: float, at_80: float, vel_ratio: float) -> float:
    """Linear in roller speed / VelMaxHP through the 80 % and 100 % points (held outside)."""
    low, high = RATIO_RANGE
    ratio = min(high, max(low, vel_ratio))
    return max(0.0, at_80 + (at_100 - at_80) * (ratio - 0.8) / 0.2)


def lug_down_full_load(
    diesel: DieselEngine | None, engine: EngineState | None
) -> tuple[float, float] | None:
    """(k m⁻¹, NOx ppm) at full throttle on the rollers, if the scenario gives lug-down data."""
    if (
        diesel is None
        or diesel.lug_down is None
        or engine is None
        or engine.throttle < FULL_THROTTLE
    ):
        return None
    points = diesel.lug_down
    return (
        between_points(points.k_100_m1, points.k_80_m1, engine.vel_ratio),
        between_points(points.nox_100_ppm, points.nox_80_ppm, engine.vel_ratio),
    )
