"""Simulated Yaohua XK3190 weighing indicator under an axle-weighing plate.

Builds and parses its bytes itself (``simulators.wire.xk3190``, from protocols.md §5.4;
nothing of the driver's codec). What the plate carries comes
from the scenario's axle at ``position.axle_index``: its left wheel, right wheel or both
(option ``side``, default "axle"). The weight over time, in device seconds (every
duration scaled by ``timing.time_scale``):

- when the vehicle moves on (``position.moves`` changes; at start-up the first axle
  drives on) the old axle rolls off in ``LEAVE_S``, the plate is empty for ``GAP_S``, then
  the new load arrives as a damped oscillation (time constant ``SETTLE_TAU_S``,
  ``OSCILLATION_HZ``), settled to within 1 % after about 1.5 s;
- the settled value carries a static error drawn once per arrival (Gaussian,
  ``timing.noise`` relative, seeded by ``timing.seed``) and a per-reading jitter of
  ``JITTER_DIVISIONS`` divisions; the display rounds to ``division_kg``.

Options: ``mode`` "continuous" (a tF=0 frame every ``FRAME_PERIOD_S``) or "command"
(answers A handshake, B gross, C tare = 0, D net at its address: ``ctx.address`` 1-26,
or option ``address`` 'A'-'Z', default 'A'); ``side``; ``unit`` "kg" or "t";
``decimals`` (display decimals, default 0); ``division_kg`` (default 5). In command mode
E, F and unknown commands at our address get a bare NAK (0x15; our choice, the manuals
define no error answer); corrupted requests and other addresses get no reply, as on an
RS-485 line shared by several indicators.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any, Final

from simulators.base import SimContext, SimSpec
from simulators.endpoint import SimLink
from simulators.scenario import Axle
from simulators.wire import xk3190 as wire

FRAME_PERIOD_S: Final = 0.1  # tF=0 output rate of the indicator (about 10 frames/s)
LEAVE_S: Final = 0.5  # the previous axle rolls off the plate
GAP_S: Final = 1.0  # empty plate between two axles
SETTLE_TAU_S: Final = 0.3  # decay of the plate's oscillation after an axle arrives
OSCILLATION_HZ: Final = 2.0  # the plate rocking on its load cells
JITTER_DIVISIONS: Final = 0.25  # reading-to-reading noise, in display divisions
UNIT_KG: Final[dict[str, float]] = {"kg": 1.0, "t": 1000.0}


class PlateModel:
    """The plate's true weight over device time, driven by the shared lane position."""

    def __init__(self, ctx: SimContext, side: str) -> None:
        self._ctx = ctx
        self._side = side
        self._noise = ctx.scenario.timing.noise
        self._random = random.Random(ctx.scenario.timing.seed)
        self._moves: int | None = None  # position.moves last seen (None: not started)
        self._moved_at = 0.0  # device time of the last move
        self._leaving_kg = 0.0
        self._arriving_kg = 0.0

    def load_kg(self, axle: Axle) -> float:
        """What the plate carries of ``axle`` (one wheel or both)."""
        if self._side == "left":
            return axle.load_left_kg
        if self._side == "right":
            return axle.load_right_kg
        return axle.load_left_kg + axle.load_right_kg

    def weight_kg(self, t: float) -> float:
        """The plate's weight at device time ``t``, before display rounding."""
        position = self._ctx.position
        if position.moves != self._moves:
            self._leaving_kg = 0.0 if self._moves is None else self._settled_weight(t)
            self._moves, self._moved_at = position.moves, t
            axles = self._ctx.scenario.vehicle.axles
            load = self.load_kg(axles[position.axle_index % len(axles)])
            self._arriving_kg = self._random.gauss(load, self._noise * load)
        return self._settled_weight(t)

    def _settled_weight(self, t: float) -> float:
        since = t - self._moved_at
        if since < LEAVE_S:
            return self._leaving_kg * (1 - since / LEAVE_S)
        arrived = since - LEAVE_S - GAP_S
        if arrived < 0:
            return 0.0
        swing = math.exp(-arrived / SETTLE_TAU_S) * math.cos(2 * math.pi * OSCILLATION_HZ * arrived)
        return self._arriving_kg * (1 - swing)

    def jitter(self, division_kg: float) -> float:
        """Reading-to-reading noise."""
        return self._random.gauss(0.0, JITTER_DIVISIONS * division_kg)


class Xk3190Sim:
    """The simulated indicator; the plate model is kept across connections."""

    nak: bytes = bytes((wire.NAK,))

    def __init__(self, ctx: SimContext) -> None:
        options = ctx.options
        self.mode: str = options.get("mode", "continuous")
        if self.mode not in ("continuous", "command"):
            raise ValueError(f"xk3190 sim: unknown mode {self.mode!r}")
        side: str = options.get("side", "axle")
        if side not in ("left", "right", "axle"):
            raise ValueError(f"xk3190 sim: unknown side {side!r}")
        self.address: str = (
            wire.address_letter(ctx.address)
            if ctx.address is not None
            else options.get("address", "A")
        )
        self.unit_kg = UNIT_KG[options.get("unit", "kg")]
        self.decimals = int(options.get("decimals", 0))
        self.division_kg = float(options.get("division_kg", 5.0))
        self._scale = ctx.scenario.timing.time_scale
        self.plate = PlateModel(ctx, side)
        self._epoch: float | None = None
        self.frames_sent = 0

    def display(self) -> float:
        """What the indicator shows now (display unit): the weight rounded to the division."""
        now = asyncio.get_running_loop().time()
        if self._epoch is None:
            self._epoch = now
        t = (now - self._epoch) / self._scale
        kg = self.plate.weight_kg(t) + self.plate.jitter(self.division_kg)
        shown = round(kg / self.division_kg) * self.division_kg
        return shown / self.unit_kg

    async def handle(self, link: SimLink) -> None:
        """Serve one connection until cancelled."""
        if self.mode == "continuous":
            await self._stream(link)
        else:
            await self._answer_requests(link)

    async def _stream(self, link: SimLink) -> None:
        while True:
            await link.send(wire.continuous(self.display(), self.decimals))
            self.frames_sent += 1
            await asyncio.sleep(FRAME_PERIOD_S * self._scale)

    async def _answer_requests(self, link: SimLink) -> None:
        buf = bytearray()  # corrupted requests and noise: an indicator stays silent
        while True:
            buf += await link.read()
            for address, command in wire.split_requests(buf):
                reply = self._answer(address, command)
                if reply is not None:
                    await link.send(reply)

    def _answer(self, address: str, command: str) -> bytes | None:
        if address != self.address:
            return None
        if command == wire.HANDSHAKE:
            return wire.reply(self.address, command)
        if command not in wire.WEIGHT_COMMANDS:
            return self.nak
        value = 0.0 if command == wire.TARE else self.display()
        return wire.reply(self.address, command, (value, self.decimals))


def _factory(ctx: SimContext) -> Any:
    return Xk3190Sim(ctx)


SIM = SimSpec(
    protocol="xk3190",
    kind="stream",
    summary="Yaohua XK3190 indicator on an axle plate: drive-on transient, settle, tF=0/command",
    factory=_factory,
)
