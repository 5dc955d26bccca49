"""Simulated Jiangxing TLCH-10 speedometer tester (A-frame protocol).

Builds and parses its bytes itself (``simulators.wire.aframe``, from protocols.md §5.1;
nothing of the driver's codec). A run follows the lane sequence of the vendor software
(S4):

- Power-on: lift up, rollers locked, speed 0, nothing latched.
- START (0x66, clear/start): clears the latched speed and arms a run; S4 sends it while
  the lift is still up, so the run itself begins at LIFT_DOWN (or at once if the lift is
  already down).
- The run, in device time since it began (every duration scaled by ``timing.time_scale``):
  ``REACTION_S`` of standstill, then the roller speed ramps at
  ``vehicle.speedometer.ramp_kmh_per_s``; when it reaches
  ``actual_at_indicated_40_kmh`` the dashboard shows 40 km/h, the driver presses the
  button and the tester latches that speed; the driver holds ``HOLD_S`` and brakes to a
  stop at ``DECEL_FACTOR`` times the ramp (S4 waits for that stop before lifting up).
- READ (0x68): current speed (Gaussian noise ``SPEED_NOISE`` x ``timing.noise``
  relative, seeded by ``timing.seed``), latched speed and the 'a' flag, 0.1 km/h steps.
- LIFT_UP: rollers locked, the run ends (a latch already made stays readable).
- Commands the TLCH-10 does not have (0x62, 0x6B...) and bad request checksums: NAK.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any, Final

from simulators.base import SimContext, SimSpec
from simulators.endpoint import SimLink
from simulators.scenario import Speedometer
from simulators.wire import aframe

REACTION_S: Final = 1.0  # from the lift going down to the driver accelerating
HOLD_S: Final = 0.5  # after pressing the button, before braking
DECEL_FACTOR: Final = 2.0  # braking to a stop is twice as quick as accelerating
SPEED_NOISE: Final = 0.2  # share of timing.noise applied to a speed reading


@dataclass(frozen=True, slots=True)
class SpeedRun:
    """Noise-free roller speed over device time (seconds since the run began)."""

    target_kmh: float  # roller speed when the dashboard shows 40 km/h
    ramp_kmh_per_s: float

    @property
    def latch_s(self) -> float:
        """When the driver presses the button."""
        return REACTION_S + self.target_kmh / self.ramp_kmh_per_s

    def speed_kmh(self, t: float) -> float:
        """Roller speed at ``t``."""
        if t <= REACTION_S:
            return 0.0
        if t < self.latch_s:
            return self.ramp_kmh_per_s * (t - REACTION_S)
        braking = t - self.latch_s - HOLD_S
        if braking <= 0:
            return self.target_kmh
        return max(0.0, self.target_kmh - DECEL_FACTOR * self.ramp_kmh_per_s * braking)


class Tlch10Sim:
    """The simulated speedometer tester; state is kept across connections."""

    nak: bytes = bytes((aframe.NAK,))

    def __init__(self, ctx: SimContext) -> None:
        timing = ctx.scenario.timing
        meter = ctx.scenario.vehicle.speedometer or Speedometer()
        self._scale = timing.time_scale
        self._noise = timing.noise
        self._random = random.Random(timing.seed)
        self.run = SpeedRun(meter.actual_at_indicated_40_kmh, meter.ramp_kmh_per_s)
        self.lift_up = True
        self._armed = False
        self._run_started: float | None = None  # loop time when the rollers were freed
        self._latched = False
        self._latch_value = 0.0

    async def handle(self, link: SimLink) -> None:
        """Serve one connection until cancelled."""
        buf = bytearray()  # line noise is skipped
        while True:
            buf += await link.read()
            for command in aframe.split_requests(buf):
                await link.send(self._answer(command))

    def _answer(self, command: int) -> bytes:
        if command not in aframe.TLCH10_COMMANDS:
            return self.nak  # also a request with a bad checksum
        if command == aframe.READ:
            return aframe.speed(*self._reading())
        if command == aframe.START_TEST:
            self._arm()
        elif command == aframe.LIFT_DOWN:
            self.lift_up = False
            if self._armed and self._run_started is None:
                self._run_started = self._now()
        elif command == aframe.LIFT_UP:
            self._elapsed()  # settles the latch before the rollers lock
            self.lift_up = True
            self._armed = False
            self._run_started = None
        return aframe.ack(command)

    def _arm(self) -> None:
        self._armed = True
        self._latched = False
        spread = SPEED_NOISE * self._noise * self.run.target_kmh
        self._latch_value = round(self._random.gauss(self.run.target_kmh, spread), 1)
        self._run_started = None if self.lift_up else self._now()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _elapsed(self) -> float | None:
        """Device time into the current run (None when no run), latching when due."""
        if self._run_started is None:
            return None
        elapsed = (self._now() - self._run_started) / self._scale
        if elapsed >= self.run.latch_s:
            self._latched = True
        return elapsed

    def _reading(self) -> tuple[float, float, bool]:
        """Current speed, latched speed (0 until latched) and the latch flag, km/h."""
        elapsed = self._elapsed()
        speed = 0.0 if elapsed is None else self.run.speed_kmh(elapsed)
        if speed > 0:
            speed = max(0.0, self._random.gauss(speed, SPEED_NOISE * self._noise * speed))
        latched = self._latch_value if self._latched else 0.0
        return round(speed, 1), latched, self._latched


def _factory(ctx: SimContext) -> Any:
    return Tlch10Sim(ctx)


SIM = SimSpec(
    protocol="tlch10",
    kind="stream",
    summary="Jiangxing TLCH-10 speedometer tester: speed ramp, button latch at 40 km/h shown",
    factory=_factory,
)
