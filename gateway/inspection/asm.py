"""ASM 5025/2540 (稳态工况法, GB 18285-2018 annex B) as a sans-I/O machine.

States (``TRANSITIONS``)::

    IDLE -> PRECHECK -> ACCELERATING -> STABILISING -> SYNC -> FAST_CHECK -> TESTING
         -> ACCELERATING (2540) ... -> STOPPING -> DONE
    STABILISING .. TESTING -> ACCELERATING   (speed or load out of tolerance: restart)
    ACCELERATING .. TESTING -> STOPPING      (fast pass, verdict, or invalid)

Per mode: the driver accelerates to the mode's speed; the dyno holds the load P = RM/148
(5025, applied once the car is at speed) or RM/185 kW (2540, applied as the driver
accelerates from 25 km/h); 5 s of speed stabilisation, 10 s of data sync,
a 10-s fast-check window and the 65-s test follow. Each second the raw HC, CO, NO are
corrected for dilution (DF) and NO also for humidity (kH). If every corrected mean of the
fast-check window is at most half its limit the mode passes at once (a fast pass at 5025
passes the vehicle and ends the test); otherwise the mean of the last 10 s of the test is
judged per gas. Speed (±2 km/h) or load (±5 %) out of tolerance for more than 2 s in a
row or 5 s in all restarts the mode; the fourth restart makes the test invalid (aborted,
never failed). Every number above is data in ``gb18285-2018.yaml``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final

from drivers.devices.dyno_api import DynoReading
from gateway.inspection.dyno_calc import Excursions, Formulas, asm_load_kw
from gateway.inspection.dyno_common import DynoTest, LoadedGas, mean
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
from gateway.records import Measurement, Scalar, Verdict

SAMPLE_S: Final = 1.0  # process data and live values: once a second
AMBIENT_EVERY: Final = 10  # ambient (for kH) read every 10th second
COLUMNS: Final = (
    "t_s", "mode", "phase", "speed_kmh", "target_speed_kmh", "power_kw", "target_power_kw",
    "force_n", "hc_ppm", "co_pct", "co2_pct", "o2_pct", "no_ppm", "lambda", "rpm", "df", "kh",
    "hc_corrected_ppm", "co_corrected_pct", "no_corrected_ppm", "in_tolerance",
)  # fmt: skip
GASES: Final = (("hc_ppm", "1"), ("co_pct", "0.01"), ("no_ppm", "1"))


class State(enum.Enum):
    """Steps of the ASM item."""

    IDLE = enum.auto()
    PRECHECK = enum.auto()
    ACCELERATING = enum.auto()
    STABILISING = enum.auto()
    SYNC = enum.auto()
    FAST_CHECK = enum.auto()
    TESTING = enum.auto()
    STOPPING = enum.auto()
    DONE = enum.auto()


_RUNNING: Final = frozenset({State.STABILISING, State.SYNC, State.FAST_CHECK, State.TESTING})
TRANSITIONS: Final = {
    State.IDLE: frozenset({State.PRECHECK}),
    State.PRECHECK: frozenset({State.ACCELERATING}),
    State.ACCELERATING: frozenset({State.STABILISING, State.STOPPING}),
    State.STABILISING: frozenset({State.SYNC, State.ACCELERATING, State.STOPPING}),
    State.SYNC: frozenset({State.FAST_CHECK, State.ACCELERATING, State.STOPPING}),
    State.FAST_CHECK: frozenset({State.TESTING, State.ACCELERATING, State.STOPPING}),
    State.TESTING: frozenset({State.ACCELERATING, State.STOPPING}),
    State.STOPPING: frozenset({State.DONE}),
}


@dataclass(frozen=True, slots=True)
class Mode:
    """One ASM mode: its name, speed and load."""

    name: str  # "5025" / "2540"
    speed_kmh: float
    load_kw: float


@dataclass(frozen=True, slots=True)
class Second:
    """One second of a mode, corrected."""

    t_s: float
    phase: State
    speed_kmh: float
    power_kw: float
    raw: tuple[float, float, float]  # hc ppm, co %, no ppm
    corrected: tuple[float, float, float]
    df: float
    kh: float


@dataclass(slots=True)
class Attempt:
    """The current attempt at a mode (a restart begins a new one)."""

    seconds: list[Second] = field(default_factory=list)
    excursions: Excursions = field(default_factory=Excursions)
    loaded: bool = False


def modes(table: LimitTable, reference_mass_kg: float) -> list[Mode]:
    """The two modes with their loads for this reference mass."""
    out = []
    for name in ("5025", "2540"):
        divisor = table.number(f"asm_{name}_load_divisor_kg_per_kw")
        load = round(asm_load_kw(reference_mass_kg, divisor), 2)
        out.append(Mode(name, table.number(f"asm_{name}_speed_kmh"), load))
    return out


class AsmMachine(DynoTest[State]):
    """The ASM procedure, events in, actions out."""

    name = "ASM"
    columns = COLUMNS
    transitions = TRANSITIONS

    def __init__(
        self, table: LimitTable, formulas: Formulas, reference_mass_kg: float, limit_set: str
    ) -> None:
        super().__init__(State.IDLE, State.STOPPING, State.DONE, table.number("asm_stop_timeout_s"))
        self.table, self.formulas, self.limit_set = table, formulas, limit_set
        self.reference_mass_kg = reference_mass_kg
        self.modes = modes(table, reference_mass_kg)
        self.mode_index = 0
        self.attempt = Attempt()
        self.restarts = 0
        self.measurements: list[Measurement] = [
            measured("reference_mass_kg", reference_mass_kg, "kg")
        ]
        n = table.number
        self.tol_kmh, self.tol_power = n("asm_speed_tolerance_kmh"), n("asm_power_tolerance_ratio")
        self.durations = {
            State.STABILISING: n("asm_stabilise_s"), State.SYNC: n("asm_sync_s"),
            State.FAST_CHECK: n("asm_fast_check_s"), State.TESTING: n("asm_test_s"),
        }  # fmt: skip
        self.parameters = {
            "reference_mass_kg": reference_mass_kg, "limit_set": limit_set,
            **{f"load_{m.name}_kw": m.load_kw for m in self.modes},
        }  # fmt: skip

    @property
    def mode(self) -> Mode:
        """The mode now running."""
        return self.modes[self.mode_index]

    # --- events -------------------------------------------------------------------------
    def start(self, t_s: float) -> list[Action]:
        """Ask the analyser whether it is warm."""
        self.go(State.PRECHECK, t_s)
        return [Say("asm_precheck", "checking the gas analyser"), *self.analyser_precheck()]

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
        abort = self.analyser_ready(event)
        if abort is not None:
            return abort
        return self._begin(event.t_s)

    def _begin(self, t_s: float) -> list[Action]:
        """Analyser zeroed and pumping, lift down, no load: the driver accelerates."""
        reads = (
            Read("dyno", "read_state"),
            Read("analyser", "read_gases"),
            Read("analyser", "read_ambient", every=AMBIENT_EVERY, name="ambient"),
        )
        return [
            Command("analyser", "zero"),
            Command("analyser", "pump_on"),
            Command("dyno", "lift", (False,)),
            Command("dyno", "control_off"),
            Say("asm_probe_in", "insert the probe at least 400 mm into the tailpipe"),
            SetClock(SAMPLE_S, reads),
            *self._accelerate(t_s),
        ]

    def _accelerate(self, t_s: float) -> list[Action]:
        """Prompt the driver; after the first mode the next mode's load goes on at once
        (the car is already rolling: the driver accelerates against it)."""
        self.go(State.ACCELERATING, t_s)
        mode = self.mode
        actions: list[Action] = [
            Say(
                "asm_accelerate", f"ASM{mode.name}: accelerate to {mode.speed_kmh:.0f} km/h",
                {"mode": mode.name, "target_kmh": mode.speed_kmh, "load_kw": mode.load_kw},
            )
        ]  # fmt: skip
        if self.mode_index > 0 and not self.attempt.loaded:
            self.attempt.loaded = True
            actions.append(Command("dyno", "set_constant_power", (mode.load_kw,)))
        return actions

    def _sample(self, event: Sample) -> list[Action]:
        t_s, readings = event.t_s, event.readings
        dt = t_s - self.last_t_s
        self.last_t_s = t_s
        self.take_ambient(readings)
        dyno: DynoReading = readings["dyno"]
        if self.state is State.STOPPING:
            return self.stopping(t_s, dyno)
        gas: LoadedGas = readings["analyser"]
        second, in_tol = self._second(t_s, dyno, gas)
        actions: list[Action] = [self._live(second, in_tol)]
        if self.state is State.ACCELERATING:
            return actions + self._accelerating(t_s, dyno)
        self.attempt.seconds.append(second)
        self.attempt.excursions.add(in_tol, dt)
        if self.attempt.excursions.exceeded(
            self.table.number("asm_violation_continuous_s"),
            self.table.number("asm_violation_cumulative_s"),
        ):
            return actions + self._restart(t_s, second)
        if self.in_state_s(t_s) + 1e-9 >= self.durations[self.state]:
            actions += self._phase_over(t_s)
        return actions

    def _second(self, t_s: float, dyno: DynoReading, gas: LoadedGas) -> tuple[Second, bool]:
        """Correct one second, keep it as a process row; whether it was in tolerance."""
        f = self.formulas
        df = f.dilution_factor(gas.co2_pct_vol, gas.co_pct_vol)
        kh = f.kh(self.ambient) if self.ambient is not None else 1.0
        raw = (float(gas.hc_ppm), gas.co_pct_vol, float(gas.nox_ppm))
        corrected = (raw[0] * df, raw[1] * df, raw[2] * df * kh)
        mode = self.mode
        loaded = self.attempt.loaded and self.state is not State.STABILISING
        speed_ok = abs(dyno.speed_kmh - mode.speed_kmh) <= self.tol_kmh
        power_ok = not loaded or abs(dyno.power_kw - mode.load_kw) <= self.tol_power * mode.load_kw
        in_tol = speed_ok and power_ok
        second = Second(t_s, self.state, dyno.speed_kmh, dyno.power_kw, raw, corrected, df, kh)
        self.rows.append([
            t_s, mode.name, self.state.name.lower(), dyno.speed_kmh, mode.speed_kmh,
            dyno.power_kw, mode.load_kw if self.attempt.loaded else 0.0, dyno.force_n,
            gas.hc_ppm, gas.co_pct_vol, gas.co2_pct_vol, gas.o2_pct_vol, gas.nox_ppm, gas.lambda_,
            gas.engine_speed_rpm, round(df, 4), round(kh, 4), round(corrected[0], 1),
            round(corrected[1], 3), round(corrected[2], 1), in_tol,
        ])  # fmt: skip
        return second, in_tol

    def _live(self, s: Second, in_tol: bool) -> Say:
        mode = self.mode
        values: dict[str, Scalar] = {
            "mode": mode.name, "phase": self.state.name.lower(), "t_s": s.t_s,
            "speed_kmh": s.speed_kmh, "target_kmh": mode.speed_kmh,
            "band_low_kmh": mode.speed_kmh - self.tol_kmh,
            "band_high_kmh": mode.speed_kmh + self.tol_kmh,
            "power_kw": s.power_kw, "target_kw": mode.load_kw,
            "hc_ppm": s.raw[0], "co_pct": s.raw[1], "no_ppm": s.raw[2],
            "hc_corrected_ppm": round(s.corrected[0], 1),
            "co_corrected_pct": round(s.corrected[1], 3),
            "no_corrected_ppm": round(s.corrected[2], 1),
            "df": round(s.df, 3), "kh": round(s.kh, 3), "in_tolerance": in_tol,
        }  # fmt: skip
        # the rest of the second's process row, for the platforms' real-time upload
        row = dict(zip(COLUMNS, self.rows[-1], strict=True))
        values |= {k: row[k] for k in ("co2_pct", "o2_pct", "lambda", "rpm", "force_n")}
        return Say(
            "asm_live",
            f"ASM{mode.name} {self.state.name.lower()}: {s.speed_kmh:.1f} km/h, "
            f"{s.power_kw:.2f} kW",
            values,
        )

    def _accelerating(self, t_s: float, dyno: DynoReading) -> list[Action]:
        mode = self.mode
        if abs(dyno.speed_kmh - mode.speed_kmh) <= self.tol_kmh:
            self.go(State.STABILISING, t_s)
            actions: list[Action] = []
            if not self.attempt.loaded:
                self.attempt.loaded = True
                actions.append(Command("dyno", "set_constant_power", (mode.load_kw,)))
            actions.append(
                Say("asm_stabilising", f"ASM{mode.name}: hold {mode.speed_kmh:.0f} km/h")
            )
            return actions
        timeout = self.table.number("asm_reach_timeout_s")
        if self.in_state_s(t_s) >= timeout:
            reason = (
                f"ASM{mode.name}: speed {dyno.speed_kmh:.1f} km/h did not reach "
                f"{mode.speed_kmh:.0f} ± {self.tol_kmh:g} km/h within {timeout:.0f} s"
            )
            return self._invalid(t_s, reason)
        return []

    def _restart(self, t_s: float, s: Second) -> list[Action]:
        mode = self.mode
        self.restarts += 1
        what = (
            f"ASM{mode.name}: speed {s.speed_kmh:.1f} km/h / load {s.power_kw:.2f} kW out of "
            f"tolerance ({mode.speed_kmh:g} ± {self.tol_kmh:g} km/h, {mode.load_kw:g} kW "
            f"± {self.tol_power:.0%}) in {self.state.name.lower()}"
        )
        if self.restarts > self.table.number("asm_max_restarts"):
            return self._invalid(t_s, f"{what}; restarted {self.restarts - 1} times")
        loaded = self.attempt.loaded
        self.attempt = Attempt(loaded=loaded)
        restart = Say(
            "asm_restart", f"{what}: mode restarts ({self.restarts})", {"restarts": self.restarts}
        )
        return [restart, *self._accelerate(t_s)]

    def _phase_over(self, t_s: float) -> list[Action]:
        mode, state = self.mode, self.state
        if state is State.STABILISING:
            self.go(State.SYNC, t_s)
            return [Say("asm_sync", f"ASM{mode.name}: data synchronisation")]
        if state is State.SYNC:
            self.go(State.FAST_CHECK, t_s)
            return [Say("asm_fast_check", f"ASM{mode.name}: fast-check window")]
        if state is State.FAST_CHECK:
            return self._fast_check_over(t_s)
        return self._test_over(t_s)

    def _window(self, phase: State, last_s: float | None = None) -> list[Second]:
        seconds = [s for s in self.attempt.seconds if s.phase is phase]
        if last_s is not None and seconds:
            end = seconds[-1].t_s
            seconds = [s for s in seconds if s.t_s > end - last_s - 1e-9]
        return seconds

    def _fast_check_over(self, t_s: float) -> list[Action]:
        mode = self.mode
        window = self._window(State.FAST_CHECK)
        means = _means(window)
        ratio = self.table.number("asm_fast_pass_ratio")
        limits = [self._limit(gas) for gas, _ in GASES]
        fast = all(value <= ratio * limit for value, limit in zip(means, limits, strict=True))
        prefix = f"asm_{mode.name}_fast_check"
        self.measurements += [
            measured(f"{prefix}_{gas}", value, _unit(gas))
            for (gas, _), value in zip(GASES, means, strict=True)
        ]
        self.measurements.append(measured(f"asm_{mode.name}_fast_pass", fast))
        say = Say(
            "asm_fast_check_result",
            f"ASM{mode.name} fast check: HC {means[0]:.0f} ppm, CO {means[1]:.2f} %, "
            f"NO {means[2]:.0f} ppm ({'fast pass' if fast else 'full test follows'})",
            {"mode": mode.name, "fast_pass": fast, "hc_ppm": means[0], "co_pct": means[1],
             "no_ppm": means[2]},
        )  # fmt: skip
        if not fast:
            self.go(State.TESTING, t_s)
            return [say, Say("asm_testing", f"ASM{mode.name}: 65-s test")]
        self._judge(window, "fast_check")
        ends = mode.name == "2540" or self.table.flag("asm_fast_pass_at_5025_ends_test")
        return [say, *self._next_mode(t_s, ends, f"ASM{mode.name} fast pass")]

    def _test_over(self, t_s: float) -> list[Action]:
        mode = self.mode
        window = self._window(State.TESTING, self.table.number("asm_result_window_s"))
        verdict = self._judge(window, "test")
        failed = verdict is Verdict.FAIL
        ends = mode.name == "2540" or (failed and self.table.flag("asm_fail_at_5025_ends_test"))
        return self._next_mode(t_s, ends, f"ASM{mode.name} {verdict.value}")

    def _judge(self, window: list[Second], which: str) -> Verdict:
        """The mode's judged means (corrected), raw means and conditions."""
        mode, m = self.mode, self.mode.name
        means = _means(window)
        judged = [
            self.table.judge(limit_key(f"asm_{m}_{gas}", self.limit_set), f"asm_{m}_{gas}", value)
            for (gas, _), value in zip(GASES, means, strict=True)
        ]
        raw = [mean([s.raw[i] for s in window], step) for i, (_, step) in enumerate(GASES)]
        self.measurements += [
            *judged,
            *(measured(f"asm_{m}_{gas}_raw", value, _unit(gas))
              for (gas, _), value in zip(GASES, raw, strict=True)),
            measured(f"asm_{m}_df", mean([s.df for s in window], "0.001")),
            measured(f"asm_{m}_kh", mean([s.kh for s in window], "0.001")),
            measured(f"asm_{m}_speed_kmh", mean([s.speed_kmh for s in window], "0.1"), "km/h"),
            measured(f"asm_{m}_power_kw", mean([s.power_kw for s in window], "0.01"), "kW"),
            measured(f"asm_{m}_load_kw", mode.load_kw, "kW"),
            measured(f"asm_{m}_window", which),
            measured(f"asm_{m}_restarts", self.restarts),
        ]  # fmt: skip
        return overall([j.verdict for j in judged])

    def _next_mode(self, t_s: float, ends: bool, why: str) -> list[Action]:
        if not ends:
            self.mode_index += 1
            self.attempt = Attempt()
            self.restarts = 0
            return self._accelerate(t_s)
        verdict = overall([m.verdict for m in self.measurements])
        return self.stop(t_s, Finish(verdict, tuple(self.measurements)), why)

    def _invalid(self, t_s: float, reason: str) -> list[Action]:
        outcome = Finish(Verdict.ABORTED, tuple(self.measurements), f"test invalid: {reason}")
        return [Say("asm_invalid", f"test invalid: {reason}"), *self.stop(t_s, outcome, "invalid")]

    def _limit(self, gas: str) -> float:
        _, high = self.table.bound(limit_key(f"asm_{self.mode.name}_{gas}", self.limit_set))
        assert high is not None, "ASM limits are upper bounds"
        return high

    def safe_state(self) -> list[Command]:
        """Load off and the sample pump off."""
        return [Command("dyno", "control_off"), Command("analyser", "pump_off")]

    def stopping(self, t_s: float, dyno: DynoReading | None) -> list[Action]:
        """Pump off with the lift."""
        actions = super().stopping(t_s, dyno)
        if self.finish is not None:
            actions.insert(0, Command("analyser", "pump_off"))
        return actions

    def evidence(self) -> dict[str, Any]:
        """Process data and the modes' loads."""
        return {**super().evidence(), "interval_s": SAMPLE_S}


def _means(window: list[Second]) -> tuple[float, float, float]:
    if not window:
        raise ValueError("empty ASM window")
    hc, co, no = (mean([s.corrected[i] for s in window], step) for i, (_, step) in enumerate(GASES))
    return hc, co, no


def _unit(gas: str) -> str:
    return "%" if gas.endswith("pct") else "ppm"
