"""Golden register images of the built-in Modbus maps (protocols.md §9), checked against
the driver's register-map codec and against the simulator's own map reader and packer.

protocols.md gives a register sketch but no worked Modbus frame, so the images in
golden/modbus.yaml were derived by hand from the sketch and our maps (see that file).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from drivers.modbus.maps import load_map
from drivers.modbus.planner import ReadBlock, Table
from simulators.wire import modbus_map
from tests.drivers.golden_data import Golden, params


def _words(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // 2}H", data))


def _named(golden: Golden) -> dict[str, Any]:
    return dict(golden.values)


@params("modbus")
def test_driver_decodes_the_golden_registers(golden: Golden) -> None:
    regmap = load_map(golden.extra["map"])
    words = _words(golden.data)
    block = ReadBlock(
        Table(golden.extra["table"]), golden.extra["start"], len(words), tuple(golden.values)
    )
    decoded = regmap.decode_block(block, words)
    assert decoded == pytest.approx(_named(golden))
    for name, value in golden.values.items():  # and back: each point's own registers
        point = regmap.point(name)
        if point.codec.dtype.is_bit:
            continue
        at = point.address - golden.extra["start"]
        assert point.codec.encode(value) == words[at : at + point.count], name


@params("modbus")
def test_simulator_builds_the_golden_registers(golden: Golden) -> None:
    simmap = modbus_map.load(golden.extra["map"])
    words = _words(golden.data)
    image = simmap.image(golden.extra["table"], _named(golden))
    start = golden.extra["start"]
    assert [image[start + i] for i in range(len(words))] == words
    points = {p.name: p for p in simmap.points}
    for name, value in golden.values.items():  # what the host writes, read back
        point = points[name]
        if point.type in ("bits", "bool"):
            continue
        at = point.address - start
        assert point.value_of(words[at : at + point.count]) == pytest.approx(value), name
