"""What the simulated Modbus instruments do: scenario-driven state behind the register maps.

Each model answers three questions for ``simulators.devices.modbus_sim``: the current
value of every point (``values(now)``), what a named command does (``command``), and
what writing a read/write point does (``write``). ``command``/``write`` return a Modbus
exception code to refuse (6 = server device busy, 3 = illegal data value) or None.

Time is scenario time: real seconds since the action started divided by
``timing.time_scale``. Values are computed when read; the brake model samples its force
channels at ``timing.brake_sample_hz`` (scenario time) between reads, so its sample
counter, maxima and lock flags are those of a real sampled test. Noise is relative
(``timing.noise``) and seeded by ``timing.seed``.
"""

from __future__ import annotations

import random
from typing import Final, Protocol

from simulators.base import SimContext
from simulators.scenario import Axle, Lamp, Speedometer, WheelBrake
from simulators.wire.modbus_map import Value

#: Modbus exception codes a model refuses with
BUSY: Final = 0x06
ILLEGAL_VALUE: Final = 0x03


class InstrumentModel(Protocol):
    """The behaviour behind one register map."""

    def values(self, now: float) -> dict[str, Value]:
        """Every point's current value."""

    def command(self, name: str, now: float) -> int | None:
        """Run a named command; an exception code refuses it."""

    def write(self, name: str, value: Value, now: float) -> int | None:
        """Set a read/write point; an exception code refuses it."""


class _Base:
    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.timing = ctx.scenario.timing
        self.rng = random.Random(self.timing.seed)
        self.started: float | None = None

    def elapsed(self, now: float) -> float:
        """Scenario seconds since the action started (0 when idle)."""
        return 0.0 if self.started is None else (now - self.started) / self.timing.time_scale

    def noisy(self, value: float) -> float:
        """``value`` with relative Gaussian noise."""
        return value * (1 + self.timing.noise * self.rng.gauss(0.0, 1.0))


# brake tester ---------------------------------------------------------------------------
#: phase ends after start (scenario s): rollers spinning up, drag measured, braking tail
SPIN_UP_S: Final = 0.5
DRAG_END_S: Final = 1.5
BRAKE_TAIL_S: Final = 0.3
ROLLER_KMH: Final = 2.6  # typical roller surface speed of a car brake tester


class BrakeModel(_Base):
    """Roller brake tester: states 3 -> 4 -> 5 -> 6 on ``start_test``, forces ramp per wheel."""

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        self.lift_raised = True
        self.test_mode = 0
        self.timeout_s = 30.0
        self.state = 0
        self.axle: Axle = self._axle()  # the axle on the rollers when the test started
        self._reset()

    def _reset(self) -> None:
        self.samples = 0
        self.force = (0.0, 0.0)
        self.drag = (0.0, 0.0)
        self.peak = (0.0, 0.0)
        self.max_diff = 0.0
        self.locked = (False, False)
        self.result_read = False

    def _axle(self) -> Axle:
        axles = self.ctx.scenario.vehicle.axles
        return axles[self.ctx.position.axle_index % len(axles)]

    def command(self, name: str, now: float) -> int | None:
        """start_test, stop, lift_up, lift_down, zero."""
        running = 3 <= self.state <= 5
        if name == "stop":
            self.state, self.started, self.force = 0, None, (0.0, 0.0)
        elif running:
            return BUSY  # everything else waits for the test to end or be stopped
        elif name == "start_test":
            self._reset()
            self.axle, self.lift_raised = self._axle(), False
            self.state, self.started = 3, now
        elif name in ("lift_up", "lift_down"):
            self.lift_raised = name == "lift_up"
        return None  # zero: nothing to do on a simulated sensor at rest

    def write(self, name: str, value: Value, now: float) -> int | None:
        """axle_number moves the lane position; test_mode and test_timeout_s are kept."""
        if 3 <= self.state <= 5:
            return BUSY
        if name == "axle_number":
            if not 1 <= int(value) <= self.ctx.position.axle_count:
                return ILLEGAL_VALUE
            self.ctx.position.axle_index = int(value) - 1
        elif name == "test_mode":
            self.test_mode = int(value)
        elif name == "test_timeout_s":
            self.timeout_s = float(value)
        return None

    def values(self, now: float) -> dict[str, Value]:
        """Run the sampler up to ``now`` and report."""
        self._sample_until(self.elapsed(now))
        axle = self.axle if self.started is not None or self.state == 6 else self._axle()
        if self.state == 6 and not self.result_read:
            self.result_read = True  # the driver drives on to the next axle
            self.ctx.position.advance()
        return {
            "state": self.state,
            "load_left_kg": axle.load_left_kg,
            "load_right_kg": axle.load_right_kg,
            "force_left_dan": self.force[0],
            "force_right_dan": self.force[1],
            "drag_left_dan": self.drag[0],
            "drag_right_dan": self.drag[1],
            "max_force_left_dan": self.peak[0],
            "max_force_right_dan": self.peak[1],
            "max_diff_dan": self.max_diff,
            "roller_speed_kmh": ROLLER_KMH if 3 <= self.state <= 5 else 0.0,
            "left_locked": self.locked[0],
            "right_locked": self.locked[1],
            "left_sensor_fault": False,
            "right_sensor_fault": False,
            "lift_raised": self.lift_raised,
            "sample_counter": self.samples & 0xFFFF,
            "axle_number": self.ctx.position.axle_index + 1,
            "test_mode": self.test_mode,
            "test_timeout_s": self.timeout_s,
        }

    def _sample_until(self, t_end: float) -> None:
        hz = self.timing.brake_sample_hz
        while self.started is not None and 3 <= self.state <= 5 and self.samples / hz <= t_end:
            self._sample(self.samples / hz)
            self.samples += 1

    def _sample(self, t: float) -> None:
        left, right = self._targets()
        if t < SPIN_UP_S:
            self.state, self.force = 3, (0.0, 0.0)
        elif t < DRAG_END_S:
            self.state = 4
            self.force = (self.noisy(left.drag_force_dan), self.noisy(right.drag_force_dan))
            self.drag = self.force
        else:
            self.state = 5
            tb = t - DRAG_END_S
            self.force = (self._braking(left, tb, 0), self._braking(right, tb, 1))
            self.peak = (max(self.peak[0], self.force[0]), max(self.peak[1], self.force[1]))
            self.max_diff = max(self.max_diff, abs(self.force[0] - self.force[1]))
            if tb > max(b.delay_s + b.rise_time_s for b in (left, right)) + BRAKE_TAIL_S:
                self.state, self.started, self.force = 6, None, (0.0, 0.0)

    def _targets(self) -> tuple[WheelBrake, WheelBrake]:
        axle = self.axle
        if self.test_mode == 1:  # parking brake: the axle's hand-brake forces, same ramp
            return (
                axle.brake_left.model_copy(
                    update={"max_force_dan": axle.parking_force_left_dan or 1}
                ),
                axle.brake_right.model_copy(
                    update={"max_force_dan": axle.parking_force_right_dan or 1}
                ),
            )
        return axle.brake_left, axle.brake_right

    def _braking(self, brake: WheelBrake, tb: float, side: int) -> float:
        ramp = min(1.0, max(0.0, (tb - brake.delay_s) / brake.rise_time_s))
        if ramp >= 1.0 and brake.locks:
            self.locked = (True, self.locked[1]) if side == 0 else (self.locked[0], True)
        return self.noisy(
            brake.drag_force_dan + (brake.max_force_dan - brake.drag_force_dan) * ramp
        )


# speedometer tester ---------------------------------------------------------------------
LATCH_HOLD_S: Final = 0.5  # the driver holds the speed this long before pressing the button


class SpeedModel(_Base):
    """Speedometer tester: the rollers ramp to the actual speed at the indicated target."""

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        self.meter: Speedometer = ctx.scenario.vehicle.speedometer or Speedometer()
        self.lift_raised = True
        self.target_kmh = 40
        self.latched_kmh: float | None = None

    def command(self, name: str, now: float) -> int | None:
        """start_test, stop, lift_up, lift_down, latch."""
        if name == "start_test":
            self.started, self.latched_kmh, self.lift_raised = now, None, False
        elif name == "stop":
            self.started = None
        elif name == "latch":
            if self.started is None:
                return BUSY
            self.latched_kmh = self._speed(self.elapsed(now))
        elif self.started is not None:
            return BUSY  # no lift movement with the rollers turning
        else:
            self.lift_raised = name == "lift_up"
        return None

    def write(self, name: str, value: Value, now: float) -> int | None:
        """indicated_target_kmh: the dashboard speed the driver aims for."""
        if self.started is not None:
            return BUSY
        self.target_kmh = int(value)
        return None

    def _actual_target(self) -> float:
        return self.meter.actual_at_indicated_40_kmh * self.target_kmh / 40

    def _speed(self, t: float) -> float:
        return min(self.meter.ramp_kmh_per_s * t, self._actual_target())

    def values(self, now: float) -> dict[str, Value]:
        """Speed, latch and distance now."""
        t = self.elapsed(now)
        top = self._actual_target()
        reach = top / self.meter.ramp_kmh_per_s
        if self.started is not None and self.latched_kmh is None and t >= reach + LATCH_HOLD_S:
            self.latched_kmh = self.noisy(top)
        speed = self.noisy(self._speed(t)) if self.started is not None else 0.0
        km_s = (
            top * reach / 2 + top * (t - reach)
            if t > reach
            else self.meter.ramp_kmh_per_s * t * t / 2
        )
        latched = self.latched_kmh is not None
        state = 3 if latched else 2 if self.started is not None else 0 if self.lift_raised else 1
        error = (
            (self.target_kmh - self.latched_kmh) / self.latched_kmh * 100
            if self.latched_kmh
            else 0.0
        )
        return {
            "state": state,
            "speed_kmh": max(speed, 0.0),
            "latched_speed_kmh": self.latched_kmh or 0.0,
            "latched": latched,
            "lift_raised": self.lift_raised,
            "rollers_turning": self.started is not None,
            "distance_m": int(km_s / 3.6) if self.started is not None else 0,
            "indicated_error_pct": error,
            "sample_counter": int(t * 10) & 0xFFFF,  # the display updates at 10 Hz
            "indicated_target_kmh": self.target_kmh,
        }


# headlamp tester ------------------------------------------------------------------------
SEARCH_S: Final = 1.0  # finding the first lamp
PER_LAMP_S: Final = 1.5  # measuring one lamp, both beams
SLOTS: Final = ("left_outer", "right_outer", "left_inner", "right_inner")


class HeadlampModel(_Base):
    """Headlamp tester: search, then measure the lamps one by one, filling their registers."""

    def __init__(self, ctx: SimContext) -> None:
        super().__init__(ctx)
        lamps = ctx.scenario.vehicle.lamps
        self.system: int = lamps.system if lamps is not None else 2
        self.beam_mode = 0
        self.at_home = True
        self.measured: dict[str, dict[str, float]] = {}

    def _lamps(self) -> list[tuple[str, Lamp]]:
        lamps = self.ctx.scenario.vehicle.lamps
        if lamps is None:
            return []
        found = [(s, getattr(lamps, s)) for s in SLOTS[: 2 if self.system == 2 else 4]]
        return [(slot, lamp) for slot, lamp in found if lamp is not None]

    def command(self, name: str, now: float) -> int | None:
        """start_test, stop, home, system_2_lamp, system_4_lamp."""
        measuring = self.started is not None and self._state(now) in (1, 2)
        if name == "stop":
            self.started = None
        elif measuring:
            return BUSY
        elif name == "start_test":
            self.started, self.measured, self.at_home = now, {}, False
        elif name == "home":
            self.at_home = True
        else:  # system_2_lamp / system_4_lamp are holding writes: see write()
            return self.write("lamp_system", 2 if name == "system_2_lamp" else 4, now)
        return None

    def write(self, name: str, value: Value, now: float) -> int | None:
        """lamp_system (2 or 4) and beam_mode (0 both, 1 high only, 2 low only)."""
        if self.started is not None and self._state(now) in (1, 2):
            return BUSY
        if name == "lamp_system" and int(value) not in (2, 4):
            return ILLEGAL_VALUE
        if name == "lamp_system":
            self.system = int(value)
        else:
            self.beam_mode = int(value)
        return None

    def _state(self, now: float) -> int:
        t = self.elapsed(now)
        lamps = self._lamps()
        if t < SEARCH_S:
            return 1
        if not lamps:
            return 9
        return 2 if t < SEARCH_S + PER_LAMP_S * len(lamps) else 3

    def values(self, now: float) -> dict[str, Value]:
        """Lamps measured so far, state and flags."""
        state = self._state(now) if self.started is not None else 0
        done = int((self.elapsed(now) - SEARCH_S) // PER_LAMP_S) if state in (2, 3) else 0
        for slot, lamp in self._lamps()[:done]:
            if slot not in self.measured:
                self.measured[slot] = self._measure(lamp)
        out: dict[str, Value] = {
            "state": state,
            "lamps_measured": len(self.measured),
            "total_high_intensity_cd": round(
                sum(m["high_intensity_cd"] for m in self.measured.values())
            ),
            "at_home": self.at_home,
            "lamp_found": state in (2, 3),
            "lamp_system": self.system,
            "beam_mode": self.beam_mode,
        }
        for slot in SLOTS:
            for key, value in self.measured.get(slot, dict.fromkeys(_LAMP_KEYS, 0.0)).items():
                out[f"{slot}_{key}"] = value
        return out

    def _measure(self, lamp: Lamp) -> dict[str, float]:
        high, low = self.beam_mode != 2, self.beam_mode != 1
        jitter = self.timing.noise  # offsets get absolute noise of the same size, in %
        return {
            # the tester resolves 100 cd (one register count), and so does its total
            "high_intensity_cd": round(self.noisy(lamp.high_intensity_cd), -2) if high else 0.0,
            "high_h_offset_pct": lamp.high_horizontal_offset + jitter * self.rng.gauss(0, 1)
            if high
            else 0.0,
            "high_v_offset_pct": lamp.high_vertical_offset + jitter * self.rng.gauss(0, 1)
            if high
            else 0.0,
            "low_h_offset_pct": lamp.low_horizontal_offset + jitter * self.rng.gauss(0, 1)
            if low
            else 0.0,
            "low_v_offset_pct": lamp.low_vertical_offset + jitter * self.rng.gauss(0, 1)
            if low
            else 0.0,
            "height_mm": float(lamp.height_mm),
        }


_LAMP_KEYS: Final = (
    "high_intensity_cd",
    "high_h_offset_pct",
    "high_v_offset_pct",
    "low_h_offset_pct",
    "low_v_offset_pct",
    "height_mm",
)
