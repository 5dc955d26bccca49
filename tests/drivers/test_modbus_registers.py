"""Register maps: built-ins, addressing, validation, plausibility, and the read planner (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.devices.base import DeviceClass
from drivers.modbus.maps import builtin_maps, load_map
from drivers.modbus.planner import ReadBlock, Span, Table, plan_reads
from drivers.modbus.registers import ImplausibleValue, RegisterMap, unit_slug, wire_address


def minimal_map(**changes: Any) -> dict[str, Any]:
    """A valid one-point map, as parsed YAML, with top-level keys replaced."""
    data: dict[str, Any] = {
        "name": "test_map",
        "device_class": "brake_tester",
        "address_base": 0,
        "points": [{"name": "state", "table": "input_register", "address": 0, "type": "uint16"}],
    }
    data.update(changes)
    return data


def with_points(
    *points: dict[str, Any], commands: list[dict[str, Any]] | None = None
) -> RegisterMap:
    return RegisterMap.model_validate(minimal_map(points=list(points), commands=commands or []))


# built-in maps -----------------------------------------------------------------------------
def test_builtin_maps_load_and_plan_into_one_request_per_table() -> None:
    assert builtin_maps() == ("brake_tester", "headlamp_tester", "speedometer_tester")
    plans = {
        name: [(b.table, b.address, b.count) for b in load_map(name).plan()]
        for name in builtin_maps()
    }
    assert plans["brake_tester"] == [(Table.INPUT_REGISTER, 0, 13), (Table.HOLDING_REGISTER, 0, 3)]
    assert plans["headlamp_tester"] == [
        (Table.DISCRETE_INPUT, 0, 2),
        (Table.INPUT_REGISTER, 0, 52),  # the 8-register gap before the lamps is read across
        (Table.HOLDING_REGISTER, 0, 2),
    ]
    assert plans["speedometer_tester"] == [
        (Table.INPUT_REGISTER, 0, 9),
        (Table.HOLDING_REGISTER, 0, 1),
    ]


def test_brake_map_follows_the_protocols_sketch() -> None:
    brake = load_map("brake_tester")
    assert brake.device_class is DeviceClass.BRAKE_TESTER
    # protocols.md §9: 30001 state ... 30013 sample counter; coils 00001..00005
    assert brake.point("state").address == 0
    assert brake.point("max_diff_dan").address == 9
    assert brake.point("sample_counter").address == 12
    assert [(c.name, c.address) for c in brake.bound_commands] == [
        ("start_test", 0),
        ("stop", 1),
        ("lift_up", 2),
        ("lift_down", 3),
        ("zero", 4),
    ]
    assert brake.point("roller_speed_kmh").codec.scale == 0.1


def test_load_map_from_a_path_and_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(minimal_map()), encoding="utf-8")
    assert load_map(path).name == "test_map"
    with pytest.raises(FileNotFoundError, match="built-in: brake_tester"):
        load_map("no_such_map")


# addressing --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "table", "base", "wire"),
    [
        (1, Table.INPUT_REGISTER, 1, 0),
        (0, Table.INPUT_REGISTER, 0, 0),
        (17, Table.HOLDING_REGISTER, 1, 16),
        ("30001", Table.INPUT_REGISTER, 0, 0),  # Modicon is 1-based whatever the base says
        ("40010", Table.HOLDING_REGISTER, 1, 9),
        ("00005", Table.COIL, 0, 4),
        ("10002", Table.DISCRETE_INPUT, 1, 1),
        ("465536", Table.HOLDING_REGISTER, 0, 65535),
    ],
)
def test_wire_addresses(address: int | str, table: Table, base: int, wire: int) -> None:
    assert wire_address(address, table, base) == wire


@pytest.mark.parametrize(
    ("address", "table", "base", "error"),
    [
        (0, Table.INPUT_REGISTER, 1, "below address_base"),
        ("40001", Table.INPUT_REGISTER, 0, "not a input_register"),
        ("30000", Table.INPUT_REGISTER, 0, "count from 1"),
        ("3001", Table.INPUT_REGISTER, 0, "5 or 6 digits"),
        ("abc", Table.COIL, 0, "5 or 6 digits"),
    ],
)
def test_bad_addresses(address: int | str, table: Table, base: int, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        wire_address(address, table, base)


def test_unit_slugs() -> None:
    assert [unit_slug(u) for u in ("daN", "km/h", "%", "cd", "m^-1")] == [
        "dan",
        "kmh",
        "pct",
        "cd",
        "m1",
    ]


# validation --------------------------------------------------------------------------------
IR = {"table": "input_register"}


@pytest.mark.parametrize(
    ("points", "error"),
    [
        (
            [
                {"name": "a", **IR, "address": 0, "type": "uint16"},
                {"name": "b", **IR, "address": 0, "type": "int16"},
            ],
            "b overlaps a",
        ),
        (
            [
                {"name": "a", **IR, "address": 0, "type": "int32"},
                {"name": "b", **IR, "address": 1, "type": "uint16"},
            ],
            "b overlaps a",
        ),
        (
            [
                {"name": "a", **IR, "address": 3, "type": "bits", "bit": 1},
                {"name": "b", **IR, "address": 3, "type": "bits", "bit": 1},
            ],
            "b overlaps a",
        ),
        (
            [
                {"name": "a", **IR, "address": 2, "type": "uint16"},
                {"name": "b", **IR, "address": 2, "type": "bits", "bit": 0},
            ],
            "b overlaps a",
        ),
        (
            [
                {"name": "a", **IR, "address": 2, "type": "bits", "bit": 0},
                {"name": "b", **IR, "address": 1, "type": "int32"},
            ],
            "b overlaps a",
        ),
        ([{"name": "a", "table": "coil", "address": 0, "type": "float32"}], "cannot live in coil"),
        ([{"name": "a", **IR, "address": 0, "type": "bool"}], "cannot live in input_register"),
        ([{"name": "a", **IR, "address": 0, "type": "bits"}], "'bit' is required"),
        ([{"name": "a", **IR, "address": 0, "type": "int16", "bit": 3}], "'bit' is required"),
        (
            [{"name": "a", **IR, "address": 0, "type": "int16", "access": "read_write"}],
            "cannot be written",
        ),
        (
            [
                {
                    "name": "a",
                    "table": "holding_register",
                    "address": 0,
                    "type": "bits",
                    "bit": 0,
                    "access": "read_write",
                }
            ],
            "atomically",
        ),
        ([{"name": "a", **IR, "address": 0, "type": "bits", "bit": 0, "scale": 2}], "no scale"),
        (
            [{"name": "force", **IR, "address": 0, "type": "int16", "unit": "daN"}],
            "must end in _dan",
        ),
        ([{"name": "a", **IR, "address": 0, "type": "int16", "scale": 0}], "non-zero"),
        ([{"name": "a", **IR, "address": 0, "type": "int16", "min": 5, "max": 1}], "min > max"),
        ([{"name": "a", **IR, "address": 65535, "type": "int32"}], "outside 0..65535"),
        (
            [
                {"name": "a", **IR, "address": 0, "type": "uint16"},
                {"name": "a", **IR, "address": 1, "type": "uint16"},
            ],
            "names used twice: a",
        ),
        ([{"name": "a", **IR, "address": 0, "type": "uint16", "colour": "red"}], "Extra inputs"),
        ([{"name": "Bad Name", **IR, "address": 0, "type": "uint16"}], "String should match"),
        ([{"name": "a", **IR, "address": 0, "type": "int128"}], "Input should be"),
    ],
)
def test_invalid_points_are_rejected_at_load(points: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        with_points(*points)


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ({"name": "go", "table": "coil", "address": 0, "value": 3}, "writes true or false"),
        ({"name": "go", "table": "holding_register", "address": 0, "value": True}, "raw 0..65535"),
        ({"name": "go", "table": "holding_register", "address": 0, "value": 70000}, "raw 0..65535"),
        ({"name": "go", "table": "input_register", "address": 0}, "Input should be"),
        ({"name": "state", "table": "coil", "address": 0}, "names used twice: state"),
    ],
)
def test_invalid_commands_are_rejected(command: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        RegisterMap.model_validate(minimal_map(commands=[command]))


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"address_base": None}, "address_base"),
        ({"address_base": 2}, "address_base"),
        ({"max_read_registers": 126}, "less than or equal to 125"),
        ({"max_read_bits": 2001}, "less than or equal to 2000"),
        ({"points": []}, "at least 1"),
        ({"device_class": "toaster"}, "device_class"),
        ({"word_order": "middle"}, "word_order"),
    ],
)
def test_invalid_map_settings(changes: dict[str, Any], error: str) -> None:
    data = minimal_map(**changes)
    if changes.get("address_base", 0) is None:
        del data["address_base"]
    with pytest.raises(ValidationError, match=error):
        RegisterMap.model_validate(data)


def test_bits_may_share_a_register_and_commands_may_target_points() -> None:
    regmap = with_points(
        {"name": "a", **IR, "address": 5, "type": "bits", "bit": 0},
        {"name": "b", **IR, "address": 5, "type": "bits", "bit": 15},
        {
            "name": "mode",
            "table": "holding_register",
            "address": 0,
            "type": "uint16",
            "access": "read_write",
        },
        commands=[{"name": "mode_two", "table": "holding_register", "address": 0, "value": 2}],
    )
    assert regmap.plan() == (
        ReadBlock(Table.INPUT_REGISTER, 5, 1, ("a", "b")),
        ReadBlock(Table.HOLDING_REGISTER, 0, 1, ("mode",)),
    )


# plausibility and the simulator's image --------------------------------------------------
def test_out_of_range_values_are_rejected_not_returned() -> None:
    brake = load_map("brake_tester")
    block = brake.plan()[0]
    words = [0] * block.count
    words[3] = 12000  # force_left_dan above the map's 10000
    with pytest.raises(ImplausibleValue, match="force_left_dan=12000"):
        brake.decode_block(block, words)
    words[3] = 0xFFFF  # -1 daN: zero drift, plausible
    assert brake.decode_block(block, words)["force_left_dan"] == -1


def test_nan_floats_are_implausible() -> None:
    speed = load_map("speedometer_tester")
    block = speed.plan()[0]
    words = [0] * block.count
    words[6], words[7] = 0x0000, 0x7FC0  # quiet NaN, CDAB
    with pytest.raises(ImplausibleValue, match="indicated_error_pct"):
        speed.decode_block(block, words)


@pytest.mark.parametrize("name", builtin_maps())
@pytest.mark.parametrize("end", ["minimum", "maximum"])
def test_image_and_decode_are_inverse_for_every_builtin_map(name: str, end: str) -> None:
    regmap = load_map(name)
    values: dict[str, float | int | bool] = {}
    for point in regmap.bound_points:
        limit = getattr(point, end)
        values[point.name] = (
            (end == "maximum") if point.codec.dtype.is_bit else (7 if limit is None else limit)
        )
    for block in regmap.plan():
        image = regmap.image(block.table, values)
        words = [image.get(block.address + i, 0) for i in range(block.count)]
        assert regmap.decode_block(block, words) == {n: values[n] for n in block.names}


def test_image_clamps_integers_like_a_saturated_display() -> None:
    brake = load_map("brake_tester")
    image = brake.image(Table.INPUT_REGISTER, {"load_left_kg": 1e9, "force_left_dan": -1e9})
    assert image[1] == 0xFFFF
    assert image[3] == 0x8000


# planning -------------------------------------------------------------------------------
def test_planner_splits_on_gaps_and_limits() -> None:
    spans = [Span("a", Table.INPUT_REGISTER, 0, 1), Span("b", Table.INPUT_REGISTER, 5, 2)]
    assert plan_reads(spans, max_gap=4) == (ReadBlock(Table.INPUT_REGISTER, 0, 7, ("a", "b")),)
    assert len(plan_reads(spans, max_gap=3)) == 2
    assert len(plan_reads(spans, max_gap=4, max_registers=6)) == 2
    coils = [Span(f"c{i}", Table.COIL, i * 10, 1) for i in range(3)]
    assert plan_reads(coils, max_bit_gap=9) == (ReadBlock(Table.COIL, 0, 21, ("c0", "c1", "c2")),)
    with pytest.raises(ValueError, match="more than 2 per request"):
        plan_reads([Span("w", Table.HOLDING_REGISTER, 0, 4)], max_registers=2)


span_lists = st.lists(
    st.builds(
        lambda i, table, address, count: Span(f"p{i}", table, address, count),
        st.integers(0, 10**6),
        st.sampled_from(list(Table)),
        st.integers(0, 400),
        st.sampled_from([1, 1, 1, 2, 4]),
    ),
    max_size=40,
    unique_by=lambda s: s.name,
)


def fewest_blocks(spans: list[Span], limit: int, gap: int) -> int:
    """Minimum number of requests over contiguous runs of the sorted spans (dynamic programming)."""
    spans = sorted(spans, key=lambda s: (s.address, s.count))
    best = [0] + [len(spans) + 1] * len(spans)
    for end in range(1, len(spans) + 1):
        for start in range(end):
            run = spans[start:end]
            reach, ok = run[0].address + run[0].count, True
            for span in run[1:]:
                ok = ok and span.address - reach <= gap
                reach = max(reach, span.address + span.count)
            if ok and reach - run[0].address <= limit:
                best[end] = min(best[end], best[start] + 1)
    return best[-1]


@settings(max_examples=150)
@given(span_lists, st.integers(1, 125), st.integers(0, 10), st.integers(4, 100))
def test_planner_covers_everything_within_limits_with_fewest_requests(
    spans: list[Span], max_registers: int, max_gap: int, max_bits: int
) -> None:
    spans = [s for s in spans if s.count <= (max_bits if s.table.is_bit else max_registers)]
    blocks = plan_reads(
        spans, max_registers=max_registers, max_bits=max_bits, max_gap=max_gap, max_bit_gap=max_gap
    )
    by_name = {s.name: s for s in spans}
    served = [name for block in blocks for name in block.names]
    assert sorted(served) == sorted(by_name)  # every point exactly once
    for block in blocks:
        assert block.count <= (max_bits if block.table.is_bit else max_registers)
        for name in block.names:
            span = by_name[name]
            assert span.table is block.table
            assert (
                block.address <= span.address
                and span.address + span.count <= block.address + block.count
            )
    for table in Table:
        mine = [s for s in spans if s.table is table]
        limit = max_bits if table.is_bit else max_registers
        assert len([b for b in blocks if b.table is table]) == fewest_blocks(mine, limit, max_gap)
