"""Simulated chassis dynamometer with a Nanhua NHC-03 controller.

Builds its bytes itself (only ``drivers.checksums.sum8`` is shared with the driver), from
protocols.md §3.2 and the choices of docs/protocols/nhc03.md: requests ``08 cmd 07 p1 p2
p3 sum8``; ``C`` answers ``06 · power u16 ×100 · force u16 · tenths u8 · speed u16 ×100 ·
sum8``, ``D`` and ``E`` answer ``06 · u16 · sum8``, ``F`` and control words 0x06. The
rollers are the lane's ``RollerPlant`` (``simulators.devices.dyno_physics``).

- Control words: '1' constant speed (variable 200 ×100 km/h), '2' constant force (201 N +
  202 tenths), '7' constant power (228 ×100 kW), '4' ASM (constant power from 228), '0'
  off; '5'/'6' lift up/down ('5' while the rollers turn: 0x15); 'J'/'K' motor. Writing a
  variable of the running mode changes its target at once. 'Q' (variable load) simulates
  the road load A + B·v + C·v² and the inertia of variables 240-243 (our numbering:
  A ×10 N, B ×100, C ×1000, inertia kg; 0 inertia = the base inertia).
- Status word: low byte bit 0 lift up, bit 1 motor on, bit 2 rollers turning; high byte
  the control word in force ('0' when off).
- A request with a bad checksum, an unknown cmd byte or a wrong length byte: 0x15.
- ``dyno.drop_out_after_s``: the controller falls silent that long after a mode began.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from typing import Any, Final

from drivers.checksums import sum8
from simulators.base import SimContext, SimSpec
from simulators.devices.dyno_physics import PauMode, RollerPlant, plant_for
from simulators.endpoint import SimLink

START, LENGTH, ACK, NAK = 0x08, 0x07, 0x06, 0x15
REQUEST_LEN: Final = 7
SPEED, FORCE_INT, FORCE_TENTHS, POWER = 200, 201, 202, 228
ROAD_A, ROAD_B, ROAD_C, ROAD_INERTIA = 240, 241, 242, 243  # our numbering for 'Q'
#: control word -> (mode, variable holding its target)
CONTROL: Final[dict[str, tuple[PauMode, int]]] = {
    "1": ("speed", SPEED),
    "2": ("force", FORCE_INT),
    "4": ("power", POWER),
    "7": ("power", POWER),
}
COMMANDS: Final = frozenset("CDEF012456 7JKQ".replace(" ", ""))
LIFT_UP_BIT, MOTOR_BIT, ROLLING_BIT = 0x01, 0x02, 0x04


def record(data: bytes) -> bytes:
    """``06 · data · sum8``."""
    body = bytes((ACK,)) + data
    return body + bytes((sum8(body),))


class Nhc03Sim:
    """The simulated controller; the rollers' state lives in the lane's plant."""

    nak: bytes = bytes((NAK,))

    def __init__(self, ctx: SimContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.rig = ctx.scenario.dyno
        self.plant: RollerPlant = plant_for(ctx.position, ctx.scenario, clock)
        self._noise = ctx.scenario.timing.noise
        self._random = random.Random(ctx.scenario.timing.seed)
        self.variables: dict[int, int] = {}
        self.control_word = "0"
        self.requests: list[str] = []
        self.silent = False

    async def handle(self, link: SimLink) -> None:
        """Serve one connection."""
        buf = bytearray()
        while True:
            buf += await link.read()
            while buf:
                if buf[0] != START:
                    del buf[0]
                    continue
                if len(buf) < REQUEST_LEN:
                    break
                frame = bytes(buf[:REQUEST_LEN])
                del buf[:REQUEST_LEN]
                reply = self._answer(frame)
                if not self._dropped_out():
                    await link.send(reply)

    def _dropped_out(self) -> bool:
        after, since = self.rig.drop_out_after_s, self.plant.mode_since
        if not self.silent and after is not None and since is not None:
            self.plant.advance()
            self.silent = self.plant.t - since >= after
        return self.silent

    def _answer(self, frame: bytes) -> bytes:
        cmd = chr(frame[1])
        if frame[2] != LENGTH or sum8(frame[:6]) != frame[6] or cmd not in COMMANDS:
            return self.nak
        self.requests.append(cmd)
        p1, p2, p3 = frame[3], frame[4], frame[5]
        if cmd == "C":
            return self._realtime()
        if cmd == "D":
            return record(struct.pack(">H", self._status()))
        if cmd == "E":
            return record(struct.pack(">H", self.variables.get(p1, 0)))
        if cmd == "F":
            return self._write(p1, p2 << 8 | p3)
        return self._control(cmd)

    def _write(self, variable: int, value: int) -> bytes:
        self.variables[variable] = value
        running = CONTROL.get(self.control_word)
        if running is not None and variable in (running[1], FORCE_TENTHS):
            self.plant.command(running[0], self._target(running[0]))
        elif self.control_word == "Q" and ROAD_A <= variable <= ROAD_INERTIA:
            self._road_load()
        return bytes((ACK,))

    def _target(self, mode: PauMode) -> float:
        v = self.variables
        if mode == "speed":
            return v.get(SPEED, 0) / 100
        if mode == "force":
            return v.get(FORCE_INT, 0) + v.get(FORCE_TENTHS, 0) / 10
        return v.get(POWER, 0) / 100

    def _control(self, cmd: str) -> bytes:
        plant = self.plant
        if cmd in CONTROL:
            mode = CONTROL[cmd][0]
            plant.command(mode, self._target(mode))
            self.control_word = cmd
        elif cmd == "0":
            plant.command("off")
            self.control_word = "0"
        elif cmd in "56":
            if not plant.lift(cmd == "5"):
                return self.nak
        elif cmd in "JK":
            plant.motor(cmd == "J")
        else:  # 'Q' variable load: road load and inertia from variables 240-243
            self._road_load()
            self.control_word = "Q"
        return bytes((ACK,))

    def _road_load(self) -> None:
        v = self.variables
        inertia = v.get(ROAD_INERTIA) or self.rig.base_inertia_kg
        a, b, c = v.get(ROAD_A, 0) / 10, v.get(ROAD_B, 0) / 100, v.get(ROAD_C, 0) / 1000
        self.plant.command_road_load(a, b, c, float(inertia))

    def _status(self) -> int:
        plant = self.plant
        plant.advance()
        flags = (LIFT_UP_BIT if plant.lifted else 0) | (MOTOR_BIT if plant.motor_on else 0)
        if plant.speed_kmh > 0.5:
            flags |= ROLLING_BIT
        return ord(self.control_word) << 8 | flags

    def _noisy(self, value: float) -> float:
        return value * (1.0 + self._random.gauss(0.0, self._noise)) if self._noise else value

    def _realtime(self) -> bytes:
        plant = self.plant
        plant.advance()
        speed = max(0.0, self._noisy(plant.speed_kmh))
        force = max(0.0, self._noisy(plant.pau_force_n))
        tenths = round(force * 10)
        power = force * speed / 3600
        data = struct.pack(
            ">HHBH",
            min(0xFFFF, round(power * 100)),
            tenths // 10,
            tenths % 10,
            min(0xFFFF, round(speed * 100)),
        )
        return record(data)


def _factory(ctx: SimContext) -> Any:
    return Nhc03Sim(ctx)


SIM = SimSpec(
    protocol="nhc03",
    kind="stream",
    summary="Nanhua NHC-03 dyno: roller physics, variables, control words, status word",
    factory=_factory,
)
