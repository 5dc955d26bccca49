"""Judged measurements of the brake items, from measured values and the limit table.

No I/O: each function takes what was measured (static loads, the tester's result) and
the ``LimitTable``, and returns the record's measurements in a fixed order. Formulas are
in ``brake_calc``; which key applies is chosen there too. Ratios are rounded to 0.1 as
the regulator's fields carry them and judged as recorded, so a record never shows
"60.0 %" next to a fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from drivers.devices.jxgt2_brake import BrakeTestResult
from gateway.inspection import brake_calc as calc
from gateway.inspection.order import InspectionOrder
from gateway.limits import LimitTable, measured
from gateway.records import Measurement, Verdict

#: the rule thresholds the standard sets beside its limits (read from the table)
LOW_FORCE_THRESHOLD_KEY = "brake_unbalance_low_force_threshold"
PARKING_MASS_RATIO_KEY = "parking_brake_low_payload_mass_ratio"


@dataclass(frozen=True, slots=True)
class StaticLoads:
    """An axle's static load; wheel loads when the source weighs each wheel."""

    axle_kg: float
    source: Literal["weigher", "brake_tester"]
    left_kg: float | None = None
    right_kg: float | None = None


def judge_or_measure(
    table: LimitTable, key: str | None, name: str, value: float, unit: str
) -> Measurement:
    """``value`` judged against ``key``, or only measured when no limit applies (None).

    A key the table lacks is a ``KeyError`` (a broken table must not silently stop
    judging).
    """
    if key is None:
        return measured(name, value, unit)
    return table.judge(key, name, value, unit)


def _threshold(table: LimitTable, key: str) -> float:
    entry = table.limits[key]
    value = entry.low if entry.low is not None else entry.high
    if value is None:
        raise KeyError(f"limit {key} has no value")
    return value


def _pair(
    name: str, left: float | bool, right: float | bool, unit: str | None
) -> list[Measurement]:
    return [measured(f"{name}_left", left, unit), measured(f"{name}_right", right, unit)]


def _load_measurements(loads: StaticLoads) -> list[Measurement]:
    values = [measured("static_load_source", loads.source)]
    if loads.left_kg is not None and loads.right_kg is not None:
        values += _pair("static_load", loads.left_kg, loads.right_kg, "kg")
    return [*values, measured("static_axle_load", loads.axle_kg, "kg")]


def _unbalance(
    table: LimitTable,
    order: InspectionOrder,
    front: bool,
    ratio: float,
    result: BrakeTestResult,
    axle_kg: float,
) -> list[Measurement]:
    """The unbalance by the standard's definition (incl. the rear low-force rule)."""
    low_force = not front and ratio < _threshold(table, LOW_FORCE_THRESHOLD_KEY)
    value = calc.unbalance(
        result.diff_force_left_dan,
        result.diff_force_right_dan,
        result.max_force_left_dan,
        result.max_force_right_dan,
        axle_kg,
        low_force=low_force,
    )
    if value is None:  # no force on either wheel: the ratio fails, unbalance is undefined
        return [measured("unbalance", None, "%")]
    key = calc.unbalance_key(front, low_force, order.inspection_type)
    unit = table.limits[key].unit or "%"
    return [
        table.judge(key, "unbalance", calc.one_decimal(value.pct), unit),
        measured("unbalance_basis", value.basis),
    ]


def axle_measurements(
    table: LimitTable,
    order: InspectionOrder,
    axle: int,
    loads: StaticLoads,
    result: BrakeTestResult,
) -> list[Measurement]:
    """Everything one axle's service brake record carries, judged where a limit applies."""
    front = calc.is_front_axle(axle, order.axle_count, order.category)
    forces = [result.max_force_left_dan, result.max_force_right_dan]
    ratio = calc.one_decimal(calc.brake_ratio_pct(forces, [loads.axle_kg]))
    drag = [
        table.judge(
            "brake_drag_ratio",
            f"drag_ratio_{side}",
            calc.one_decimal(calc.drag_pct(force, loads.axle_kg)),
        )
        for side, force in (
            ("left", result.drag_force_left_dan),
            ("right", result.drag_force_right_dan),
        )
    ]
    return [
        measured("axle", axle),
        measured("axle_position", "front" if front else "rear"),
        *_load_measurements(loads),
        *_pair(
            "drag_force",
            round(result.drag_force_left_dan, 1),
            round(result.drag_force_right_dan, 1),
            "daN",
        ),
        *drag,
        *_pair("max_force", result.max_force_left_dan, result.max_force_right_dan, "daN"),
        *_pair("diff_force", result.diff_force_left_dan, result.diff_force_right_dan, "daN"),
        judge_or_measure(
            table, calc.axle_ratio_key(order.category, front), "axle_brake_ratio", ratio, "%"
        ),
        *_unbalance(table, order, front, ratio, result, loads.axle_kg),
        *_pair("locked", result.locked_left, result.locked_right, None),
        measured("lock_state", calc.lock_state(result.locked_left, result.locked_right)),
        measured("braking_detected", result.braking_onset_index is not None),
    ]


def parking_measurements(
    table: LimitTable,
    order: InspectionOrder,
    axle: int,
    vehicle_kg: float,
    result: BrakeTestResult,
) -> list[Measurement]:
    """The B0 record: parking forces of ``axle`` against the vehicle's weight."""
    forces = [result.max_force_left_dan, result.max_force_right_dan]
    ratio = calc.one_decimal(calc.brake_ratio_pct(forces, [vehicle_kg]))
    mass_ratio = _threshold(table, PARKING_MASS_RATIO_KEY)
    key = calc.parking_ratio_key(order.gross_mass_kg, order.curb_mass_kg, mass_ratio)
    return [
        measured("parking_axle", axle),
        *_pair("parking_force", forces[0], forces[1], "daN"),
        measured("parking_force_total", sum(forces), "daN"),
        measured("vehicle_weight", vehicle_kg, "kg"),
        table.judge(key, "parking_brake_ratio", ratio),
        *_pair("locked", result.locked_left, result.locked_right, None),
    ]


def vehicle_measurements(
    table: LimitTable,
    order: InspectionOrder,
    loads_kg: Mapping[int, tuple[float, float]],
    forces_dan: Mapping[int, tuple[float, float]],
    locked_axles: set[int],
) -> list[Measurement]:
    """Whole-vehicle brake ratio over axles 1..axle_count, for the summary record.

    Aborted (value None) when an axle was not measured. ``brake_road_test_advised``: a
    wheel locked on the rollers yet the whole-vehicle ratio failed, the case in which
    GB 38900 Annex D.1.6 sends the vehicle to a road test.
    """
    axles = range(1, order.axle_count + 1)
    if any(a not in loads_kg or a not in forces_dan for a in axles):
        return [
            Measurement(name="vehicle_brake_ratio", value=None, unit="%", verdict=Verdict.ABORTED)
        ]
    forces = [f for a in axles for f in forces_dan[a]]
    loads = [w for a in axles for w in loads_kg[a]]
    ratio = calc.one_decimal(calc.brake_ratio_pct(forces, loads))
    value = judge_or_measure(
        table, calc.vehicle_ratio_key(order.category), "vehicle_brake_ratio", ratio, "%"
    )
    advised = value.verdict is Verdict.FAIL and bool(locked_axles)
    return [value, measured("brake_road_test_advised", advised)]
