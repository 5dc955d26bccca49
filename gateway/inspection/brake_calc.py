"""Pure formulas of the brake items (B1..B5, B0): ratios, unbalance, drag, lock-up, and
which limit keys of the table apply. No I/O; unit tested directly.

Forces are in daN (10 N), loads in kg, converted with ×0.98 (g = 9.8) as the standard's
formulas and production lane software do (standards.md §1.1). Limit values are never
here: this module only names the keys of ``gateway/limits/gb7258-2017.yaml`` that apply,
and takes the two rule thresholds (60 % low-force rule, 1.2 × curb mass) as arguments
read from that table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Literal

from gateway.inspection.order import VehicleCategory

#: kg of axle load -> daN of weight (g = 9.8 m/s²), standards.md §1.1 "Formulas"
KG_TO_DAN: Final = 0.98

InspectionType = Literal["new_registration", "in_use"]
UnbalanceBasis = Literal["max_force", "axle_load"]

#: axle-ratio keys are per category; a category missing here has no axle limits
#: (articulated vehicles: table 7 gives only whole-vehicle values)
_AXLE_RATIO_CATEGORIES: Final = frozenset(
    {
        VehicleCategory.PASSENGER_CAR,
        VehicleCategory.OTHER_LE_3500KG,
        VehicleCategory.OTHER,
        VehicleCategory.TRAILER,
    }
)


def one_decimal(value: float) -> float:
    """``value`` rounded half-up to 0.1, as the regulator's fields carry ratios."""
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def weight_dan(load_kg: float) -> float:
    """The weight of ``load_kg`` in daN."""
    return load_kg * KG_TO_DAN


def brake_ratio_pct(forces_dan: Iterable[float], loads_kg: Iterable[float]) -> float:
    """Σ forces / (Σ static loads × 0.98) × 100: axle, whole-vehicle and parking ratio."""
    load = sum(loads_kg)
    if load <= 0:
        raise ValueError(f"a brake ratio needs a positive load, not {load} kg")
    return sum(forces_dan) / weight_dan(load) * 100.0


def drag_pct(drag_dan: float, axle_load_kg: float) -> float:
    """A wheel's drag as a percentage of its axle's weight (GB 7258-2004 7.14.1.4 wording)."""
    return brake_ratio_pct([drag_dan], [axle_load_kg])


@dataclass(frozen=True, slots=True)
class Unbalance:
    """Unbalance of one axle and the divisor it was computed with."""

    pct: float
    basis: UnbalanceBasis


def unbalance(
    diff_left_dan: float,
    diff_right_dan: float,
    max_left_dan: float,
    max_right_dan: float,
    axle_load_kg: float,
    *,
    low_force: bool,
) -> Unbalance | None:
    """The axle's unbalance by GB 7258's definition.

    The largest simultaneous left-right difference during the force build-up, divided by
    the larger of the two maximum forces; for a rear axle braking below the low-force
    threshold (``low_force``) divided by the axle's weight instead. None when neither
    wheel produced any force (there is nothing to divide by).
    """
    difference = abs(diff_left_dan - diff_right_dan)
    if low_force:
        return Unbalance(difference / weight_dan(axle_load_kg) * 100.0, "axle_load")
    larger = max(max_left_dan, max_right_dan)
    if larger <= 0:
        return None
    return Unbalance(difference / larger * 100.0, "max_force")


def lock_state(locked_left: bool, locked_right: bool) -> int:
    """The end state production software stores: 0 none, 1 left, 2 right, 3 both locked."""
    return int(locked_left) + 2 * int(locked_right)


def front_axle_count(axle_count: int, category: VehicleCategory) -> int:
    """How many leading axles count as front axles.

    Table 7 footnote b: axles ahead of the longitudinal mid-point are front axles. With
    no axle spacing in the order we take the first ``axle_count // 2`` axles (at least
    one): axle 1 for 2- and 3-axle vehicles (a 6×4 truck's second axle sits behind the
    mid-point), axles 1-2 of a 4-axle twin-steer truck. Every trailer axle is a rear
    axle (table 7, 挂车 row).
    """
    if category is VehicleCategory.TRAILER:
        return 0
    return max(1, axle_count // 2)


def is_front_axle(axle: int, axle_count: int, category: VehicleCategory) -> bool:
    """Whether axle number ``axle`` (from 1) is a front axle."""
    return axle <= front_axle_count(axle_count, category)


def axle_ratio_key(category: VehicleCategory, front: bool) -> str | None:
    """Limit key of the axle brake ratio, or None when table 7 sets no axle limit."""
    if category not in _AXLE_RATIO_CATEGORIES:
        return None
    front = front and category is not VehicleCategory.TRAILER  # all trailer axles are rear
    return f"brake_axle_ratio_{'front' if front else 'rear'}_{category.value}"


def unbalance_key(front: bool, low_force: bool, inspection_type: InspectionType) -> str:
    """Limit key of the unbalance: front, rear, or rear below the low-force threshold."""
    if front:
        row = "front"
    elif low_force:
        row = "rear_low_force"
    else:
        row = "rear"
    return f"brake_unbalance_{row}_{inspection_type}"


def vehicle_ratio_key(category: VehicleCategory) -> str | None:
    """Limit key of the unladen whole-vehicle ratio, or None (trailers: no value)."""
    if category is VehicleCategory.TRAILER:
        return None
    return f"brake_vehicle_ratio_unladen_{category.value}"


def parking_ratio_key(gross_mass_kg: float, curb_mass_kg: float, mass_ratio: float) -> str:
    """Parking limit key: reduced for vehicles with gross mass < ``mass_ratio`` × curb mass."""
    if gross_mass_kg < mass_ratio * curb_mass_kg:
        return "parking_brake_ratio_low_payload"
    return "parking_brake_ratio"
