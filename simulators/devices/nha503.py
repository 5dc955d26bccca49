"""Simulated Nanhua NHA-503 family petrol gas analyser.

Speaks ``drivers.protocols.nha503`` in the device role; behaviour comes from the
scenario's ``vehicle.petrol`` section and ``timing`` (every duration × ``time_scale``):

- Warm-up: for ``timing.analyser_warmup_s`` the status is 2 (0x27 counts down, in
  scenario seconds); pump, zero, leak check, span and check commands are NAKed.
- Gas path: the bench sees ambient air (CO2 0.04 %, O2 20.9 %, λ shown as 9.99) unless
  the pump samples from the probe (0x04) and the scenario has a petrol engine: then the
  exhaust of the regime (``set_regime``, option ``regime`` or ``driver_script``) arrives
  after ``response_delay_s`` and rises first-order (τ = ``RISE_TAU_S``). λ at high idle
  is ``lambda_high``; at idle it is computed (Brettschneider). Engine speed and oil
  temperature do not pass the gas path. Noise: Gaussian, ``timing.noise`` relative,
  seeded by ``timing.seed``.
- Actions (0x08 zero, 0x07 leak check, 0x0A span calibration, 0x0C gas check): the first
  command starts one; each repeat answers 0x05 (span/check: with the bench readings)
  until its ``ACTIONS`` time has passed, then 0x00 or 0x01, which ends it. Another action
  meanwhile is NAKed. Zero draws ambient air; span/check gas comes from the bottle (HC =
  C3H8 × PEF). Options ``leak`` and ``zero_fail`` make those fail, ``low_flow`` cuts the
  pumped flow indicator to a fifth (a clogged filter); span/check fail when
  no gas values were written.
- Two-phase commands take their parameter block within ``PARAMETER_TIMEOUT_S``; a gas
  block with a bad checksum is answered 0x01. Unknown command bytes: NAK.
- 0x88: the two-speed-idle result assembled from the scenario (zeros without a petrol
  section). Option ``water_trap_full`` sets the 0x2C flag.
- On the dyno (a dyno simulator on the same lane, the scripted driver at the wheel):
  the engine speed is the plant's, and the probe sees the scenario's exhaust for the
  driver's phase (``petrol.loaded``: ASM 5025 / 2540, VMAS) or, for a diesel at full
  throttle, NO per ``diesel.lug_down`` (``simulators.devices.loaded_exhaust``).
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from drivers.errors import ChecksumError, FrameError
from drivers.framing import NEED_DATA
from drivers.protocols import nha503 as nha
from drivers.protocols.nha503 import (
    NAK,
    AnalyserStatus,
    Command,
    GasBlock,
    IdleBlock,
    Reply,
    ResultCode,
)
from simulators.base import SimContext, SimSpec
from simulators.devices.engine_script import DriverScript, DriverScriptOptions, EngineRegime
from simulators.devices.loaded_exhaust import (
    DIESEL_CO2_PCT,
    DIESEL_CO_PCT,
    DIESEL_HC_PPM,
    DIESEL_O2_PCT,
    engine_on_rollers,
    lug_down_full_load,
    petrol_loaded_gas,
)
from simulators.endpoint import SimLink
from simulators.scenario import PetrolEngine

RISE_TAU_S: Final = 1.5  # first-order time constant of the bench (T90 ≈ 3.5 s)
#: action -> (duration in scenario seconds, status byte while it runs)
ACTIONS: Final = {
    Command.ZERO: (5.0, AnalyserStatus.ZEROING),
    Command.LEAK_CHECK: (8.0, AnalyserStatus.LEAK_CHECK),
    Command.SPAN_CALIBRATE: (10.0, AnalyserStatus.CALIBRATING),
    Command.GAS_CHECK: (10.0, AnalyserStatus.CALIBRATING),
}
PARAMETER_TIMEOUT_S: Final = 0.5  # the device forgets a two-phase command after this
LAMBDA_MAX: Final = 9.99  # display limit; shown for air
AMBIENT_TEMP_C: Final = 20.0
AMBIENT: Final = nha.Ambient(AMBIENT_TEMP_C, 101.3, 50.0)  # °C, kPa, %RH of the simulated room
FLOW_PUMPING: Final = 100  # raw flow indicator while the pump runs (unit undocumented)
WATER_TRAP_BIT: Final = 0x0040
NO_RESULT: Final = IdleBlock(0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0)  # 0x88 without a petrol engine


class Flow(enum.IntEnum):
    """Where the pump draws from, by the command that selects it."""

    OFF = Command.PUMP_OFF
    PROBE = Command.PUMP_ON
    AMBIENT = Command.AMBIENT_AIR
    BACKFLUSH = Command.BACKFLUSH


_FLOW_CODES: Final[frozenset[int]] = frozenset(Flow)
#: gas-writing command -> the action that uses that gas
_BOTTLE_FOR: Final = {
    Command.WRITE_SPAN_GAS: Command.SPAN_CALIBRATE,
    Command.WRITE_CHECK_GAS: Command.GAS_CHECK,
}


class Nha503SimOptions(BaseModel):
    """Options of the simulator (``SimContext.options``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regime: EngineRegime = EngineRegime.IDLE
    driver_script: DriverScriptOptions | None = Field(default=None, description="TSI driver")
    leak: bool = Field(default=False, description="the leak check finds a leak")
    zero_fail: bool = Field(default=False, description="zeroing fails")
    low_flow: bool = Field(default=False, description="a clogged filter: the pump draws little")
    water_trap_full: bool = False
    pef: float = Field(default=0.52, gt=0, lt=1)


class Gases(NamedTuple):
    """What the bench sees."""

    hc_ppm: float
    co_pct: float
    co2_pct: float
    o2_pct: float
    no_ppm: float
    lambda_: float

    def towards(self, other: Gases, weight: float) -> Gases:
        """The mix ``weight`` of the way from this to ``other``."""
        return Gases(*(a + (b - a) * weight for a, b in zip(self, other, strict=True)))


AIR: Final = Gases(0.0, 0.0, 0.04, 20.9, 0.0, LAMBDA_MAX)


def brettschneider(gases: Gases) -> float:
    """λ from the gas concentrations (Brettschneider, petrol H/C 1.7261, O/C 0.0176)."""
    hcv, ocv, carbons = 1.7261, 0.0176, 6.0  # HC is read as n-hexane: six carbons
    co, co2, o2, hc = gases.co_pct, gases.co2_pct, gases.o2_pct, gases.hc_ppm * 1e-4
    water_gas = 3.5 / (3.5 + co / co2) if co2 > 0 else 1.0
    numerator = co2 + co / 2 + o2 + (hcv / 4 * water_gas - ocv / 2) * (co2 + co)
    denominator = (1 + hcv / 4 - ocv / 2) * (co2 + co + carbons * hc)
    return min(LAMBDA_MAX, numerator / denominator) if denominator > 0 else LAMBDA_MAX


def exhaust(petrol: PetrolEngine, regime: EngineRegime) -> Gases:
    """The engine's exhaust at ``regime``."""
    if regime is EngineRegime.HIGH_IDLE:
        hc, co, lam = petrol.hc_high_ppm, petrol.co_high_pct, petrol.lambda_high
        return Gases(hc, co, petrol.co2_pct, petrol.o2_pct, petrol.nox_ppm, lam)
    idle = Gases(petrol.hc_idle_ppm, petrol.co_idle_pct, petrol.co2_pct, petrol.o2_pct, 0, 0)
    return idle._replace(no_ppm=petrol.nox_ppm, lambda_=brettschneider(idle))


def bottle(block: GasBlock, pef: float) -> Gases:
    """A span or check gas (in N2) as the bench reads it: propane × PEF as hexane."""
    gases = Gases(block.c3h8_ppm * pef, block.co_pct_vol, block.co2_pct_vol, 0.0, 0, 0)
    return gases._replace(no_ppm=block.no_ppm, lambda_=brettschneider(gases))


class GasPath:
    """First-order response of the bench to a change at the inlet, after a dead time."""

    def __init__(self, start: Gases, tau_s: float) -> None:
        self._from = self._to = start
        self._since = self._delay = 0.0
        self._tau = max(tau_s, 1e-6)

    def at(self, t: float) -> Gases:
        """What the bench reads at ``t``."""
        elapsed = t - self._since - self._delay
        if elapsed <= 0:
            return self._from
        return self._from.towards(self._to, 1.0 - math.exp(-elapsed / self._tau))

    def retarget(self, t: float, target: Gases, delay_s: float) -> None:
        """From ``t`` on, ``target`` enters the sample line ``delay_s`` before the bench."""
        if target != self._to:
            self._from, self._to, self._since, self._delay = self.at(t), target, t, delay_s


@dataclass(slots=True)
class Action:
    """A running zero, leak check, span calibration or gas check."""

    command: Command
    ends: float
    outcome: ResultCode


class Nha503Sim:
    """The simulated analyser: one connection at a time, state kept across connections."""

    nak: bytes = bytes((NAK,))

    def __init__(self, ctx: SimContext, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = Nha503SimOptions.model_validate(ctx.options)
        self.petrol = ctx.scenario.vehicle.petrol
        self.diesel = ctx.scenario.vehicle.diesel
        self.position = ctx.position
        self._timing = ctx.scenario.timing
        self._scale = self._timing.time_scale
        self._random = random.Random(self._timing.seed)
        self._clock = clock
        self.regime = self.options.regime
        self._script = DriverScript(self.options.driver_script, self._scale)
        self.leak = self.options.leak
        self.low_flow = self.options.low_flow
        self.flow = Flow.OFF
        self.action: Action | None = None
        self.bottles: dict[Command, GasBlock] = {}  # span/check gas by the action using it
        self.sensor_references: dict[Command, float] = {}
        self.settings: list[Command] = []  # plain acknowledged commands, in order
        self._writing: Command | None = None  # two-phase command awaiting its block
        self._ext_status = WATER_TRAP_BIT if self.options.water_trap_full else 0
        self._warm_until = clock() + self._timing.analyser_warmup_s * self._scale
        self._path = GasPath(AIR, RISE_TAU_S * self._scale)

    # --- use cases (tests, tools) -----------------------------------------------------

    def set_regime(self, regime: EngineRegime) -> None:
        """The inspector holds the engine at idle or high idle."""
        self.regime = regime
        self._retarget(self._clock())

    def status(self) -> AnalyserStatus:
        """The status byte the analyser would send now."""
        now = self._clock()
        if now < self._warm_until:
            return AnalyserStatus.WARMING_UP
        if self.action is not None and now < self.action.ends:
            return ACTIONS[self.action.command][1]
        if self.flow is Flow.BACKFLUSH:
            return AnalyserStatus.BACKFLUSH
        return AnalyserStatus.READY if self.flow is Flow.OFF else AnalyserStatus.MEASURING

    # --- service ----------------------------------------------------------------------

    async def handle(self, link: SimLink) -> None:
        """Serve one connection until cancelled."""
        decoder = nha.RequestDecoder()
        while True:
            wait = PARAMETER_TIMEOUT_S if decoder.awaiting_parameters else None
            try:
                async with asyncio.timeout(wait):
                    data = await link.read()
            except TimeoutError:
                decoder.cancel_parameters()
                continue
            decoder.feed(data)
            for reply in self._answers(decoder):
                await link.send(nha.encode_reply(reply))

    def _answers(self, decoder: nha.RequestDecoder) -> list[Reply]:
        replies: list[Reply] = []
        while True:
            try:
                request = decoder.next_message()
            except ChecksumError:
                replies.append(nha.Result(ResultCode.FAILED))  # gas block checksum
                continue
            except FrameError:
                replies.append(nha.Nak())  # unknown command byte
                continue
            if request is NEED_DATA:
                return replies
            replies.append(self._respond(request, decoder))

    def _respond(self, request: nha.Request, decoder: nha.RequestDecoder) -> Reply:
        now = self._clock()
        if change := self._script.change(now, self.regime):  # the driver moved the pedal
            self.regime, since = change
            self._retarget(since)
        elif (engine := engine_on_rollers(self.position)) is not None:
            # the driver's step on the dyno changed the exhaust when it began
            since = engine.phase_since if engine.phase_since is not None else now
            self._retarget(min(now, since))
        if isinstance(request, nha.CommandRequest):
            return self._command(request.command, now, decoder)
        if isinstance(request, GasBlock) and self._writing in _BOTTLE_FOR:
            self.bottles[_BOTTLE_FOR[self._writing]] = request
        elif isinstance(request, nha.ValueBlock) and self._writing is not None:
            self.sensor_references[self._writing] = request.value
        self._writing = None
        return nha.Result(ResultCode.OK)

    def _command(self, command: Command, now: float, decoder: nha.RequestDecoder) -> Reply:
        reads: dict[Command, Callable[[float], Reply]] = {
            Command.READ_DATA: self._main_data,
            Command.READ_DATA_OLD: self._main_data,
            Command.READ_DATA_NEW: lambda t: self._main_data(t, self._ext_status),
            Command.READ_AMBIENT: lambda _t: AMBIENT,
            Command.READ_STATUS: lambda _t: nha.Status(self.status()),
            Command.READ_WARMUP: self._warmup_left,
            Command.READ_PEF: lambda _t: nha.Pef(self.options.pef),
            Command.READ_TSI_RESULT: lambda _t: self._tsi_result(),
        }
        if command in reads:
            return reads[command](now)
        warming = now < self._warm_until
        if command in ACTIONS:
            return nha.Nak() if warming else self._action_step(command, now)
        if nha.COMMANDS[command].parameters is not nha.ParameterKind.NONE:
            decoder.expect_parameters(command)
            self._writing = command
        elif command in _FLOW_CODES:
            if warming:
                return nha.Nak()
            self._script.on_flow(Flow(command) is Flow.PROBE, self.flow is Flow.PROBE, now)
            self.flow = Flow(command)
            self._retarget(now)
        else:
            self.settings.append(command)
        return nha.Ack()

    # --- actions ----------------------------------------------------------------------

    def _action_step(self, command: Command, now: float) -> Reply:
        action = self.action
        if action is None:
            ends = now + ACTIONS[command][0] * self._scale
            self.action = Action(command, ends, self._outcome(command))
            self._retarget(now)
            return self._in_progress(command, now)
        if action.command is not command:
            return nha.Nak()  # busy with another action
        if now < action.ends:
            return self._in_progress(command, now)
        self.action = None
        self._retarget(now)
        return nha.Result(action.outcome)

    def _outcome(self, command: Command) -> ResultCode:
        failed = {Command.ZERO: self.options.zero_fail, Command.LEAK_CHECK: self.leak}.get(
            command, command not in self.bottles
        )
        return ResultCode.FAILED if failed else ResultCode.OK

    def _in_progress(self, command: Command, now: float) -> Reply:
        if command not in (Command.SPAN_CALIBRATE, Command.GAS_CHECK):
            return nha.Result(ResultCode.IN_PROGRESS)
        g = self._bench(now)
        return nha.CalibrationProgress(
            round(g.hc_ppm), g.co_pct, g.co2_pct, g.o2_pct, round(g.no_ppm), self.options.pef
        )

    # --- gas path ---------------------------------------------------------------------

    def _inlet(self) -> tuple[Gases, float]:
        """What enters the sample line now, and its dead time to the bench."""
        action = self.action
        if action is not None and action.command in self.bottles:
            return bottle(self.bottles[action.command], self.options.pef), 0.0
        if action is None and self.flow is Flow.PROBE:
            loaded = self._loaded_exhaust()
            if loaded is not None:
                return (
                    loaded,
                    0.0 if self.petrol is None else self.petrol.response_delay_s * self._scale,
                )
            if self.petrol is not None:
                delay = self.petrol.response_delay_s * self._scale
                return exhaust(self.petrol, self.regime), delay
        return AIR, 0.0

    def _loaded_exhaust(self) -> Gases | None:
        """The exhaust of the car driven on the lane's dyno, when the scenario gives it."""
        engine = engine_on_rollers(self.position)
        gas = petrol_loaded_gas(self.petrol, engine)
        if gas is not None:
            g = Gases(gas.hc_ppm, gas.co_pct, gas.co2_pct, gas.o2_pct, gas.no_ppm, 0.0)
            return g._replace(lambda_=brettschneider(g))
        full = lug_down_full_load(self.diesel, engine)
        if full is not None:
            g = Gases(DIESEL_HC_PPM, DIESEL_CO_PCT, DIESEL_CO2_PCT, DIESEL_O2_PCT, full[1], 0.0)
            return g._replace(lambda_=brettschneider(g))
        return None

    def _retarget(self, now: float) -> None:
        target, delay = self._inlet()
        self._path.retarget(now, target, delay)

    def _bench(self, now: float) -> Gases:
        """Noisy bench readings at ``now``."""
        return Gases(*(self._noisy(value) for value in self._path.at(now)))

    def _noisy(self, value: float) -> float:
        return value * (1.0 + self._random.gauss(0.0, self._timing.noise))

    def _engine(self) -> tuple[int, float]:
        """Engine speed and oil temperature (no engine: 0 r/min, probe at ambient)."""
        on_rollers = engine_on_rollers(self.position)
        if on_rollers is not None:
            oil = self.petrol.oil_temp_c if self.petrol is not None else AMBIENT_TEMP_C
            return round(self._noisy(on_rollers.engine_rpm)), oil
        if self.petrol is None:
            return 0, AMBIENT_TEMP_C
        high = self.regime is EngineRegime.HIGH_IDLE
        rpm = self.petrol.high_idle_rpm if high else self.petrol.idle_rpm
        return round(self._noisy(rpm)), self.petrol.oil_temp_c

    def _main_data(self, now: float, ext_status: int | None = None) -> nha.MainData:
        g = self._bench(now)
        rpm, oil = self._engine()
        flow = 0 if self.flow is Flow.OFF else FLOW_PUMPING
        if self.low_flow:
            flow //= 5
        lam = min(g.lambda_, LAMBDA_MAX)
        return nha.MainData(
            round(g.hc_ppm), g.co_pct, g.co2_pct, g.o2_pct, round(g.no_ppm),
            rpm, oil, flow, 0, lam, ext_status,
        )  # fmt: skip

    def _warmup_left(self, now: float) -> nha.WarmupTime:
        left = max(0.0, self._warm_until - now) / self._scale
        return nha.WarmupTime(math.ceil(left))

    def _tsi_result(self) -> nha.TwoSpeedIdleResult:
        petrol = self.petrol
        if petrol is None:
            return nha.TwoSpeedIdleResult(NO_RESULT, NO_RESULT)
        return nha.TwoSpeedIdleResult(
            _idle_block(petrol, EngineRegime.HIGH_IDLE, petrol.high_idle_rpm),
            _idle_block(petrol, EngineRegime.IDLE, petrol.idle_rpm),
        )


def _idle_block(petrol: PetrolEngine, regime: EngineRegime, rpm: float) -> IdleBlock:
    """The stored two-speed-idle values at ``regime``: the scenario's own numbers."""
    g = exhaust(petrol, regime)
    return IdleBlock(
        round(g.hc_ppm), g.co_pct, g.co2_pct, g.o2_pct, round(g.no_ppm),
        round(rpm), petrol.oil_temp_c, round(g.lambda_, 2),
    )  # fmt: skip


def _factory(ctx: SimContext) -> Any:
    return Nha503Sim(ctx)


SIM = SimSpec(
    protocol="nha503",
    kind="stream",
    summary="Nanhua NHA-503 gas analyser: warm-up, gas delay and rise, zero/leak/span, TSI",
    factory=_factory,
)
