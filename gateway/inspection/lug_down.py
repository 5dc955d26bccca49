"""Lug-down (加载减速法, GB 3847-2018 annex B) as a sans-I/O machine.

States (``TRANSITIONS``)::

    IDLE -> PRECHECK -> FULL_THROTTLE -> SCANNING -> TO_POINT -> STABILISING -> SAMPLING
         -> TO_POINT (80 %) -> STABILISING -> SAMPLING -> STOPPING -> DONE
    STABILISING -> TO_POINT               (speed left the band: settle again, within 30 s)
    FULL_THROTTLE .. SAMPLING -> STOPPING    (invalid: wrong gear, no peak, speed not held)

The driver selects the gear giving about 70 km/h at full throttle and keeps the pedal
floored. Once the unloaded speed is steady the dyno lowers the roller speed step by step
(constant-speed control, ``lug_down_scan_rate_kmh_s``) while the wheel power is recorded
(the PAU's power less what the slowing rollers' inertia gives it) and corrected to
reference conditions (α); the scan ends when the power has fallen 20 %
below its maximum or the speed is below 75 % of the speed of maximum power. The speed of
maximum power is VelMaxHP. The dyno then holds 100 % and 80 % of VelMaxHP in turn:
after stabilising, k (opacimeter) is averaged at both points, NOx (analyser) at 80 %
(and recorded at 100 %), and the engine's 9-s mean speed at 100 % is checked against the
rated speed. Judged: k100, k80 and NOx80 against limit set a or b,
and the corrected maximum wheel power against 40 % of the rated power (``gb3847-2018``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from drivers.devices.dyno_api import DynoReading
from drivers.devices.flb100_opacimeter import Mode
from drivers.protocols.flb100 import StatusFlags
from gateway.inspection.dyno_calc import (
    Formulas,
    ScanPoint,
    max_power_point,
    scan_finished,
    smoothed,
)
from gateway.inspection.dyno_common import DynoTest, LoadedGas, judge_scaled, mean
from gateway.inspection.emissions_calc import limit_key
from gateway.inspection.items import overall
from gateway.inspection.sansio import (
    Action,
    Command,
    DeviceFailed,
    Event,
    Finish,
    OperatorAbort,
    Read,
    Reply,
    Sample,
    Say,
    SetClock,
)
from gateway.limits import LimitTable, measured
from gateway.records import Measurement, Verdict

AMBIENT_EVERY_S: Final = 10.0
COLUMNS: Final = (
    "t_s", "phase", "point", "speed_kmh", "target_kmh", "power_kw", "power_corrected_kw",
    "force_n", "k_m1", "n_pct", "rpm", "nox_ppm", "oil_temp_c",
)  # fmt: skip


class Smoke(Protocol):
    """The opacimeter's real-time values (FLB-100)."""

    @property
    def k_m1(self) -> float: ...
    @property
    def n_pct(self) -> float: ...
    @property
    def engine_speed_rpm(self) -> int: ...
    @property
    def oil_temp_c(self) -> int: ...


class State(enum.Enum):
    """Steps of the lug-down item."""

    IDLE = enum.auto()
    PRECHECK = enum.auto()
    FULL_THROTTLE = enum.auto()
    SCANNING = enum.auto()
    TO_POINT = enum.auto()
    STABILISING = enum.auto()
    SAMPLING = enum.auto()
    STOPPING = enum.auto()
    DONE = enum.auto()


TRANSITIONS: Final = {
    State.IDLE: frozenset({State.PRECHECK}),
    State.PRECHECK: frozenset({State.FULL_THROTTLE}),
    State.FULL_THROTTLE: frozenset({State.SCANNING, State.STOPPING}),
    State.SCANNING: frozenset({State.TO_POINT, State.STOPPING}),
    State.TO_POINT: frozenset({State.STABILISING, State.STOPPING}),
    State.STABILISING: frozenset({State.SAMPLING, State.TO_POINT, State.STOPPING}),
    State.SAMPLING: frozenset({State.TO_POINT, State.STOPPING}),
    State.STOPPING: frozenset({State.DONE}),
}


@dataclass(slots=True)
class Point:
    """A measuring point (100 % or 80 % VelMaxHP) and its samples."""

    label: str  # "100" / "80"
    speed_kmh: float
    k: list[float] = field(default_factory=list)
    nox: list[float] = field(default_factory=list)
    rpm: list[float] = field(default_factory=list)
    power: list[float] = field(default_factory=list)
    speeds: list[float] = field(default_factory=list)


class LugDownMachine(DynoTest[State]):
    """The lug-down procedure, events in, actions out."""

    name = "LUG"
    columns = COLUMNS
    transitions = TRANSITIONS

    def __init__(
        self,
        table: LimitTable,
        formulas: Formulas,
        rated_power_kw: float,
        rated_speed_rpm: float,
        limit_set: str,
        sample_s: float = 1.0,
    ) -> None:
        super().__init__(
            State.IDLE, State.STOPPING, State.DONE, table.number("lug_down_stop_timeout_s")
        )
        self.table, self.formulas, self.limit_set = table, formulas, limit_set
        self.rated_power_kw, self.rated_speed_rpm = rated_power_kw, rated_speed_rpm
        self.sample_s = sample_s
        self.recent: list[tuple[float, float]] = []  # (t, speed) while at full throttle
        self.v_start = 0.0
        self.scan_t0 = 0.0
        self.scan: list[ScanPoint] = []
        self.points: list[Point] = []
        self.alpha = 1.0
        self.unsettled = 0  # times a point's speed left the band while stabilising
        self.point_since_s = 0.0
        #: the dyno's base inertia: its deceleration adds to the PAU's power during the
        #: scan and is taken off (set by the item from the dyno; 0 = no compensation)
        self.base_inertia_kg = 0.0
        self.parameters = {
            "rated_power_kw": rated_power_kw, "rated_speed_rpm": rated_speed_rpm,
            "limit_set": limit_set, "interval_s": sample_s,
        }  # fmt: skip

    # --- events -------------------------------------------------------------------------
    def start(self, t_s: float) -> list[Action]:
        """Ask the analyser and the opacimeter whether they are ready."""
        self.go(State.PRECHECK, t_s)
        return [
            Say("lug_precheck", "checking the opacimeter and the NOx analyser"),
            *self.analyser_precheck(),
            Command("opacimeter", "read_status", reply=True),
        ]

    def handle(self, event: Event) -> list[Action]:
        """One event."""
        if self.finish is not None:
            return []
        if isinstance(event, DeviceFailed | OperatorAbort):
            return self.failed(event)
        if isinstance(event, Reply):
            return self._reply(event)
        return self._sample(event)

    def _reply(self, event: Reply) -> list[Action]:
        if event.device == "analyser":
            return self.analyser_ready(event) or []
        if StatusFlags.WARMING_UP in event.value:
            return self.done(Finish(Verdict.ABORTED, reason="opacimeter warming up"))
        return self._begin(event.t_s)

    def _begin(self, t_s: float) -> list[Action]:
        self.go(State.FULL_THROTTLE, t_s)
        every = max(1, round(AMBIENT_EVERY_S / self.sample_s))
        reads = (
            Read("dyno", "read_state"),
            Read("opacimeter", "read_realtime"),
            Read("analyser", "read_gases"),
            Read("analyser", "read_ambient", every=every, name="ambient"),
        )
        target = self.table.number("lug_down_target_speed_kmh")
        return [
            Command("opacimeter", "linearity_zero"),
            Command("opacimeter", "set_mode", (Mode.DIRECT,)),
            Command("analyser", "zero"),
            Command("analyser", "pump_on"),
            Command("dyno", "lift", (False,)),
            Command("dyno", "control_off"),
            Say("lug_probe_in", "insert the opacimeter and analyser probes"),
            SetClock(self.sample_s, reads),
            Say(
                "lug_full_throttle",
                f"select the gear for about {target:.0f} km/h and floor the pedal",
                {"target_kmh": target},
            ),
        ]

    def _sample(self, event: Sample) -> list[Action]:
        t_s, readings = event.t_s, event.readings
        self.last_t_s = t_s
        self.take_ambient(readings)
        if self.ambient is not None:
            self.alpha = self.formulas.power_correction(self.ambient)
        dyno: DynoReading = readings["dyno"]
        if self.state is State.STOPPING:
            return self.stopping(t_s, dyno)
        smoke: Smoke = readings["opacimeter"]
        gas: LoadedGas = readings["analyser"]
        point = self.points[-1] if self.points else None
        corrected = dyno.power_kw * self.alpha
        self.rows.append([
            t_s, self.state.name.lower(), point.label if point else None, dyno.speed_kmh,
            dyno.target, dyno.power_kw, round(corrected, 3), dyno.force_n, smoke.k_m1,
            smoke.n_pct, smoke.engine_speed_rpm, gas.nox_ppm, smoke.oil_temp_c,
        ])  # fmt: skip
        live = Say(
            "lug_live",
            f"{self.state.name.lower()}: {dyno.speed_kmh:.1f} km/h, {corrected:.1f} kW, "
            f"k {smoke.k_m1:.2f} m⁻¹",
            {"phase": self.state.name.lower(), "t_s": t_s, "speed_kmh": dyno.speed_kmh,
             "target_kmh": dyno.target, "power_kw": round(corrected, 2), "k_m1": smoke.k_m1,
             "rpm": smoke.engine_speed_rpm, "nox_ppm": gas.nox_ppm,
             # the rest of the process row, for the platforms' real-time upload
             "point": point.label if point else None, "power_raw_kw": dyno.power_kw,
             "force_n": dyno.force_n, "n_pct": smoke.n_pct,
             "co2_pct": gas.co2_pct_vol, "oil_temp_c": smoke.oil_temp_c},
        )  # fmt: skip
        step = {
            State.FULL_THROTTLE: self._full_throttle,
            State.SCANNING: self._scanning,
            State.TO_POINT: self._to_point,
            State.STABILISING: self._stabilising,
            State.SAMPLING: self._sampling,
        }[self.state]
        return [live, *step(t_s, dyno, smoke, gas)]

    def _full_throttle(self, t_s: float, dyno: DynoReading, *_: Any) -> list[Action]:
        n = self.table.number
        self.recent.append((t_s, dyno.speed_kmh))
        settle = n("lug_down_settle_s")
        window = [v for t, v in self.recent if t > t_s - settle - 1e-9]
        steady = (
            self.recent[0][0] <= t_s - settle + 1e-9
            and max(window) - min(window) <= 1.0
            and min(window) >= n("lug_down_min_start_speed_kmh")
        )
        if steady:
            self.v_start = round(sum(window) / len(window), 2)
            self.go(State.SCANNING, t_s)
            self.scan_t0 = t_s
            return [
                Say("lug_scanning",
                    f"power scan from {self.v_start:.1f} km/h: keep the pedal floored",
                    {"start_kmh": self.v_start}),
                Command("dyno", "set_constant_speed", (self._scan_target(t_s + self.sample_s),)),
            ]  # fmt: skip
        timeout = n("lug_down_reach_timeout_s")
        if self.in_state_s(t_s) >= timeout:
            return self._invalid(
                t_s,
                f"full-throttle speed {dyno.speed_kmh:.1f} km/h not steady above "
                f"{n('lug_down_min_start_speed_kmh'):.0f} km/h within {timeout:.0f} s "
                "(wrong gear or pedal released)",
            )
        return []

    def best(self) -> ScanPoint:
        """VelMaxHP and MaxHP: the maximum of the smoothed power scan."""
        width = round(self.table.number("lug_down_scan_smoothing_s") / self.sample_s)
        return max_power_point(smoothed(self.scan, max(1, width)))

    def _scan_target(self, t_s: float) -> float:
        rate = self.table.number("lug_down_scan_rate_kmh_s")
        return round(self.v_start - rate * (t_s - self.scan_t0), 2)

    def inertia_kw(self, speed_kmh: float) -> float:
        """Power the rollers' inertia gives to the PAU as the scan slows them at its rate
        (negative, kW): the commanded ramp, not the noisy difference of two readings."""
        decel_ms2 = self.table.number("lug_down_scan_rate_kmh_s") / 3.6
        return -self.base_inertia_kg * decel_ms2 * speed_kmh / 3.6 / 1000.0

    def _scanning(self, t_s: float, dyno: DynoReading, *_: Any) -> list[Action]:
        wheel = dyno.power_kw + self.inertia_kw(dyno.speed_kmh)
        point = ScanPoint(dyno.speed_kmh, round(wheel * self.alpha, 3))
        self.scan.append(point)
        n = self.table.number
        width = max(1, round(n("lug_down_scan_smoothing_s") / self.sample_s))
        if scan_finished(
            smoothed(self.scan, width),
            n("lug_down_scan_end_power_drop"),
            n("lug_down_scan_end_speed_ratio"),
        ):
            best = self.best()
            return self._to(
                t_s, best.speed_kmh * self.table.number("lug_down_point_ratio_100"), "100"
            )
        if dyno.speed_kmh < self.table.number("lug_down_scan_min_speed_ratio") * self.v_start:
            best = self.best()
            return self._invalid(
                t_s,
                f"power scan found no peak: power did not fall after {best.power_kw:.1f} kW "
                f"at {best.speed_kmh:.1f} km/h before {dyno.speed_kmh:.1f} km/h",
            )
        return [Command("dyno", "set_constant_speed", (self._scan_target(t_s + self.sample_s),))]

    def _to(self, t_s: float, speed_kmh: float, label: str) -> list[Action]:
        speed = round(speed_kmh, 2)
        self.points.append(Point(label, speed))
        self.go(State.TO_POINT, t_s)
        self.point_since_s = t_s
        best = self.best()
        return [
            Say(f"lug_to_{label}", f"{label} % VelMaxHP: {speed:.1f} km/h",
                {"point": label, "target_kmh": speed, "vel_max_hp_kmh": best.speed_kmh,
                 "max_power_kw": best.power_kw}),
            Command("dyno", "set_constant_speed", (speed,)),
        ]  # fmt: skip

    def _held(self, dyno: DynoReading) -> bool:
        tol = self.table.number("lug_down_speed_tolerance_kmh")
        return abs(dyno.speed_kmh - self.points[-1].speed_kmh) <= tol

    def _to_point(self, t_s: float, dyno: DynoReading, *_: Any) -> list[Action]:
        if self._held(dyno):
            self.go(State.STABILISING, t_s)
            return []
        timeout = self.table.number("lug_down_reach_point_timeout_s")
        if t_s - self.point_since_s >= timeout:
            point = self.points[-1]
            return self._invalid(
                t_s, f"{point.label} % point {point.speed_kmh:.1f} km/h not reached within "
                f"{timeout:.0f} s ({dyno.speed_kmh:.1f} km/h)",
            )  # fmt: skip
        return []

    def _stabilising(self, t_s: float, dyno: DynoReading, *_: Any) -> list[Action]:
        if not self._held(dyno):  # not settled yet: wait for the speed again (TO_POINT times out)
            self.go(State.TO_POINT, t_s)
            self.unsettled += 1
            return []
        if self.in_state_s(t_s) + 1e-9 >= self.table.number("lug_down_stabilise_s"):
            self.go(State.SAMPLING, t_s)
            label = self.points[-1].label
            return [Say(f"lug_sampling_{label}", f"{label} % VelMaxHP: measuring")]
        return []

    def _sampling(
        self, t_s: float, dyno: DynoReading, smoke: Smoke, gas: LoadedGas
    ) -> list[Action]:
        if not self._held(dyno):
            return self._not_held(t_s, dyno)
        point = self.points[-1]
        point.k.append(smoke.k_m1)
        point.nox.append(float(gas.nox_ppm))
        point.rpm.append(float(smoke.engine_speed_rpm))
        point.power.append(dyno.power_kw * self.alpha)
        point.speeds.append(dyno.speed_kmh)
        if self.in_state_s(t_s) + 1e-9 < self.table.number("lug_down_sample_s"):
            return []
        if point.label == "100":
            best = self.best()
            ratio = self.table.number("lug_down_point_ratio_80")
            return self._to(t_s, best.speed_kmh * ratio, "80")
        return self._judge(t_s)

    def _not_held(self, t_s: float, dyno: DynoReading) -> list[Action]:
        point = self.points[-1]
        return self._invalid(
            t_s, f"{point.label} % point: speed {dyno.speed_kmh:.1f} km/h left "
            f"{point.speed_kmh:.1f} ± {self.table.number('lug_down_speed_tolerance_kmh'):g} km/h",
        )  # fmt: skip

    def _judge(self, t_s: float) -> list[Action]:
        table, limit_set = self.table, self.limit_set
        p100, p80 = self.points
        best = self.best()
        k100, k80 = mean(p100.k, "0.01"), mean(p80.k, "0.01")
        nox80 = mean(p80.nox, "1")
        rpm100 = mean(p100.rpm, "1")
        rated = judge_scaled(
            table, "lug_down_rated_speed_ratio", "engine_speed_100_rpm", rpm100,
            self.rated_speed_rpm, "r/min",
            f"band around the order's rated speed {self.rated_speed_rpm:g} r/min",
        )  # fmt: skip
        judged = [
            table.judge(limit_key("lug_down_k_m1", limit_set), "k100_m1", k100),
            table.judge(limit_key("lug_down_k_m1", limit_set), "k80_m1", k80),
            table.judge(limit_key("lug_down_nox_ppm", limit_set), "nox80_ppm", nox80),
            judge_scaled(
                table, "lug_down_power_ratio_min", "max_wheel_power_kw",
                round(best.power_kw, 1), self.rated_power_kw, "kW",
                f"share of the order's rated power {self.rated_power_kw:g} kW",
            ),
        ]  # fmt: skip
        raw_max = best.power_kw / self.alpha
        self.measurements = [
            *judged,
            rated,
            measured("vel_max_hp_kmh", round(best.speed_kmh, 1), "km/h"),
            measured("max_wheel_power_raw_kw", round(raw_max, 1), "kW"),
            measured("power_correction_factor", round(self.alpha, 4)),
            measured("nox100_ppm", mean(p100.nox, "1"), "ppm"),
            measured("speed100_kmh", mean(p100.speeds, "0.1"), "km/h"),
            measured("speed80_kmh", mean(p80.speeds, "0.1"), "km/h"),
            measured("power100_kw", mean(p100.power, "0.1"), "kW"),
            measured("power80_kw", mean(p80.power, "0.1"), "kW"),
            measured("engine_speed_80_rpm", mean(p80.rpm, "1"), "r/min"),
            measured("scan_start_kmh", self.v_start, "km/h"),
            measured("scan_points", len(self.scan)),
            measured("points_resettled", self.unsettled),
            measured("rated_power_kw", self.rated_power_kw, "kW"),
        ]
        say = Say(
            "lug_result",
            f"k100 {k100:.2f}, k80 {k80:.2f} m⁻¹, NOx80 {nox80:.0f} ppm, "
            f"MaxHP {best.power_kw:.1f} kW at {best.speed_kmh:.1f} km/h",
            {"k100_m1": k100, "k80_m1": k80, "nox80_ppm": nox80, "max_power_kw": best.power_kw,
             "vel_max_hp_kmh": best.speed_kmh, "engine_speed_100_rpm": rpm100},
        )  # fmt: skip
        if rated.verdict is Verdict.FAIL:
            return [say, *self._invalid(
                t_s, f"engine speed at 100 % VelMaxHP {rpm100:.0f} r/min is outside "
                f"{rated.limit.low if rated.limit else 0:.0f}-"
                f"{rated.limit.high if rated.limit else 0:.0f} r/min of the rated speed "
                "(wrong gear, or the order's rated speed is wrong)",
            )]  # fmt: skip
        verdict = overall([m.verdict for m in judged])
        return [say, *self.stop(t_s, Finish(verdict, tuple(self.measurements)), "test complete")]

    def _invalid(self, t_s: float, reason: str) -> list[Action]:
        outcome = Finish(Verdict.ABORTED, tuple(self.measurements), f"test invalid: {reason}")
        return [Say("lug_invalid", f"test invalid: {reason}"), *self.stop(t_s, outcome, "invalid")]

    def safe_state(self) -> list[Command]:
        """Load off and the NOx analyser's pump off."""
        return [Command("dyno", "control_off"), Command("analyser", "pump_off")]

    def stopping(self, t_s: float, dyno: DynoReading | None) -> list[Action]:
        """Pump off with the lift."""
        actions = super().stopping(t_s, dyno)
        if self.finish is not None:
            actions.insert(0, Command("analyser", "pump_off"))
        return actions

    def evidence(self) -> dict[str, Any]:
        """Process data, the power scan and the points."""
        return {
            **super().evidence(),
            "interval_s": self.sample_s,
            "power_scan": [[p.speed_kmh, p.power_kw] for p in self.scan],
            "power_correction_factor": self.alpha,
            "base_inertia_kg": self.base_inertia_kg,
        }


def measurements_named(measurements: tuple[Measurement, ...]) -> dict[str, Measurement]:
    """The measurements by name (for callers and tests)."""
    return {m.name: m for m in measurements}
