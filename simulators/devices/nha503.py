"""Simulated Nanhua NHA-503 family petrol gas analyser.

Builds and parses its bytes itself (``simulators.wire.nha503``, from protocols.md §1.1;
nothing of the driver's codec); behaviour comes from the
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
from simulators.wire import nha503 as wire
from simulators.wire.nha503 import GasBlock

RISE_TAU_S: Final = 1.5  # first-order time constant of the bench (T90 ≈ 3.5 s)
#: action -> (duration in scenario seconds, status byte while it runs)
ACTIONS: Final = {
    wire.ZERO: (5.0, wire.ZEROING),
    wire.LEAK_CHECK: (8.0, wire.STATUS_LEAK_CHECK),
    wire.SPAN_CALIBRATE: (10.0, wire.CALIBRATING),
    wire.GAS_CHECK: (10.0, wire.CALIBRATING),
}
PARAMETER_TIMEOUT_S: Final = 0.5  # the device forgets a two-phase command after this
LAMBDA_MAX: Final = 9.99  # display limit; shown for air
AMBIENT_TEMP_C: Final = 20.0
AMBIENT: Final = (AMBIENT_TEMP_C, 101.3, 50.0)  # °C, kPa, %RH of the simulated room
FLOW_PUMPING: Final = 100  # raw flow indicator while the pump runs (unit undocumented)
#: 0x88 without a petrol engine
NO_RESULT: Final = wire.IdleValues(wire.Gases(0, 0.0, 0.0, 0.0, 0), 0, 0.0, 0.0)


class Flow(enum.IntEnum):
    """Where the pump draws from, by the command that selects it."""

    OFF = wire.PUMP_OFF
    PROBE = wire.PUMP_ON
    AMBIENT = wire.AMBIENT_AIR
    BACKFLUSH = wire.BACKFLUSH


_FLOW_CODES: Final[frozenset[int]] = frozenset(Flow)
#: gas-writing command -> the action that uses that gas
_BOTTLE_FOR: Final = {
    wire.WRITE_SPAN_GAS: wire.SPAN_CALIBRATE,
    wire.WRITE_CHECK_GAS: wire.GAS_CHECK,
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

    command: int
    ends: float
    outcome: int  # the result byte it ends with


class Nha503Sim:
    """The simulated analyser: one connection at a time, state kept across connections."""

    nak: bytes = wire.byte(wire.NAK)

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
        self.bottles: dict[int, GasBlock] = {}  # span/check gas by the action using it
        self.sensor_references: dict[int, float] = {}
        self.settings: list[int] = []  # plain acknowledged commands, in order
        self._writing: int | None = None  # two-phase command awaiting its block
        self._ext_status = wire.WATER_TRAP_FULL if self.options.water_trap_full else 0
        self._warm_until = clock() + self._timing.analyser_warmup_s * self._scale
        self._path = GasPath(AIR, RISE_TAU_S * self._scale)

    # --- use cases (tests, tools) -----------------------------------------------------

    def set_regime(self, regime: EngineRegime) -> None:
        """The inspector holds the engine at idle or high idle."""
        self.regime = regime
        self._retarget(self._clock())

    def status(self) -> int:
        """The status byte the analyser would send now."""
        now = self._clock()
        if now < self._warm_until:
            return wire.WARMING_UP
        if self.action is not None and now < self.action.ends:
            return ACTIONS[self.action.command][1]
        if self.flow is Flow.BACKFLUSH:
            return wire.STATUS_BACKFLUSH
        return wire.READY if self.flow is Flow.OFF else wire.MEASURING

    # --- service ----------------------------------------------------------------------

    async def handle(self, link: SimLink) -> None:
        """Serve one connection until cancelled."""
        reader = wire.RequestReader()
        while True:
            wait = PARAMETER_TIMEOUT_S if reader.pending else None
            try:
                async with asyncio.timeout(wait):
                    data = await link.read()
            except TimeoutError:
                reader.cancel()
                continue
            reader.feed(data)
            for reply in self._answers(reader):
                await link.send(reply)

    def _answers(self, reader: wire.RequestReader) -> list[bytes]:
        replies: list[bytes] = []
        while (request := reader.next()) is not None:
            if isinstance(request, wire.BadGasBlock):
                replies.append(wire.byte(wire.FAILED))
            elif isinstance(request, wire.Command) and not request.known:
                replies.append(self.nak)
            else:
                replies.append(self._respond(request, reader))
        return replies

    def _respond(self, request: wire.Request, reader: wire.RequestReader) -> bytes:
        now = self._clock()
        if change := self._script.change(now, self.regime):  # the driver moved the pedal
            self.regime, since = change
            self._retarget(since)
        elif (engine := engine_on_rollers(self.position)) is not None:
            # the driver's step on the dyno changed the exhaust when it began
            since = engine.phase_since if engine.phase_since is not None else now
            self._retarget(min(now, since))
        if isinstance(request, wire.Command):
            return self._command(request.code, now, reader)
        if isinstance(request, GasBlock) and self._writing in _BOTTLE_FOR:
            self.bottles[_BOTTLE_FOR[self._writing]] = request
        elif isinstance(request, wire.Value) and self._writing is not None:
            self.sensor_references[self._writing] = request.value
        self._writing = None
        return wire.byte(wire.OK)

    def _command(self, command: int, now: float, reader: wire.RequestReader) -> bytes:
        reads: dict[int, Callable[[float], bytes]] = {
            wire.READ_DATA: self._main_data,
            wire.READ_DATA_OLD: self._main_data,
            wire.READ_DATA_NEW: lambda t: self._main_data(t, self._ext_status),
            wire.READ_AMBIENT: lambda _t: wire.ambient(*AMBIENT),
            wire.READ_STATUS: lambda _t: wire.byte(self.status()),
            wire.READ_WARMUP: self._warmup_left,
            wire.READ_PEF: lambda _t: wire.pef(self.options.pef),
            wire.READ_TSI_RESULT: lambda _t: self._tsi_result(),
        }
        if command in reads:
            return reads[command](now)
        warming = now < self._warm_until
        if command in ACTIONS:
            return self.nak if warming else self._action_step(command, now)
        if command in wire.PARAMETERS:
            reader.expect(command)
            self._writing = command
        elif command in _FLOW_CODES:
            if warming:
                return self.nak
            self._script.on_flow(Flow(command) is Flow.PROBE, self.flow is Flow.PROBE, now)
            self.flow = Flow(command)
            self._retarget(now)
        else:
            self.settings.append(command)
        return wire.byte(wire.ACK)

    # --- actions ----------------------------------------------------------------------

    def _action_step(self, command: int, now: float) -> bytes:
        action = self.action
        if action is None:
            ends = now + ACTIONS[command][0] * self._scale
            self.action = Action(command, ends, self._outcome(command))
            self._retarget(now)
            return self._in_progress(command, now)
        if action.command != command:
            return self.nak  # busy with another action
        if now < action.ends:
            return self._in_progress(command, now)
        self.action = None
        self._retarget(now)
        return wire.byte(action.outcome)

    def _outcome(self, command: int) -> int:
        failed = {wire.ZERO: self.options.zero_fail, wire.LEAK_CHECK: self.leak}.get(
            command, command not in self.bottles
        )
        return wire.FAILED if failed else wire.OK

    def _in_progress(self, command: int, now: float) -> bytes:
        if command not in (wire.SPAN_CALIBRATE, wire.GAS_CHECK):
            return wire.byte(wire.IN_PROGRESS)
        g = self._bench(now)
        gases = wire.Gases(round(g.hc_ppm), g.co_pct, g.co2_pct, g.o2_pct, round(g.no_ppm))
        return wire.progress(gases, self.options.pef)

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

    def _main_data(self, now: float, ext_status: int | None = None) -> bytes:
        g = self._bench(now)
        rpm, oil = self._engine()
        flow = 0 if self.flow is Flow.OFF else FLOW_PUMPING
        if self.low_flow:
            flow //= 5
        lam = min(g.lambda_, LAMBDA_MAX)
        gases = wire.Gases(round(g.hc_ppm), g.co_pct, g.co2_pct, g.o2_pct, round(g.no_ppm))
        return wire.main_data(gases, rpm, oil, flow, 0, lam, ext_status)

    def _warmup_left(self, now: float) -> bytes:
        left = max(0.0, self._warm_until - now) / self._scale
        return wire.warmup_left(math.ceil(left))

    def _tsi_result(self) -> bytes:
        petrol = self.petrol
        if petrol is None:
            return wire.tsi_result(NO_RESULT, NO_RESULT)
        return wire.tsi_result(
            _idle_block(petrol, EngineRegime.HIGH_IDLE, petrol.high_idle_rpm),
            _idle_block(petrol, EngineRegime.IDLE, petrol.idle_rpm),
        )


def _idle_block(petrol: PetrolEngine, regime: EngineRegime, rpm: float) -> wire.IdleValues:
    """The stored two-speed-idle values at ``regime``: the scenario's own numbers."""
    g = exhaust(petrol, regime)
    gases = wire.Gases(round(g.hc_ppm), g.co_pct, g.co2_pct, g.o2_pct, round(g.no_ppm))
    return wire.IdleValues(gases, round(rpm), petrol.oil_temp_c, round(g.lambda_, 2))


def _factory(ctx: SimContext) -> Any:
    return Nha503Sim(ctx)


SIM = SimSpec(
    protocol="nha503",
    kind="stream",
    summary="Nanhua NHA-503 gas analyser: warm-up, gas delay and rise, zero/leak/span, TSI",
    factory=_factory,
)
