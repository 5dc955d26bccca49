"""Brake items: the pure formulas (brake_calc), the judged measurements (brake_judge) and
the regulator's curve string (curve), directly and with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.devices.jxgt2_brake import BrakeTestResult
from gateway.inspection import brake_calc as calc
from gateway.inspection.brake import BRAKE_PROCEDURES, AxleBrakeItem, ParkingBrakeItem
from gateway.inspection.brake_judge import (
    StaticLoads,
    axle_measurements,
    parking_measurements,
    vehicle_measurements,
)
from gateway.inspection.curve import (
    UPLOAD_FIELD_CHARS,
    format_curve,
    parse_upload_string,
    upload_string,
)
from gateway.inspection.order import InspectionOrder, VehicleCategory
from gateway.inspection.procedures import PROCEDURES
from gateway.limits import load_table
from gateway.records import Measurement, Verdict

TABLE = load_table("gb7258-2017")
CATEGORIES = list(VehicleCategory)
TYPES: list[calc.InspectionType] = ["new_registration", "in_use"]


def make_order(
    category: VehicleCategory = VehicleCategory.PASSENGER_CAR,
    inspection_type: calc.InspectionType = "in_use",
    axles: int = 2,
    curb: int = 1300,
    gross: int = 1700,
) -> InspectionOrder:
    return InspectionOrder(
        inspection_id="44010012026110001",
        plate="粤A00001",
        vin="LSVAU2180N2183294",
        category=category,
        inspection_type=inspection_type,
        axle_count=axles,
        curb_mass_kg=curb,
        gross_mass_kg=gross,
        items=["B1"],
    )


def make_result(
    max_left: float,
    max_right: float,
    diff: tuple[float, float] | None = None,
    drag: tuple[float, float] = (5.0, 5.0),
    locked: tuple[bool, bool] = (False, False),
    onset: int | None = 20,
) -> BrakeTestResult:
    diff_left, diff_right = diff if diff is not None else (max_left, max_right)
    return BrakeTestResult(
        max_left, max_right, diff_left, diff_right, "device", *drag, onset, *locked, ()
    )


def by_name(measurements: list[Measurement]) -> dict[str, Measurement]:
    return {m.name: m for m in measurements}


# --- formulas ---------------------------------------------------------------------------
def test_brake_ratio_is_forces_over_weight() -> None:
    assert calc.brake_ratio_pct([334, 255], [1000]) == pytest.approx(60.102, abs=1e-3)
    assert calc.brake_ratio_pct([1, 2, 3, 4], [300, 200]) == pytest.approx(10 / 4.9)
    assert calc.drag_pct(49, 1000) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="positive load"):
        calc.brake_ratio_pct([100], [0])


def test_one_decimal_rounds_half_up_as_written() -> None:
    assert [calc.one_decimal(v) for v in (59.95, 24.05, 0.05, 60.04, 9.949)] == [
        60.0,
        24.1,
        0.1,
        60.0,
        9.9,
    ]


def test_unbalance_divides_by_larger_force_or_by_axle_load() -> None:
    front = calc.unbalance(334, 255, 334, 255, 1000, low_force=False)
    assert front == calc.Unbalance(pytest.approx(79 / 334 * 100), "max_force")
    low = calc.unbalance(216, 137, 216, 137, 800, low_force=True)
    assert low == calc.Unbalance(pytest.approx(79 / 784 * 100), "axle_load")
    assert calc.unbalance(0, 0, 0, 0, 800, low_force=False) is None
    assert calc.unbalance(100, 130, 300, 290, 800, low_force=False).pct == pytest.approx(10)  # type: ignore[union-attr]


def test_lock_state_codes() -> None:
    assert [calc.lock_state(a, b) for a, b in ((0, 0), (1, 0), (0, 1), (1, 1))] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("axles", "category", "front"),
    [
        (1, VehicleCategory.OTHER, 1),
        (2, VehicleCategory.PASSENGER_CAR, 1),
        (3, VehicleCategory.OTHER, 1),
        (4, VehicleCategory.OTHER, 2),
        (6, VehicleCategory.ARTICULATED, 3),
        (3, VehicleCategory.TRAILER, 0),
    ],
)
def test_front_axles_are_ahead_of_the_mid_point(
    axles: int, category: VehicleCategory, front: int
) -> None:
    assert calc.front_axle_count(axles, category) == front
    assert [calc.is_front_axle(a, axles, category) for a in range(1, axles + 1)] == [
        a <= front for a in range(1, axles + 1)
    ]


# --- the limit table ------------------------------------------------------------------------
def test_every_key_the_items_can_ask_for_is_in_the_table() -> None:
    for category in CATEGORIES:
        for front in (True, False):
            key = calc.axle_ratio_key(category, front)
            assert key is None or key in TABLE.limits
        key = calc.vehicle_ratio_key(category)
        assert key is None or key in TABLE.limits
    assert calc.axle_ratio_key(VehicleCategory.ARTICULATED, True) is None
    assert calc.vehicle_ratio_key(VehicleCategory.TRAILER) is None
    for kind in TYPES:
        for front, low in ((True, False), (False, False), (False, True)):
            assert calc.unbalance_key(front, low, kind) in TABLE.limits
    for key in ("brake_drag_ratio", "parking_brake_ratio", "parking_brake_ratio_low_payload"):
        assert key in TABLE.limits


def test_limit_values_and_confidence_as_in_standards_md() -> None:
    low = {k: e.low for k, e in TABLE.limits.items()}
    high = {k: e.high for k, e in TABLE.limits.items()}
    assert [
        low[f"brake_axle_ratio_{r}"] for r in ("front_passenger_car", "rear_passenger_car")
    ] == [
        60,
        20,
    ]
    assert low["brake_axle_ratio_rear_other"] == 50 and low["brake_axle_ratio_rear_trailer"] == 55
    assert low["brake_vehicle_ratio_unladen_articulated"] == 55
    assert [
        high[calc.unbalance_key(f, lf, "new_registration")] for f, lf in ((1, 0), (0, 0), (0, 1))
    ] == [20, 24, 8]
    assert [high[calc.unbalance_key(f, lf, "in_use")] for f, lf in ((1, 0), (0, 0), (0, 1))] == [
        24,
        30,
        10,
    ]
    assert low["brake_unbalance_low_force_threshold"] == 60
    assert high["brake_drag_ratio"] == 5
    assert (low["parking_brake_ratio"], low["parking_brake_ratio_low_payload"]) == (20, 15)
    assert high["parking_brake_low_payload_mass_ratio"] == 1.2
    brake_keys = [k for k in TABLE.limits if k.startswith(("brake_", "parking_brake_"))]
    assert len(brake_keys) == 22
    assert all(TABLE.limits[k].confidence == "sec" for k in brake_keys)  # as standards.md marks


def test_parking_limit_is_reduced_below_1_2_times_curb_mass() -> None:
    assert calc.parking_ratio_key(1680, 1400, 1.2) == "parking_brake_ratio"
    assert calc.parking_ratio_key(1679, 1400, 1.2) == "parking_brake_ratio_low_payload"


def test_every_brake_item_is_registered() -> None:
    assert set(BRAKE_PROCEDURES) == {"B0", "B1", "B2", "B3", "B4", "B5"}
    assert all(PROCEDURES[code] is item for code, item in BRAKE_PROCEDURES.items())
    assert [
        item.axle
        for code, item in sorted(BRAKE_PROCEDURES.items())
        if isinstance(item, AxleBrakeItem)
    ] == [1, 2, 3, 4, 5]
    assert isinstance(PROCEDURES["B0"], ParkingBrakeItem)


# --- judged measurements ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("right", "ratio", "verdict"), [(255, 60.1, Verdict.PASS), (253, 59.9, Verdict.FAIL)]
)
def test_front_axle_ratio_just_inside_and_outside(
    right: int, ratio: float, verdict: Verdict
) -> None:
    values = by_name(
        axle_measurements(
            TABLE, make_order(), 1, StaticLoads(1000, "weigher"), make_result(334, right)
        )
    )
    assert (values["axle_brake_ratio"].value, values["axle_brake_ratio"].verdict) == (
        ratio,
        verdict,
    )
    assert values["axle_position"].value == "front"
    assert "static_load_left" not in values and values["static_axle_load"].value == 1000


@pytest.mark.parametrize(
    ("kind", "diff", "verdict"),
    [
        ("in_use", 96, Verdict.PASS),  # 96 / 400 = 24.0 % (limit 24, inclusive)
        ("in_use", 97, Verdict.FAIL),  # 24.3 %
        ("new_registration", 80, Verdict.PASS),  # 20.0 %
        ("new_registration", 81, Verdict.FAIL),  # 20.3 %
    ],
)
def test_front_unbalance_new_and_in_use(
    kind: calc.InspectionType, diff: int, verdict: Verdict
) -> None:
    result = make_result(400, 400 - diff)
    values = by_name(
        axle_measurements(
            TABLE, make_order(inspection_type=kind), 1, StaticLoads(1000, "weigher"), result
        )
    )
    assert values["unbalance"].verdict is verdict
    assert values["unbalance_basis"].value == "max_force"


@pytest.mark.parametrize(
    ("kind", "diff", "value", "verdict"),
    [
        ("in_use", 78, 9.9, Verdict.PASS),  # 78 / 784
        ("in_use", 79, 10.1, Verdict.FAIL),
        ("new_registration", 62, 7.9, Verdict.PASS),
        ("new_registration", 64, 8.2, Verdict.FAIL),
    ],
)
def test_rear_axle_below_60_pct_is_judged_on_the_axle_load(
    kind: calc.InspectionType, diff: int, value: float, verdict: Verdict
) -> None:
    loads = StaticLoads(800, "brake_tester", 400, 400)
    result = make_result(216, 216 - diff)  # about 45 % of the axle load
    values = by_name(axle_measurements(TABLE, make_order(inspection_type=kind), 2, loads, result))
    assert values["axle_position"].value == "rear" and values["static_load_left"].value == 400
    assert values["axle_brake_ratio"].verdict is Verdict.PASS  # >= 20 % for a car's rear axle
    assert (values["unbalance"].value, values["unbalance"].verdict) == (value, verdict)
    assert values["unbalance_basis"].value == "axle_load"
    assert values["unbalance"].unit == "% of axle load"


@pytest.mark.parametrize(
    ("kind", "diff", "verdict"),
    [
        ("in_use", 90, Verdict.PASS),
        ("in_use", 91, Verdict.FAIL),
        ("new_registration", 72, Verdict.PASS),
        ("new_registration", 73, Verdict.FAIL),
    ],
)
def test_rear_axle_at_60_pct_or_more_is_judged_on_the_larger_force(
    kind: calc.InspectionType, diff: int, verdict: Verdict
) -> None:
    result = make_result(300, 300 - diff, diff=(300, 300 - diff))  # 300 + 210 over 784: 65 %
    values = by_name(
        axle_measurements(
            TABLE, make_order(inspection_type=kind), 2, StaticLoads(800, "weigher"), result
        )
    )
    assert values["unbalance_basis"].value == "max_force"
    assert values["unbalance"].verdict is verdict


def test_the_60_pct_decision_uses_the_recorded_ratio() -> None:
    # (250 + 220.3) / 784 = 59.99 % is recorded 60.0: the max-force divisor applies
    values = by_name(
        axle_measurements(
            TABLE, make_order(), 2, StaticLoads(800, "weigher"), make_result(250, 220.3)
        )
    )
    assert values["axle_brake_ratio"].value == 60.0
    assert values["unbalance_basis"].value == "max_force"


def test_trailer_and_truck_rear_axles_and_articulated_axles() -> None:
    loads = StaticLoads(1000, "weigher")
    trailer = by_name(
        axle_measurements(
            TABLE, make_order(VehicleCategory.TRAILER), 1, loads, make_result(270, 265)
        )
    )
    assert trailer["axle_position"].value == "rear"
    assert trailer["axle_brake_ratio"].verdict is Verdict.FAIL  # 54.6 % < 55
    truck = by_name(
        axle_measurements(
            TABLE, make_order(VehicleCategory.OTHER, axles=3), 2, loads, make_result(250, 245)
        )
    )
    assert (
        truck["axle_brake_ratio"].value == 50.5
        and truck["axle_brake_ratio"].verdict is Verdict.PASS
    )
    bus = by_name(
        axle_measurements(
            TABLE, make_order(VehicleCategory.ARTICULATED), 1, loads, make_result(100, 100)
        )
    )
    assert bus["axle_brake_ratio"].verdict is None and bus["axle_brake_ratio"].limit is None


def test_drag_lock_and_onset_are_recorded() -> None:
    result = make_result(400, 380, drag=(49, 50), locked=(False, True), onset=None)
    values = by_name(
        axle_measurements(TABLE, make_order(), 1, StaticLoads(1000, "weigher"), result)
    )
    assert (values["drag_ratio_left"].value, values["drag_ratio_left"].verdict) == (
        5.0,
        Verdict.PASS,
    )
    assert (values["drag_ratio_right"].value, values["drag_ratio_right"].verdict) == (
        5.1,
        Verdict.FAIL,
    )
    assert values["drag_force_right"].value == 50 and values["drag_force_right"].unit == "daN"
    assert (
        values["locked_left"].value,
        values["locked_right"].value,
        values["lock_state"].value,
    ) == (False, True, 2)
    assert values["braking_detected"].value is False


def test_no_force_at_all_fails_the_ratio_and_leaves_unbalance_unjudged() -> None:
    values = by_name(
        axle_measurements(TABLE, make_order(), 1, StaticLoads(1000, "weigher"), make_result(0, 0))
    )
    assert values["axle_brake_ratio"].verdict is Verdict.FAIL
    assert values["unbalance"].value is None and values["unbalance"].verdict is None


@pytest.mark.parametrize(
    ("forces", "gross", "ratio", "verdict"),
    [
        ((178, 177), 1700, 20.1, Verdict.PASS),
        ((176, 175), 1700, 19.9, Verdict.FAIL),
        ((133, 132), 1500, 15.0, Verdict.PASS),  # gross < 1.2 × 1300 curb: 15 %
        ((132, 131), 1500, 14.9, Verdict.FAIL),
    ],
)
def test_parking_ratio(forces: tuple[int, int], gross: int, ratio: float, verdict: Verdict) -> None:
    result = make_result(*forces)
    values = by_name(parking_measurements(TABLE, make_order(gross=gross), 2, 1800, result))
    assert (values["parking_brake_ratio"].value, values["parking_brake_ratio"].verdict) == (
        ratio,
        verdict,
    )
    assert (
        values["parking_force_total"].value == sum(forces)
        and values["vehicle_weight"].value == 1800
    )


def test_whole_vehicle_ratio_and_road_test_advice() -> None:
    loads = {1: (500.0, 500.0), 2: (400.0, 400.0)}
    passing = {1: (334.0, 255.0), 2: (277.0, 196.0)}
    ratio, advised = vehicle_measurements(TABLE, make_order(), loads, passing, set())
    assert (ratio.value, ratio.verdict, advised.value) == (60.2, Verdict.PASS, False)
    failing = {1: (334.0, 253.0), 2: (216.0, 137.0)}
    ratio, advised = vehicle_measurements(TABLE, make_order(), loads, failing, {2})
    assert (ratio.value, ratio.verdict, advised.value) == (53.3, Verdict.FAIL, True)
    (missing,) = vehicle_measurements(TABLE, make_order(), {1: loads[1]}, passing, set())
    assert (missing.value, missing.verdict) == (None, Verdict.ABORTED)
    trailer = make_order(VehicleCategory.TRAILER)
    assert vehicle_measurements(TABLE, trailer, loads, passing, set())[0].verdict is None


# --- curve upload string ------------------------------------------------------------------
def test_format_follows_the_interface_example() -> None:
    assert format_curve([56, 57.4], [45, 46.6], 10) == "10@56#45$57#47"
    assert format_curve([-2.0], [3], 10) == "10@0#3"  # zero drift below 0 is sent as 0
    assert parse_upload_string("10@56#45$57#47") == (10, [(56, 45), (57, 47)])


def test_long_curve_is_decimated_to_fit_with_the_interval_declared() -> None:
    left = [1234.0] * 1000  # 10 s at 100 Hz: "$1234#1234" is 10 characters a sample
    text, step = upload_string(left, left, 10.0)
    assert step == 3 and text.startswith("30@") and len(text) <= UPLOAD_FIELD_CHARS
    with pytest.raises(ValueError, match="empty"):
        upload_string([], [], 10.0)
    with pytest.raises(ValueError, match="differ"):
        upload_string([1.0], [], 10.0)


forces = st.floats(min_value=-50, max_value=9999, allow_nan=False)


@given(
    st.lists(st.tuples(forces, forces), min_size=1, max_size=3000),
    st.sampled_from([10.0, 5.0, 20.0]),
)
def test_upload_string_fits_round_trips_and_keeps_the_most_samples(
    curve: list[tuple[float, float]], interval: float
) -> None:
    left, right = [a for a, _ in curve], [b for _, b in curve]
    text, step = upload_string(left, right, interval)
    assert len(text) <= UPLOAD_FIELD_CHARS
    declared, pairs = parse_upload_string(text)
    assert declared == round(step * interval)
    assert pairs == [(max(0, round(a)), max(0, round(b))) for a, b in curve[::step]]
    if step > 1:  # the next finer step would not have fitted
        assert (
            len(format_curve(left[:: step - 1], right[:: step - 1], round((step - 1) * interval)))
            > UPLOAD_FIELD_CHARS
        )
