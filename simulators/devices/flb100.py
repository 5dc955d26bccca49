"""Simulated FuLi FLB-100 opacimeter.

Speaks ``drivers.protocols.flb100`` in the device role; behaviour comes from the
scenario's ``vehicle.diesel`` section and ``timing`` (every duration × ``time_scale``):

- Warm-up: for ``timing.analyser_warmup_s`` the status says warming up, opacity reads 0
  and mode, trigger, steady-state and linearity commands get a framed NAK.
- Real time: the engine idles at ``idle_rpm`` with a little smoke (``IDLE_K_FRACTION`` of
  the mean peak K); N = 100·(1 − e^(−K·L)) with the effective path ``L`` = 0.43 m; oil
  temperature from the scenario. Without a diesel section: clean air, 0 r/min.
- Free acceleration (mode 0x08): 0x0B starts one acceleration of ``ACCEL_S``: the engine
  runs up to ``max_rpm`` and back while K rises to the next ``peak_k_m1`` value (cycling
  through the list, with noise) and falls back. 0x04 answers "running" meanwhile, "no
  result" until four accelerations have completed in this mode, then the average and the
  last four peak K. 0x0E/0x0F: peak and curve of the last acceleration. A trigger during
  an acceleration or outside the mode: framed NAK.
- Steady state (mode 0x07): 0x0A starts, 0x09 stops; 0x03 gives the maxima of the values
  sampled (on each request) while it ran.
- 0x0C enters linearity-check mode, where 0x0D reads the reference filter (option
  ``check_filter_n_pct``, default 50 %). 0x05 (linearity zero) is acknowledged.
- On the dyno (a dyno simulator on the same lane, the scripted driver at the wheel): the
  engine speed is the plant's; at full throttle K follows ``diesel.lug_down`` over roller
  speed / VelMaxHP (``simulators.devices.loaded_exhaust``).
- Unknown commands: bare NAK. Wrong DID or checksum: silence, like the instrument.
  Noise is Gaussian, ``timing.noise`` relative, seeded by ``timing.seed``.
"""

from __future__ import annotations

import enum
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from drivers.errors import FrameError
from drivers.framing import NEED_DATA
from drivers.protocols import flb100 as flb
from drivers.protocols.flb100 import Command, Response, StatusFlags
from simulators.base import SimContext, SimSpec
from simulators.devices.loaded_exhaust import engine_on_rollers, lug_down_full_load
from simulators.endpoint import SimLink
from simulators.scenario import DieselEngine

ACCEL_S: Final = 2.0  # one free acceleration, pedal down to idle again
IDLE_K_FRACTION: Final = 0.1  # idle smoke, relative to the mean peak K
PATH_LENGTH_M: Final = 0.43  # effective optical path of a partial-flow opacimeter
GAS_TEMP_IDLE_C: Final = 60
GAS_TEMP_RISE_C: Final = 30  # smoke gets hotter at full speed
AMBIENT_TEMP_C: Final = 20
RESULT_WINDOW: Final = flb.RESULT_K_COUNT


class SimMode(enum.Enum):
    """What the instrument is doing."""

    DIRECT = StatusFlags.DIRECT_MODE
    STEADY = StatusFlags.STEADY_MODE
    FREE_ACCEL = StatusFlags.FREE_ACCEL_MODE
    LINEARITY = StatusFlags.LINEARITY_CHECK_MODE


MODE_COMMANDS: Final = {
    Command.MODE_DIRECT: SimMode.DIRECT,
    Command.MODE_STEADY: SimMode.STEADY,
    Command.MODE_FREE_ACCEL: SimMode.FREE_ACCEL,
    Command.LINEARITY_CHECK_MODE: SimMode.LINEARITY,
}
#: commands refused (framed NAK) while warming up
NOT_WHILE_WARMING: Final = frozenset(
    {*MODE_COMMANDS, Command.FREE_ACCEL_TRIGGER, Command.STEADY_START, Command.READ_CHECK_VALUE}
)


class Flb100SimOptions(BaseModel):
    """Options of the simulator (``SimContext.options``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check_filter_n_pct: float = Field(default=50.0, ge=0, le=100)


def opacity_pct(k_m1: float) -> float:
    """Opacity N (%) of smoke with absorption coefficient ``k_m1`` over the optical path."""
    return 100.0 * (1.0 - math.exp(-k_m1 * PATH_LENGTH_M))


class Flb100Sim:
    """The simulated opacimeter: one connection at a time, state kept across connections."""

    nak: bytes = flb.encode_response(flb.Nak())

    def __init__(self, ctx: SimContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = Flb100SimOptions.model_validate(ctx.options)
        self.diesel: DieselEngine | None = ctx.scenario.vehicle.diesel
        self.position = ctx.position
        self.did = flb.DID if ctx.address is None else ctx.address
        timing = ctx.scenario.timing
        self._noise = timing.noise
        self._accel_s = ACCEL_S * timing.time_scale
        self._random = random.Random(timing.seed)
        self._clock = clock
        self._warm_until = clock() + timing.analyser_warmup_s * timing.time_scale
        self.mode = SimMode.DIRECT
        self.accelerations = 0  # since power-on: picks the next peak of the scenario
        self.results: deque[float] = deque(maxlen=RESULT_WINDOW)
        self.completed_in_mode = 0
        self._accel: tuple[float, float] | None = None  # (start, peak K) while running
        self.last = flb.LastFreeAccel(0.0, 0)
        self.curve = flb.FreeAccelCurve((0.0,) * flb.CURVE_POINTS, 0)
        self.steady_running = False
        self.steady_max = flb.SteadyResult(0.0, 0.0, 0, 0)

    # --- use cases and state ----------------------------------------------------------

    def warming(self, now: float) -> bool:
        """Whether the instrument is still warming up at ``now``."""
        return now < self._warm_until

    def flags(self, now: float) -> StatusFlags:
        """The status flags at ``now``."""
        flags = StatusFlags(self.mode.value)
        if self.warming(now):
            flags |= StatusFlags.WARMING_UP
        if self.completed_in_mode >= RESULT_WINDOW and self.mode is SimMode.FREE_ACCEL:
            flags |= StatusFlags.FREE_ACCEL_DATA_VALID
        if self.steady_running:
            flags |= StatusFlags.STEADY_MEASURING
        if self._accel is not None:
            flags |= StatusFlags.ACCELERATING
        return flags

    def realtime(self, now: float) -> flb.Realtime:
        """Noise-free real-time values at ``now``."""
        diesel = self.diesel
        if diesel is None:
            return flb.Realtime(0.0, 0.0, AMBIENT_TEMP_C, AMBIENT_TEMP_C, 0)
        base = IDLE_K_FRACTION * statistics.fmean(diesel.peak_k_m1 or [0.0])
        peak, swing = base, 0.0
        if self._accel is not None:
            start, peak = self._accel
            swing = math.sin(math.pi * min(1.0, (now - start) / self._accel_s))
        k = 0.0 if self.warming(now) else base + (peak - base) * swing * swing
        rpm = diesel.idle_rpm + (diesel.max_rpm - diesel.idle_rpm) * swing
        gas_temp = GAS_TEMP_IDLE_C + GAS_TEMP_RISE_C * swing
        engine = engine_on_rollers(self.position)
        if engine is not None:  # driven on the lane's dyno: its speed, its load's smoke
            rpm = engine.engine_rpm
            full = lug_down_full_load(diesel, engine)
            if full is not None and not self.warming(now):
                k, gas_temp = full[0], GAS_TEMP_IDLE_C + GAS_TEMP_RISE_C
        return flb.Realtime(
            round(k, 2),
            round(opacity_pct(k), 1),
            round(gas_temp),
            round(diesel.oil_temp_c),
            round(rpm),
        )

    # --- service ----------------------------------------------------------------------

    async def handle(self, link: SimLink) -> None:
        """Serve one connection until cancelled."""
        decoder = flb.RequestDecoder(self.did)
        while True:
            decoder.feed(await link.read())
            while True:
                try:
                    request = decoder.next_message()
                except FrameError:
                    continue  # wrong DID or checksum: the instrument stays silent
                if request is NEED_DATA:
                    break
                await link.send(flb.encode_response(self.respond(request)))

    def respond(self, request: flb.Request) -> Response:
        """The response to one request, advancing the simulated time first."""
        now = self._clock()
        self._finish_acceleration(now)
        command = request.command
        if command is None:
            return flb.Nak()
        if command in NOT_WHILE_WARMING and self.warming(now):
            return flb.Nak(command)
        if self.steady_running:
            self._sample_steady(now)
        match command:
            case Command.STATUS:
                return flb.StatusReply(self.flags(now))
            case Command.REALTIME:
                return self._noisy(self.realtime(now))
            case Command.STEADY_RESULT:
                return self.steady_max
            case Command.FREE_ACCEL_RESULT:
                return self._free_accel_reply()
            case Command.READ_CHECK_VALUE if self.mode is SimMode.LINEARITY:
                n = self.options.check_filter_n_pct * (1.0 + self._random.gauss(0, self._noise))
                return flb.CheckValue(round(min(100.0, max(0.0, n)), 1))
            case Command.LAST_FREE_ACCEL:
                return self.last
            case Command.FREE_ACCEL_CURVE:
                return self.curve
        return self._act(command, now)

    def _act(self, command: Command, now: float) -> Response:
        """Commands that change the state; a framed NAK when the state forbids them."""
        if command in MODE_COMMANDS:
            self.mode, self.completed_in_mode = MODE_COMMANDS[command], 0
            self._accel, self.steady_running = None, False
        elif command is Command.FREE_ACCEL_TRIGGER:
            if self.mode is not SimMode.FREE_ACCEL or self._accel is not None:
                return flb.Nak(command)
            self._start_acceleration(now)
        elif command is Command.STEADY_START:
            if self.mode is not SimMode.STEADY:
                return flb.Nak(command)
            self.steady_running = True
            self.steady_max = flb.SteadyResult(0.0, 0.0, 0, 0)
            self._sample_steady(now)
        elif command is Command.STEADY_STOP:
            self.steady_running = False
        elif command is not Command.LINEARITY_ZERO:
            return flb.Nak(command)  # 0x0D outside linearity-check mode
        return flb.Ack(command)

    # --- free acceleration ------------------------------------------------------------

    def _start_acceleration(self, now: float) -> None:
        peaks = self.diesel.peak_k_m1 if self.diesel is not None else []
        peak = peaks[self.accelerations % len(peaks)] if peaks else 0.0
        self.accelerations += 1
        self._accel = (now, max(0.0, peak * (1.0 + self._random.gauss(0, self._noise))))

    def _finish_acceleration(self, now: float) -> None:
        if self._accel is None or now < self._accel[0] + self._accel_s:
            return
        start, peak = self._accel
        points = [
            start + self._accel_s * (i + 0.5) / flb.CURVE_POINTS for i in range(flb.CURVE_POINTS)
        ]
        samples = [self.realtime(t) for t in points]
        self._accel = None
        self.results.append(round(peak, 2))
        self.completed_in_mode += 1
        max_rpm = max(sample.engine_speed_rpm for sample in samples)
        self.last = flb.LastFreeAccel(round(peak, 2), max_rpm)
        self.curve = flb.FreeAccelCurve(tuple(sample.n_pct for sample in samples), max_rpm)

    def _free_accel_reply(self) -> flb.FreeAccelReply:
        if self._accel is not None:
            return flb.FreeAccelReply(flb.FreeAccelState.RUNNING)
        if self.completed_in_mode < RESULT_WINDOW:
            return flb.FreeAccelReply(flb.FreeAccelState.NONE)
        values = tuple(self.results)
        average = round(statistics.fmean(values), 2)
        return flb.FreeAccelReply(flb.FreeAccelState.DONE, average, values)

    # --- steady state and noise -------------------------------------------------------

    def _sample_steady(self, now: float) -> None:
        value, best = self._noisy(self.realtime(now)), self.steady_max
        self.steady_max = flb.SteadyResult(
            max(best.k_m1, value.k_m1),
            max(best.n_pct, value.n_pct),
            max(best.gas_temp_c, value.gas_temp_c),
            max(best.oil_temp_c, value.oil_temp_c),
        )

    def _noisy(self, value: flb.Realtime) -> flb.Realtime:
        def jitter(x: float) -> float:
            return max(0.0, x * (1.0 + self._random.gauss(0, self._noise)))

        k = round(jitter(value.k_m1), 2)
        rpm = round(jitter(value.engine_speed_rpm))
        return flb.Realtime(k, round(opacity_pct(k), 1), value.gas_temp_c, value.oil_temp_c, rpm)


def _factory(ctx: SimContext) -> Any:
    return Flb100Sim(ctx)


SIM = SimSpec(
    protocol="flb100",
    kind="stream",
    summary="FuLi FLB-100 opacimeter: modes, free acceleration from the scenario, linearity",
    factory=_factory,
)
