"""Simulated FuLi FLB-100 opacimeter.

Builds and parses its bytes itself (``simulators.wire.flb100``, from protocols.md §2.1;
nothing of the driver's codec); behaviour comes from the
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
from typing import Any, Final, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from simulators.base import SimContext, SimSpec
from simulators.devices.loaded_exhaust import engine_on_rollers, lug_down_full_load
from simulators.endpoint import SimLink
from simulators.scenario import DieselEngine
from simulators.wire import flb100 as wire

ACCEL_S: Final = 2.0  # one free acceleration, pedal down to idle again
IDLE_K_FRACTION: Final = 0.1  # idle smoke, relative to the mean peak K
PATH_LENGTH_M: Final = 0.43  # effective optical path of a partial-flow opacimeter
GAS_TEMP_IDLE_C: Final = 60
GAS_TEMP_RISE_C: Final = 30  # smoke gets hotter at full speed
AMBIENT_TEMP_C: Final = 20
RESULT_WINDOW: Final = 4  # K values in a free-acceleration result
CURVE_POINTS: Final = 100  # N values in the curve of the last free acceleration


class SimMode(enum.Enum):
    """What the instrument is doing (the value: its status bit)."""

    DIRECT = wire.DIRECT_MODE
    STEADY = wire.STEADY_MODE
    FREE_ACCEL = wire.FREE_ACCEL_MODE
    LINEARITY = wire.LINEARITY_CHECK


MODE_COMMANDS: Final = {
    wire.MODE_DIRECT: SimMode.DIRECT,
    wire.MODE_STEADY: SimMode.STEADY,
    wire.MODE_FREE_ACCEL: SimMode.FREE_ACCEL,
    wire.LINEARITY_CHECK_MODE: SimMode.LINEARITY,
}
#: commands refused (framed NAK) while warming up
NOT_WHILE_WARMING: Final = frozenset(
    {*MODE_COMMANDS, wire.FREE_ACCEL_TRIGGER, wire.STEADY_START, wire.READ_CHECK_VALUE}
)


class Realtime(NamedTuple):
    """Real-time values (0x02), in the units the instrument shows."""

    k_m1: float
    n_pct: float
    gas_temp_c: int
    oil_temp_c: int
    engine_speed_rpm: int


class SteadyMaxima(NamedTuple):
    """Maxima of a steady-state measurement (0x03)."""

    k_m1: float
    n_pct: float
    gas_temp_c: int
    oil_temp_c: int


class Flb100SimOptions(BaseModel):
    """Options of the simulator (``SimContext.options``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    check_filter_n_pct: float = Field(default=50.0, ge=0, le=100)


def opacity_pct(k_m1: float) -> float:
    """Opacity N (%) of smoke with absorption coefficient ``k_m1`` over the optical path."""
    return 100.0 * (1.0 - math.exp(-k_m1 * PATH_LENGTH_M))


class Flb100Sim:
    """The simulated opacimeter: one connection at a time, state kept across connections."""

    nak: bytes = wire.refusal()

    def __init__(self, ctx: SimContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = Flb100SimOptions.model_validate(ctx.options)
        self.diesel: DieselEngine | None = ctx.scenario.vehicle.diesel
        self.position = ctx.position
        self.did = wire.DID if ctx.address is None else ctx.address
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
        self.last: tuple[float, int] = (0.0, 0)  # K and rpm of the last free acceleration
        self.curve: tuple[tuple[float, ...], int] = ((0.0,) * CURVE_POINTS, 0)  # N, max rpm
        self.steady_running = False
        self.steady_max = SteadyMaxima(0.0, 0.0, 0, 0)

    # --- use cases and state ----------------------------------------------------------

    def warming(self, now: float) -> bool:
        """Whether the instrument is still warming up at ``now``."""
        return now < self._warm_until

    def flags(self, now: float) -> int:
        """The status bits at ``now`` (byte 1 low, byte 2 high)."""
        flags: int = self.mode.value
        if self.warming(now):
            flags |= wire.WARMING_UP
        if self.completed_in_mode >= RESULT_WINDOW and self.mode is SimMode.FREE_ACCEL:
            flags |= wire.FREE_ACCEL_DATA_VALID
        if self.steady_running:
            flags |= wire.STEADY_MEASURING
        if self._accel is not None:
            flags |= wire.ACCELERATING
        return flags

    def realtime(self, now: float) -> Realtime:
        """Noise-free real-time values at ``now``."""
        diesel = self.diesel
        if diesel is None:
            return Realtime(0.0, 0.0, AMBIENT_TEMP_C, AMBIENT_TEMP_C, 0)
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
        return Realtime(
            round(k, 2),
            round(opacity_pct(k), 1),
            round(gas_temp),
            round(diesel.oil_temp_c),
            round(rpm),
        )

    # --- service ----------------------------------------------------------------------

    async def handle(self, link: SimLink) -> None:
        """Serve one connection until cancelled."""
        buf = bytearray()  # wrong DID or checksum: the instrument stays silent
        while True:
            buf += await link.read()
            for request in wire.split_requests(buf, self.did):
                await link.send(self.respond(request.command))

    def respond(self, command: int) -> bytes:
        """The response to one request, advancing the simulated time first."""
        now = self._clock()
        self._finish_acceleration(now)
        if command not in wire.COMMANDS:
            return wire.refusal()
        if command in NOT_WHILE_WARMING and self.warming(now):
            return wire.refusal(command)
        if self.steady_running:
            self._sample_steady(now)
        match command:
            case wire.STATUS:
                return wire.status(self.flags(now))
            case wire.REALTIME:
                return wire.realtime(*self._noisy(self.realtime(now)))
            case wire.STEADY_RESULT:
                return wire.steady_result(*self.steady_max)
            case wire.FREE_ACCEL_RESULT:
                return self._free_accel_reply()
            case wire.READ_CHECK_VALUE if self.mode is SimMode.LINEARITY:
                n = self.options.check_filter_n_pct * (1.0 + self._random.gauss(0, self._noise))
                return wire.check_value(round(min(100.0, max(0.0, n)), 1))
            case wire.LAST_FREE_ACCEL:
                return wire.last_free_accel(*self.last)
            case wire.FREE_ACCEL_CURVE:
                return wire.free_accel_curve(*self.curve)
        return self._act(command, now)

    def _act(self, command: int, now: float) -> bytes:
        """Commands that change the state; a framed NAK when the state forbids them."""
        if command in MODE_COMMANDS:
            self.mode, self.completed_in_mode = MODE_COMMANDS[command], 0
            self._accel, self.steady_running = None, False
        elif command == wire.FREE_ACCEL_TRIGGER:
            if self.mode is not SimMode.FREE_ACCEL or self._accel is not None:
                return wire.refusal(command)
            self._start_acceleration(now)
        elif command == wire.STEADY_START:
            if self.mode is not SimMode.STEADY:
                return wire.refusal(command)
            self.steady_running = True
            self.steady_max = SteadyMaxima(0.0, 0.0, 0, 0)
            self._sample_steady(now)
        elif command == wire.STEADY_STOP:
            self.steady_running = False
        elif command != wire.LINEARITY_ZERO:
            return wire.refusal(command)  # 0x0D outside linearity-check mode
        return wire.ack(command)

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
        points = [start + self._accel_s * (i + 0.5) / CURVE_POINTS for i in range(CURVE_POINTS)]
        samples = [self.realtime(t) for t in points]
        self._accel = None
        self.results.append(round(peak, 2))
        self.completed_in_mode += 1
        max_rpm = max(sample.engine_speed_rpm for sample in samples)
        self.last = (round(peak, 2), max_rpm)
        self.curve = (tuple(sample.n_pct for sample in samples), max_rpm)

    def _free_accel_reply(self) -> bytes:
        if self._accel is not None:
            return wire.free_accel_running()
        if self.completed_in_mode < RESULT_WINDOW:
            return wire.free_accel_none()
        values = tuple(self.results)
        return wire.free_accel_done(round(statistics.fmean(values), 2), values)

    # --- steady state and noise -------------------------------------------------------

    def _sample_steady(self, now: float) -> None:
        value, best = self._noisy(self.realtime(now)), self.steady_max
        self.steady_max = SteadyMaxima(
            max(best.k_m1, value.k_m1),
            max(best.n_pct, value.n_pct),
            max(best.gas_temp_c, value.gas_temp_c),
            max(best.oil_temp_c, value.oil_temp_c),
        )

    def _noisy(self, value: Realtime) -> Realtime:
        def jitter(x: float) -> float:
            return max(0.0, x * (1.0 + self._random.gauss(0, self._noise)))

        k = round(jitter(value.k_m1), 2)
        rpm = round(jitter(value.engine_speed_rpm))
        return Realtime(k, round(opacity_pct(k), 1), value.gas_temp_c, value.oil_temp_c, rpm)


def _factory(ctx: SimContext) -> Any:
    return Flb100Sim(ctx)


SIM = SimSpec(
    protocol="flb100",
    kind="stream",
    summary="FuLi FLB-100 opacimeter: modes, free acceleration from the scenario, linearity",
    factory=_factory,
)
