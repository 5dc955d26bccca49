"""Simulated chassis dynamometer with a Chengdu XinCheng v8.0 controller.

Builds its bytes itself (``struct``; only ``drivers.checksums`` is shared with the
driver), from protocols.md §3.1: commands ``'X' f s float32LE CS 'C'`` in, 17-byte
responses ``'A' f s 3×float32LE key 'C'`` and ``'D' text 'C'`` out. The physics is the
lane's ``RollerPlant`` (``simulators.devices.dyno_physics``: base inertia, parasitic
losses, PAU control, the scripted driver); every duration is scenario time × the
scenario's ``time_scale``, the frame rate is not scaled.

- Commands are taken in either checksum placement: a frame ending in 'C' whatever its
  CS (the count of wrong ones is ``checksum_mismatches``), one without 'C' when byte 8 is
  the sum8 of bytes 0-6 or 1-6. Other bytes are skipped up to the next 'X'.
- ``SS``/``SF``/``SP``/``SI`` store the target of their mode (applied at once when that
  mode runs) and echo it; ``BS``/``BF``/``BP``/``BI`` begin the mode, ``BQ`` ends it; while
  a mode runs an ``AII`` frame (speed, force, duty) goes out every
  ``dyno.frame_interval_s``. ``XII`` answers the same frame. Power is not sent: F·v.
- ``JU`` while the rollers turn answers ``Dcan`t upC``; ``EB`` also says ``Dmotor onC``;
  unknown commands get ``Derror commandC``; ``RT`` the scenario's ambient; ``RS`` roller
  diameter 21.6 cm and 3600 pulses (little-endian; option ``ars_big_endian`` sends the
  document's big-endian example instead); ``RF`` two frames ``ARA``, ``ARB``.
- The key byte: photocell 1 lit while a car stands on the rollers, the remote key set by
  ``press_key`` latched until ``SK``.
- ``dyno.drop_out_after_s``: that long after a mode began the controller falls silent
  (no answers, no frames) until the simulator is rebuilt: a dyno that drops out mid-mode.
- Option ``idle_layout: nanhua`` sends the ``AII`` floats as P, F, V (inconsistency (c)).
"""

from __future__ import annotations

import asyncio
import math
import random
import struct
import time
from collections.abc import Callable
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.checksums import sum8
from simulators.base import SimContext, SimSpec
from simulators.devices.dyno_physics import PauMode, RollerPlant, plant_for
from simulators.endpoint import SimLink

X, A, D, C = 0x58, 0x41, 0x44, 0x43
COMMAND_LEN: Final = 9
ROLLER_DIAMETER_CM: Final = 21.6
ENCODER_PULSES: Final = 3600.0
FORCE_COEFFICIENTS: Final = ((1.0, 0.0, 1.0), (0.0, 1.0, 0.0))  # ARA, ARB: b/c per channel
#: set command -> the mode whose target it sets; begin command -> the mode it starts
SETS: Final[dict[str, PauMode]] = {"SS": "speed", "SF": "force", "SP": "power", "SI": "pwm"}
BEGINS: Final[dict[str, PauMode]] = {"BS": "speed", "BF": "force", "BP": "power", "BI": "pwm"}
PLAIN: Final = frozenset({"SC", "SZ", "EY", "EN", "DF", "DS", "MM", "RC", "Rs", "Rf"})


class XinChengSimOptions(BaseModel):
    """Options of the simulator (``SimContext.options``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_layout: Literal["doc", "nanhua"] = "doc"
    ars_big_endian: bool = Field(default=False, description="RS answers as the doc's example")


def response(code: str, values: tuple[float, float, float], key: int = 0) -> bytes:
    """A 17-byte response frame."""
    return bytes((A,)) + code.encode("ascii") + struct.pack("<3f", *values) + bytes((key, C))


def debug(text: str) -> bytes:
    """A debug text frame."""
    return bytes((D,)) + text.encode("ascii") + bytes((C,))


def _checksums(head: bytes) -> set[int]:
    return {sum8(head), sum8(head[1:])}


def split_commands(buf: bytearray) -> tuple[list[tuple[str, float, bool]], int]:
    """Commands at the front of ``buf`` (removed), and how many bytes were skipped.

    Each command is (letters, value, checksum matched).
    """
    commands: list[tuple[str, float, bool]] = []
    skipped = 0
    while buf:
        if buf[0] != X:
            start = buf.find(bytes((X,)))
            count = start if start > 0 else len(buf)
            del buf[:count]
            skipped += count
            continue
        if len(buf) < COMMAND_LEN:
            break
        frame = bytes(buf[:COMMAND_LEN])
        sums = _checksums(frame[:7])
        letters = frame[1:3]
        if not letters.isalpha() or (frame[8] != C and frame[8] not in sums):
            del buf[0]
            skipped += 1
            continue
        del buf[:COMMAND_LEN]
        value = struct.unpack("<f", frame[3:7])[0]
        matched = frame[7] in sums if frame[8] == C else True
        commands.append((letters.decode("ascii"), value, matched))
    return commands, skipped


class XinChengSim:
    """The simulated controller; the rollers' state lives in the lane's plant."""

    nak: bytes = debug("error command")

    def __init__(self, ctx: SimContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = XinChengSimOptions.model_validate(ctx.options)
        self.scenario = ctx.scenario
        self.rig = ctx.scenario.dyno
        self.plant: RollerPlant = plant_for(ctx.position, ctx.scenario, clock)
        self._noise = ctx.scenario.timing.noise
        self._random = random.Random(ctx.scenario.timing.seed)
        self.targets: dict[PauMode, float] = {"speed": 0.0, "force": 0.0, "power": 0.0, "pwm": 0.0}
        self.key = 0
        self.checksum_mismatches = 0
        self.skipped_bytes = 0
        self.commands: list[str] = []
        self.silent = False
        self._stream_wake = asyncio.Event()
        self._sending = asyncio.Lock()  # a pushed frame never lands inside a (split) reply

    # --- use cases (tests, tools) -----------------------------------------------------

    def press_key(self, key: int) -> None:
        """The inspector presses remote-control key ``key`` (1-12)."""
        self.key = key & 0x0F

    @property
    def streaming(self) -> bool:
        """Whether a control mode runs (frames are pushed)."""
        return self.plant.mode != "off"

    # --- service ----------------------------------------------------------------------

    async def handle(self, link: SimLink) -> None:
        """Serve one connection: answer commands, push frames while a mode runs."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._push(link))
            buf = bytearray()
            while True:
                buf += await link.read()
                commands, skipped = split_commands(buf)
                self.skipped_bytes += skipped
                for code, value, matched in commands:
                    self.checksum_mismatches += not matched
                    for frame in self._answer(code, value):
                        if not self._dropped_out():
                            async with self._sending:
                                await link.send(frame)

    async def _push(self, link: SimLink) -> None:
        while True:
            if not self.streaming or self._dropped_out():
                self._stream_wake.clear()
                await self._stream_wake.wait()
                continue
            await asyncio.sleep(self.rig.frame_interval_s)
            if self.streaming and not self._dropped_out():
                async with self._sending:
                    await link.send(self._idle_frame())

    def _dropped_out(self) -> bool:
        if self.silent:
            return True
        after, since = self.rig.drop_out_after_s, self.plant.mode_since
        if after is not None and since is not None:
            self.plant.advance()
            self.silent = self.plant.t - since >= after
        return self.silent

    # --- commands ---------------------------------------------------------------------

    def _answer(self, code: str, value: float) -> list[bytes]:
        self.commands.append(code)
        plant = self.plant
        if code == "II":
            return [self._idle_frame()]
        if code in SETS:
            if not math.isfinite(value):
                return [debug("error command")]
            mode = SETS[code]
            self.targets[mode] = value
            if plant.mode == mode:
                plant.command(mode, value)
            return [response(code, (value, 0.0, 0.0), self._key())]
        if code in BEGINS:
            mode = BEGINS[code]
            plant.command(mode, self.targets[mode])
            self._stream_wake.set()
            return [response(code, (self.targets[mode], 0.0, 0.0), self._key())]
        handlers: dict[str, Callable[[], list[bytes]]] = {
            "BQ": lambda: self._off(),
            "JU": lambda: self._lift(True),
            "JD": lambda: self._lift(False),
            "EB": lambda: self._motor(True),
            "ES": lambda: self._motor(False),
            "SK": lambda: self._clear_key(),
            "RT": lambda: [response("RT", self._ambient(), self._key())],
            "RS": lambda: [self._roller_setup()],
            "RF": lambda: [
                response("RA", FORCE_COEFFICIENTS[0]),
                response("RB", FORCE_COEFFICIENTS[1]),
            ],
        }
        if code in handlers:
            return handlers[code]()
        if code in PLAIN:
            return [response(code, (value, 0.0, 0.0), self._key())]
        return [debug("error command")]

    def _off(self) -> list[bytes]:
        self.plant.command("off")
        return [response("BQ", (0.0, 0.0, 0.0), self._key())]

    def _lift(self, up: bool) -> list[bytes]:
        if not self.plant.lift(up):
            return [debug("can`t up")]
        return [response("JU" if up else "JD", (0.0, 0.0, 0.0), self._key())]

    def _motor(self, on: bool) -> list[bytes]:
        self.plant.motor(on)
        code = "EB" if on else "ES"
        ack = response(code, (0.0, 0.0, 0.0), self._key())
        return [debug("motor on"), ack] if on else [ack]

    def _clear_key(self) -> list[bytes]:
        self.key = 0
        return [response("SK", (0.0, 0.0, 0.0), self._key())]

    # --- frames -----------------------------------------------------------------------

    def _key(self) -> int:
        photocell = 1 if self.plant.car_on_rollers else 0
        return (self.key << 4) | photocell

    def _noisy(self, value: float) -> float:
        return value * (1.0 + self._random.gauss(0.0, self._noise)) if self._noise else value

    def _idle_frame(self) -> bytes:
        plant = self.plant
        plant.advance()
        speed = max(0.0, self._noisy(plant.speed_kmh))
        force = max(0.0, self._noisy(plant.pau_force_n))
        duty = 100.0 * plant.pau_force_n / self.rig.max_force_n
        if self.options.idle_layout == "nanhua":
            values = (force * speed / 3600.0, force, speed)
        else:
            values = (speed, force, duty)
        return response("II", values, self._key())

    def _ambient(self) -> tuple[float, float, float]:
        rig = self.rig
        return (
            self._noisy(rig.ambient_temp_c),
            self._noisy(rig.ambient_humidity_pct),
            self._noisy(rig.ambient_pressure_kpa),
        )

    def _roller_setup(self) -> bytes:
        if not self.options.ars_big_endian:
            return response("RS", (ROLLER_DIAMETER_CM, ENCODER_PULSES, 0.0), self._key())
        payload = struct.pack(">3f", ROLLER_DIAMETER_CM, ENCODER_PULSES, 0.0)
        return bytes((A,)) + b"RS" + payload + bytes((self._key(), C))


def _factory(ctx: SimContext) -> Any:
    return XinChengSim(ctx)


SIM = SimSpec(
    protocol="xincheng",
    kind="stream",
    summary="XinCheng v8.0 dyno: roller physics, PAU control, scripted driver, pushed frames",
    factory=_factory,
)
