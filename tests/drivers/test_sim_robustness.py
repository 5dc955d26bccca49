"""Whatever a host sends, the new simulators answer or stay silent: they never crash
(a crashed simulator would end its connection), and their state stays physical."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.base import LanePosition, SimContext
from simulators.devices.elm327 import Elm327Sim
from simulators.devices.nhc03 import Nhc03Sim
from simulators.devices.xincheng import XinChengSim, split_commands
from simulators.faults import FaultPlan
from tests.drivers.dyno_rig import Clock, make_scenario
from tests.fuzz.conftest import EXAMPLES

FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCENARIO = make_scenario({"program": "asm"}, vehicle={"petrol": {}, "obd": {}})


def ctx() -> SimContext:
    return SimContext(SCENARIO, FaultPlan(), LanePosition())


xincheng_frames = st.builds(
    lambda code, raw, tail: b"X" + code + raw + tail,
    st.sampled_from([b"SS", b"SF", b"SP", b"SI", b"BS", b"BF", b"BP", b"BI", b"BQ", b"JU", b"JD",
                     b"EB", b"ES", b"RT", b"RS", b"RF", b"II", b"SK", b"ZZ"]),
    st.binary(min_size=4, max_size=4),
    st.sampled_from([b"\x00C", b"\x00\x00"]),
)  # fmt: skip


@FUZZ
@given(st.lists(st.one_of(xincheng_frames, st.binary(max_size=12)), max_size=12))
def test_xincheng_sim_survives_anything(chunks: list[bytes]) -> None:
    clock = Clock()
    sim = XinChengSim(ctx(), clock)
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        commands, _ = split_commands(buf)
        for code, value, _ in commands:
            for frame in sim._answer(code, value):
                assert frame[:1] in (b"A", b"D") and frame[-1:] == b"C"
        clock.advance(0.5)
        sim.plant.advance()
        assert math.isfinite(sim.plant.speed_kmh) and sim.plant.speed_kmh >= 0
        assert 0 <= sim.plant.pau_force_n <= SCENARIO.dyno.max_force_n


@FUZZ
@given(st.lists(st.binary(min_size=7, max_size=7), max_size=10))
def test_nhc03_sim_survives_anything(frames: list[bytes]) -> None:
    sim = Nhc03Sim(ctx(), Clock())
    for frame in frames:
        reply = sim._answer(b"\x08" + frame[1:])
        assert reply[:1] in (b"\x06", b"\x15")
    assert math.isfinite(sim.plant.speed_kmh)


@FUZZ
@given(st.lists(st.text(alphabet="ATZESHLP0123456789ABCDEF @:", max_size=12), max_size=10))
def test_elm327_sim_survives_anything(lines: list[str]) -> None:
    sim = Elm327Sim(ctx(), Clock())
    for line in lines:
        assert sim.answer(line).endswith(b"\r>")
