"""A car on the rollers of a chassis dynamometer: the physics the dyno simulators share.

``RollerPlant`` integrates the speed of the roller surface in scenario time (``advance``
steps ``STEP_S`` up to the clock's ``now / time_scale``)::

    (M_base + m_wheels) · dv/dt = F_engine + F_motor − F_brake − F_PAU − F_parasitic − F_tyre

- ``F_parasitic`` = A + B·v + C·v² (``scenario.dyno.parasitic``), ``F_tyre`` the car's tyre
  losses on the rollers (``powertrain.roller_loss_n``); both only oppose motion.
- The PAU applies the commanded control (``command``): constant force, constant power
  (F = P / v; below ``MIN_POWER_SPEED_KMH`` the force falls linearly to 0 at standstill,
  so a car can pull away under an ASM load), constant speed (a PI controller that
  brakes the rollers down to the target: an eddy-current PAU can only brake), PWM duty
  (a share of ``max_force_n``) or nothing; its force follows with a first-order lag
  ``pau_tau_s``. Road load (``command_road_load``, the NHC-03's 'Q'): the PAU makes the
  rollers move as the car would on the road, F = A + B·v + C·v² + (I − M_base)·dv/dt, so
  the car feels its reference mass I (an ideal controller, no lag; never negative).
  What the dyno reports as force is the PAU's force; power is F·v.
- The lift up engages the roller brake (``LIFT_BRAKE_N``); it cannot go up while the
  rollers turn (``lift`` returns False). The motor drives the rollers up to
  ``motor_speed_kmh`` (coast-down checks run without a car).
- The car is on the rollers while the lift is down and the scenario has a ``driver``:
  the ``ScriptedDriver`` program (``DriverRun``) sets throttle and brake from its target
  speed with feed-forward plus PI; full throttle gives ``F_max(v) = P(v) · 3.6 / v``
  from the powertrain's wheel-power curve (``Powertrain``).

The plant also tells the gas, smoke and flow simulators of the same lane what the engine
does (``EngineState``): they find it with ``plant_of(position)`` (``LanePosition.shared``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from simulators.base import LanePosition
from simulators.devices.drive_cycles import CYCLES, accel_at, speed_at
from simulators.scenario import DriveStep, Powertrain, Scenario, ScriptedDriver

STEP_S: Final = 0.05  # integration step, scenario seconds
KMH: Final = 3.6  # km/h per m/s
MIN_POWER_SPEED_KMH: Final = 10.0  # constant power from this speed, less below
LIFT_BRAKE_N: Final = 6000.0  # roller brake while the lift is up
MOVING_KMH: Final = 1.0  # the lift refuses to rise above this speed
HOLD_ACCEL_KMH_S: Final = 5.0  # how briskly the driver reaches a hold speed
SPEED_KP_N: Final = 500.0  # PAU speed control: N per km/h of overspeed
SPEED_KI_N: Final = 1500.0  # N per km/h·s
DRIVER_KP_S: Final = 1.2  # driver: corrects a speed error within about 1 s
DRIVER_KI_S2: Final = 0.4
ENGINE_DRAG_N: Final = 40.0  # engine braking with the throttle shut
SHARED_KEY: Final = "rollers"

PauMode = Literal["off", "speed", "force", "power", "pwm", "road_load"]


def full_throttle_power_kw(pt: Powertrain, speed_kmh: float) -> float:
    """Wheel power at full throttle and roller speed ``speed_kmh`` (the lug-down curve)."""
    v, vm, vg = speed_kmh, pt.vel_max_hp_kmh, pt.governed_speed_kmh
    if v <= 0 or v >= vg:
        return 0.0
    if v <= vm:
        r = v / vm
        return pt.max_wheel_power_kw * r * (2 - r)
    return pt.max_wheel_power_kw * (1 - ((v - vm) / (vg - vm)) ** 2)


def full_throttle_force_n(pt: Powertrain, speed_kmh: float) -> float:
    """Tractive force at full throttle (finite at standstill)."""
    v, vm = speed_kmh, pt.vel_max_hp_kmh
    if v <= vm:
        return pt.max_wheel_power_kw * KMH * 1000 * (2 - max(v, 0.0) / vm) / vm
    return full_throttle_power_kw(pt, v) * KMH * 1000 / v


@dataclass(frozen=True, slots=True)
class EngineState:
    """What the engine of the car on the rollers does now (for the gas, smoke, flow sims)."""

    on_rollers: bool
    speed_kmh: float
    engine_rpm: float
    wheel_power_kw: float
    throttle: float
    phase: str | None  # label of the driver's step (asm5025, vmas, lug_down...)
    #: roller speed over VelMaxHP (lug-down points 1.0 and 0.8)
    vel_ratio: float
    #: clock time (the simulators' clock, not scenario time) the driver's step began
    phase_since: float | None = None


class DriverRun:
    """The scripted driver's program, stepped in scenario time by the plant."""

    def __init__(self, spec: ScriptedDriver, seed: int | None) -> None:
        self.spec = spec
        self._steps = spec.steps()
        self._random = random.Random(seed)
        self.started: float | None = None
        self.index = 0
        self.step_started = 0.0
        self._hold_from = 0.0  # speed when a hold step began
        self._noise = 0.0
        self.finished = False

    @property
    def step(self) -> DriveStep | None:
        """The step running now (None before the start and after the end)."""
        if self.started is None or self.finished:
            return None
        return self._steps[self.index]

    def on_event(self, event: str, t: float, speed_kmh: float) -> None:
        """Host actions the driver reacts to (lift, control mode, set-point changes)."""
        if event == "lift_up":
            self.started, self.finished, self.index = None, False, 0
            return
        if self.started is None and event == self.spec.start_on:
            self._begin(t + self.spec.reaction_s, speed_kmh)
            return
        step = self.step
        if step is None:
            return
        if (event == "load_change" and step.until_load_change) or (
            event == "control_off" and step.until_control_off
        ):
            self._next(t + self.spec.reaction_s, speed_kmh)

    def _begin(self, t: float, speed_kmh: float) -> None:
        self.started, self.index, self.finished = t, 0, False
        self.step_started, self._hold_from = t, speed_kmh

    def _next(self, t: float, speed_kmh: float) -> None:
        self.index += 1
        self.step_started, self._hold_from = t, speed_kmh
        if self.index >= len(self._steps):
            self.finished = True

    def target(self, t: float, speed_kmh: float) -> tuple[float | None, float]:
        """(target speed km/h or None for full throttle, target accel km/h/s) at ``t``."""
        if self.started is not None and t < self.step_started:
            return 0.0 if self.index == 0 else self._hold_from, 0.0  # still reacting
        step = self.step
        if step is not None and t - self.step_started >= step.for_s:
            self._next(t, speed_kmh)
            step = self.step
        if step is None:
            return 0.0, 0.0
        if step.full_throttle:
            return None, 0.0
        elapsed = t - self.step_started
        if step.trace is not None:
            cycle = CYCLES[step.trace]
            wanted, accel = speed_at(cycle, elapsed), accel_at(cycle, elapsed)
        else:
            hold = step.hold_kmh or 0.0
            ramp = HOLD_ACCEL_KMH_S * elapsed
            up = hold >= self._hold_from
            wanted = min(hold, self._hold_from + ramp) if up else max(hold, self._hold_from - ramp)
            accel = 0.0 if wanted == hold else (HOLD_ACCEL_KMH_S if up else -HOLD_ACCEL_KMH_S)
        return max(0.0, wanted + self._error(t) + self._wobble()), accel

    def _error(self, t: float) -> float:
        assert self.started is not None
        since = t - self.started
        return sum(
            d.speed_error_kmh for d in self.spec.deviations if d.at_s <= since < d.at_s + d.for_s
        )

    def _wobble(self) -> float:
        sigma = self.spec.speed_noise_kmh
        if sigma:
            self._noise += (self._random.gauss(0.0, sigma) - self._noise) * 0.02
        return self._noise


class RollerPlant:
    """Rollers, PAU, motor, lift and the driven car (see the module docstring)."""

    def __init__(self, scenario: Scenario, clock: Callable[[], float] = time.monotonic) -> None:
        self.scenario = scenario
        self.rig = scenario.dyno
        self.powertrain = scenario.vehicle.powertrain
        self._clock = clock
        self._scale = scenario.timing.time_scale
        self._origin = clock()
        self.t = 0.0
        self.speed_kmh = 0.0
        self.pau_force_n = 0.0
        self.engine_force_n = 0.0
        self.brake_force_n = 0.0
        self.throttle = 0.0
        self.mode: PauMode = "off"
        #: device-side road load (NHC-03 'Q'): A N, B N/(km/h), C N/(km/h)², inertia kg
        self.road_load: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self.target = 0.0
        self.mode_since: float | None = None  # scenario time the running mode began
        self.lifted = True
        self.motor_on = False
        self._speed_integral = 0.0
        self._driver_integral = 0.0
        self.driver = DriverRun(scenario.driver, scenario.timing.seed) if scenario.driver else None
        if (
            self.driver is not None
            and scenario.driver
            and scenario.driver.start_on == "immediately"
        ):
            self.driver.on_event("immediately", 0.0, 0.0)

    # --- time -------------------------------------------------------------------------

    def scenario_time(self, now: float | None = None) -> float:
        """Scenario seconds since the plant started, at ``now`` (clock time)."""
        return ((self._clock() if now is None else now) - self._origin) / self._scale

    def clock_time(self, scenario_t: float) -> float:
        """The clock time of scenario time ``scenario_t``."""
        return self._origin + scenario_t * self._scale

    def advance(self, now: float | None = None) -> None:
        """Integrate up to ``now`` (clock time; default: the clock's now)."""
        until = self.scenario_time(now)
        while self.t + STEP_S <= until:
            self._step(STEP_S)

    # --- commands (the dyno simulators) -----------------------------------------------

    def command(self, mode: PauMode, target: float = 0.0) -> None:
        """Set the PAU control (and its target: km/h, N, kW or duty %)."""
        self.advance()
        driver = self.driver
        was = self.mode
        if mode != was:
            self._speed_integral = self.pau_force_n if mode == "speed" else 0.0
            self.mode_since = None if mode == "off" else self.t
        if driver is not None:
            if mode == "off" and was != "off":
                driver.on_event("control_off", self.t, self.speed_kmh)
            elif mode != "off" and was == "off":
                driver.on_event("control", self.t, self.speed_kmh)
            elif mode != "off" and (mode != was or target != self.target):
                driver.on_event("load_change", self.t, self.speed_kmh)
        self.mode, self.target = mode, target

    def command_road_load(self, a_n: float, b: float, c: float, inertia_kg: float) -> None:
        """Simulate the road load A + B·v + C·v² and the inertia ``inertia_kg`` (device side)."""
        self.advance()
        self.road_load = (a_n, b, c, inertia_kg)
        self.command("road_load", a_n)

    def lift(self, up: bool) -> bool:
        """Move the lift; False (refused) when asked up while the rollers turn."""
        self.advance()
        if up and self.speed_kmh > MOVING_KMH:
            return False
        if up != self.lifted and self.driver is not None:
            self.driver.on_event("lift_up" if up else "lift_down", self.t, self.speed_kmh)
        self.lifted = up
        return True

    def motor(self, on: bool) -> None:
        """Start or stop the roller drive motor."""
        self.advance()
        self.motor_on = on

    # --- what the simulators read -----------------------------------------------------

    @property
    def car_on_rollers(self) -> bool:
        """Whether a driven car sits on the rollers."""
        return self.driver is not None and not self.lifted

    @property
    def power_kw(self) -> float:
        """Power absorbed by the PAU."""
        return self.pau_force_n * self.speed_kmh / KMH / 1000

    def engine(self) -> EngineState:
        """The engine now (advanced to the clock's now)."""
        self.advance()
        pt = self.powertrain
        on = self.car_on_rollers
        rpm = max(pt.idle_rpm, pt.rpm_per_kmh * self.speed_kmh) if on else pt.idle_rpm
        wheel = max(0.0, self.engine_force_n) * self.speed_kmh / KMH / 1000
        driver = self.driver
        step = driver.step if driver is not None and on else None
        since = None if step is None or driver is None else self.clock_time(driver.step_started)
        return EngineState(
            on_rollers=on,
            speed_kmh=self.speed_kmh,
            engine_rpm=rpm,
            wheel_power_kw=wheel,
            throttle=self.throttle if on else 0.0,
            phase=step.phase if step is not None else None,
            vel_ratio=self.speed_kmh / pt.vel_max_hp_kmh,
            phase_since=since,
        )

    # --- physics ----------------------------------------------------------------------

    def _mass(self) -> float:
        wheels = self.powertrain.wheel_inertia_kg if self.car_on_rollers else 0.0
        return self.rig.base_inertia_kg + wheels

    def _extra_inertia(self) -> float:
        """Mass the PAU simulates beyond the base inertia (road-load mode only)."""
        if self.mode != "road_load":
            return 0.0
        return max(0.0, self.road_load[3] - self.rig.base_inertia_kg)

    def _road_force(self, v: float) -> float:
        a, b, c, _ = self.road_load
        return a + b * v + c * v * v

    def _losses(self, v: float) -> float:
        p = self.rig.parasitic
        loss = p.a_n + p.b_n_per_kmh * v + p.c_n_per_kmh2 * v * v
        if self.car_on_rollers:
            loss += self.powertrain.roller_loss_n
        if self.lifted:
            loss += LIFT_BRAKE_N
        return loss

    def _pau_wanted(self, v: float, dt: float) -> float:
        mode, target, limit = self.mode, self.target, self.rig.max_force_n
        if mode == "force":
            wanted = target
        elif mode == "power":
            low = MIN_POWER_SPEED_KMH
            wanted = target * 1000 * KMH / v if v >= low else target * 1000 * KMH * v / (low * low)
        elif mode == "pwm":
            wanted = limit * target / 100
        elif mode == "speed":
            error = v - target
            self._speed_integral = min(
                limit, max(0.0, self._speed_integral + SPEED_KI_N * error * dt)
            )
            wanted = SPEED_KP_N * error + self._speed_integral
        else:
            wanted = 0.0
        return min(limit, max(0.0, wanted))

    def _drive(self, v: float, dt: float) -> None:
        """The driver's throttle and brake for this step."""
        self.engine_force_n = self.brake_force_n = self.throttle = 0.0
        driver = self.driver
        if driver is None or not self.car_on_rollers:
            return
        pt = self.powertrain
        wanted, accel = driver.target(self.t, v)
        f_max = full_throttle_force_n(pt, v)
        if wanted is None:  # full throttle
            self.throttle, self.engine_force_n = 1.0, f_max
            return
        error_ms = (wanted - v) / KMH
        self._driver_integral = max(
            -1.0, min(1.0, self._driver_integral + DRIVER_KI_S2 * error_ms * dt)
        )
        load = self._road_force(v) if self.mode == "road_load" else self.pau_force_n
        resist = load + self._losses(v) if v > 0.05 else 0.0
        mass = self._mass() + self._extra_inertia()
        needed = mass * (accel / KMH + DRIVER_KP_S * error_ms + self._driver_integral) + resist
        if wanted <= 0.0 and v < 0.5:
            needed = min(needed, 0.0)  # standing still at a red light: foot on the brake
        if needed >= 0:
            self.throttle = min(1.0, needed / f_max) if f_max > 0 else 0.0
            self.engine_force_n = self.throttle * f_max
        else:
            self.brake_force_n = min(pt.max_brake_n, -needed)

    def _road_load_pau(self, v: float, net_n: float) -> None:
        """PAU force that makes the rollers move as a car of the set inertia on the road.

        With extra mass m_x = I − base: F_PAU = RL(v) + m_x·a and (M + m_x)·a = net − RL(v),
        solved at once (an ideal controller, no lag); a PAU cannot drive: F_PAU ≥ 0.
        """
        if v <= 0.0 and net_n <= self._road_force(v):
            self.pau_force_n = 0.0
            return
        extra = self._extra_inertia()
        accel = (net_n - self._road_force(v)) / (self._mass() + extra)
        self.pau_force_n = min(self.rig.max_force_n, max(0.0, self._road_force(v) + extra * accel))

    def _step(self, dt: float) -> None:
        v = self.speed_kmh
        self._drive(v, dt)
        if self.mode != "road_load":
            lag = dt / (self.rig.pau_tau_s + dt)
            self.pau_force_n += (self._pau_wanted(v, dt) - self.pau_force_n) * lag
        motor = 0.0
        if self.motor_on:
            motor = self.rig.motor_force_n * min(1.0, max(0.0, (self.rig.motor_speed_kmh - v) / 2))
        drag = (
            ENGINE_DRAG_N if self.car_on_rollers and self.throttle == 0 and v > MOVING_KMH else 0.0
        )
        drive = self.engine_force_n + motor
        if self.mode == "road_load":
            self._road_load_pau(v, drive - self._losses(v) - self.brake_force_n - drag)
        oppose = self.pau_force_n + self._losses(v) + self.brake_force_n + drag
        if v <= 0.0 and drive <= oppose:
            self.speed_kmh = 0.0  # static: nothing to overcome friction
        else:
            accel = (drive - oppose) / self._mass()
            self.speed_kmh = max(0.0, v + accel * dt * KMH)
        self.t += dt


def plant_of(position: LanePosition) -> RollerPlant | None:
    """The lane's roller plant, if a dyno simulator runs on this lane."""
    plant = position.shared.get(SHARED_KEY)
    return plant if isinstance(plant, RollerPlant) else None


def plant_for(
    position: LanePosition, scenario: Scenario, clock: Callable[[], float]
) -> RollerPlant:
    """The lane's roller plant, created on first use (by the dyno simulator)."""
    plant = plant_of(position)
    if plant is None:
        plant = RollerPlant(scenario, clock)
        position.shared[SHARED_KEY] = plant
    return plant
