"""Simulated FuLi FLV-1000 VMAS dilution flowmeter.

Builds its bytes itself (only ``drivers.checksums.neg_sum8`` is shared with the driver)
from protocols.md §3.4 and the choices of docs/protocols/flv1000.md: requests ``CMD · LB
· [data] · CS``, replies ``06 · CMD · LB · data · CS`` (LB the whole length, CS the two's
complement of the sum), NAK 0x15 for unknown commands. Request checksums are verified,
counted (``checksum_mismatches``) and not enforced, like the driver does.

What it measures follows the car (``scenario.flowmeter``, and the lane's roller plant when
a dyno simulator runs): the fan draws ``total_flow_l_s`` of diluted exhaust; the engine
puts in ``idle_exhaust_l_s + exhaust_l_s_per_kw · wheel power``; the exhaust's O2 is that
of the petrol car's ``loaded.vmas`` gas on the rollers (else its idle O2; a diesel 10 %),
so diluted O2 = 20.9 − (20.9 − O2_exhaust) · exhaust / total, which is what a VMAS
procedure inverts to get the exhaust flow. Standard flow is actual flow at 101.325 kPa and
0 °C. Status: flow out of range outside 80-200 L/s, pressure abnormal outside 80-110 kPa,
temperature abnormal outside 0-60 °C, O2 warming for ``warmup_s``. Option
``checksum_offset`` adds to every reply's CS (a unit whose checksums break the stated
rule, as the manual's examples do).
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from drivers.checksums import neg_sum8
from simulators.base import SimContext, SimSpec
from simulators.devices.dyno_physics import plant_of
from simulators.endpoint import SimLink
from simulators.scenario import Scenario

ACK, NAK = 0x06, 0x15
AIR_O2: Final = 20.9
DIESEL_O2: Final = 10.0
FLOW_RANGE: Final = (80.0, 200.0)
PRESSURE_RANGE: Final = (80.0, 110.0)
TEMPERATURE_RANGE: Final = (0.0, 60.0)
VERSION: Final = b"FLV1000 V2.1"
#: measuring command -> which values, in order
READS: Final[dict[int, tuple[str, ...]]] = {
    0x81: ("o2",),
    0x82: ("pressure",),
    0x83: ("temperature",),
    0x84: ("actual",),
    0x85: ("standard",),
    0x86: ("o2", "pressure", "temperature", "actual"),
    0x87: ("o2", "pressure", "temperature", "standard"),
}
SCALE: Final = {"o2": 100, "pressure": 10, "temperature": 10, "actual": 10, "standard": 10}
CALIBRATIONS: Final[dict[int, int]] = {
    0xA0: 3,
    0xA1: 5,
    0xA2: 5,
    0xA3: 5,
    0xA4: 3,
    0xA5: 5,
    0xA6: 3,
}


class Flv1000SimOptions(BaseModel):
    """Options of the simulator (``SimContext.options``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checksum_offset: int = Field(default=0, ge=0, le=255, description="break the CS rule")


def frame(command: int, data: bytes, offset: int = 0) -> bytes:
    """``06 · CMD · LB · data · CS``."""
    body = bytes((ACK, command, len(data) + 4)) + data
    return body + bytes(((neg_sum8(body) + offset) & 0xFF,))


def exhaust_o2(scenario: Scenario, phase: str | None) -> float:
    """O2 of the raw exhaust of the scenario's engine."""
    petrol = scenario.vehicle.petrol
    if petrol is not None:
        if petrol.loaded is not None and phase is not None:
            return getattr(petrol.loaded, phase, petrol.loaded.vmas).o2_pct
        return petrol.o2_pct
    return DIESEL_O2 if scenario.vehicle.diesel is not None else AIR_O2


class Flv1000Sim:
    """The simulated flowmeter."""

    nak: bytes = bytes((NAK,))

    def __init__(self, ctx: SimContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = Flv1000SimOptions.model_validate(ctx.options)
        self.scenario = ctx.scenario
        self.meter = ctx.scenario.flowmeter
        self.position = ctx.position
        self._clock = clock
        self._random = random.Random(ctx.scenario.timing.seed)
        self._noise = ctx.scenario.timing.noise
        self._warm_until = clock() + self.meter.warmup_s * ctx.scenario.timing.time_scale
        self.checksum_mismatches = 0
        self.calibrations: list[tuple[int, bytes]] = []

    # --- measurement ------------------------------------------------------------------

    def values(self) -> dict[str, float]:
        """Noise-free values now."""
        meter, scenario = self.meter, self.scenario
        has_engine = scenario.vehicle.petrol is not None or scenario.vehicle.diesel is not None
        plant = plant_of(self.position)
        engine = plant.engine() if plant is not None else None
        exhaust, phase = 0.0, None
        if has_engine:
            power = engine.wheel_power_kw if engine is not None and engine.on_rollers else 0.0
            exhaust = meter.idle_exhaust_l_s + meter.exhaust_l_s_per_kw * power
            phase = engine.phase if engine is not None else None
        total = meter.total_flow_l_s
        o2 = AIR_O2 - (AIR_O2 - exhaust_o2(scenario, phase)) * min(1.0, exhaust / total)
        standard = total * meter.pressure_kpa / 101.325 * 273.15 / (273.15 + meter.temperature_c)
        return {
            "o2": o2,
            "pressure": meter.pressure_kpa,
            "temperature": meter.temperature_c,
            "actual": total,
            "standard": standard,
        }

    def status(self) -> bytes:
        """The three status bytes."""
        meter, flags = self.meter, 0
        if not FLOW_RANGE[0] <= meter.total_flow_l_s <= FLOW_RANGE[1]:
            flags |= 0x01
        if not PRESSURE_RANGE[0] <= meter.pressure_kpa <= PRESSURE_RANGE[1]:
            flags |= 0x04
        if not TEMPERATURE_RANGE[0] <= meter.temperature_c <= TEMPERATURE_RANGE[1]:
            flags |= 0x08
        if self._clock() < self._warm_until:
            flags |= 0x10
        return bytes((flags, 0, 0))

    def _noisy(self, value: float) -> float:
        return value * (1.0 + self._random.gauss(0.0, self._noise)) if self._noise else value

    # --- service ----------------------------------------------------------------------

    async def handle(self, link: SimLink) -> None:
        """Serve one connection."""
        buf = bytearray()
        while True:
            buf += await link.read()
            while buf:
                command = buf[0]
                length = (
                    3 if command in READS or command in (0x88, 0x89) else CALIBRATIONS.get(command)
                )
                if length is None:
                    del buf[0]
                    await link.send(self.nak)
                    continue
                if len(buf) < 2:
                    break
                if buf[1] != length:
                    del buf[0]
                    continue
                if len(buf) < length:
                    break
                request = bytes(buf[:length])
                del buf[:length]
                self.checksum_mismatches += neg_sum8(request[:-1]) != request[-1]
                await link.send(self._reply(request))

    def _reply(self, request: bytes) -> bytes:
        command, offset = request[0], self.options.checksum_offset
        if command in READS:
            values = self.values()
            data = b""
            for name in READS[command]:
                raw = round(self._noisy(values[name]) * SCALE[name])
                data += struct.pack(
                    ">h" if name == "temperature" else ">H",
                    max(0, raw) if name != "temperature" else raw,
                )
            return frame(command, data, offset)
        if command == 0x88:
            return frame(command, self.status(), offset)
        if command == 0x89:
            return frame(command, VERSION, offset)
        self.calibrations.append((command, request[2:-1]))
        return frame(command, b"", offset)


def _factory(ctx: SimContext) -> Any:
    return Flv1000Sim(ctx)


SIM = SimSpec(
    protocol="flv1000",
    kind="stream",
    summary="FuLi FLV-1000 VMAS flowmeter: diluted O2 and flow following the car on the dyno",
    factory=_factory,
)
