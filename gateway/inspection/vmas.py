"""VMAS (简易瞬态工况法, GB 18285-2018 annex C) as a sans-I/O machine.

States (``TRANSITIONS``)::

    IDLE -> PRECHECK -> WAITING -> RUNNING -> STOPPING -> DONE
    WAITING / RUNNING -> STOPPING      (invalid: never at rest, driver out of the band)

From the start of the cycle the dyno simulates the vehicle's road load and inertia
(reference mass, ``RoadLoad``); the driver
follows the 195-s ECE R15 trace (``vmas-ece15-trace.yaml``) shown on the live view with
its tolerance band (±2 km/h, ±1 s) and the target a few seconds ahead. Out of the band
for more than 2 s in a row or 15 s in all invalidates the run (aborted, never failed).
Each second: the dilution ratio from the flowmeter's diluted O2 and the analyser's raw
O2 gives the exhaust flow out of the standard diluted flow; with kH-corrected NO it gives
the mass of HC, CO and NOx. The sums over the cycle divided by the distance driven are
the g/km judged against limit set a or b (CO; HC+NOx).
"""

from __future__ import annotations

import enum
from functools import cache
from importlib import resources
from typing import Any, Final, Protocol

import yaml
from pydantic import BaseModel, ConfigDict

from drivers.devices.dyno_api import DynoReading, FlowReading, RoadLoad
from gateway.inspection.dyno_calc import (
    Excursions,
    Formulas,
    Ramp,
    band_at,
    dilution_ratio,
    expand_trace,
    per_km,
    target_at,
)
from gateway.inspection.dyno_common import DynoTest, LoadedGas, mean
from gateway.inspection.emissions_calc import limit_key, reported
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
from gateway.records import Verdict

SAMPLE_S: Final = 1.0
AMBIENT_EVERY: Final = 10
LIVE_ROW: Final = frozenset({
    "power_kw", "hc_ppm", "co_pct", "co2_pct", "o2_pct", "no_ppm", "o2_diluted_pct",
    "flow_actual_l_s", "flow_standard_l_s", "flow_temp_c", "flow_pressure_kpa",
    "exhaust_flow_l_s", "no_corrected_ppm",
})  # fmt: skip
COLUMNS: Final = (
    "t_s", "cycle_s", "speed_kmh", "target_kmh", "band_low_kmh", "band_high_kmh", "in_band",
    "power_kw", "hc_ppm", "co_pct", "co2_pct", "o2_pct", "no_ppm", "o2_diluted_pct",
    "flow_actual_l_s", "flow_standard_l_s", "flow_temp_c", "flow_pressure_kpa",
    "dilution_ratio", "exhaust_flow_l_s", "kh", "no_corrected_ppm", "hc_g_s", "co_g_s",
    "nox_g_s",
)  # fmt: skip


class TraceOperation(BaseModel):
    """One operation of the cycle as written in the trace file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_s: float
    from_kmh: float
    to_kmh: float
    what: str


class TraceFile(BaseModel):
    """The trace data file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    source: str
    confidence: str
    operations: list[TraceOperation]


@cache
def load_trace(name: str = "vmas-ece15-trace") -> list[float]:
    """The per-second target speeds of a packaged trace file (0..195 s for ECE R15)."""
    text = resources.files("gateway.limits").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = TraceFile.model_validate(yaml.safe_load(text))
    return expand_trace([Ramp(o.duration_s, o.from_kmh, o.to_kmh) for o in data.operations])


class FlowStatusLike(Protocol):
    """The flowmeter's readiness."""

    @property
    def ready(self) -> bool: ...


class State(enum.Enum):
    """Steps of the VMAS item."""

    IDLE = enum.auto()
    PRECHECK = enum.auto()
    WAITING = enum.auto()
    RUNNING = enum.auto()
    STOPPING = enum.auto()
    DONE = enum.auto()


TRANSITIONS: Final = {
    State.IDLE: frozenset({State.PRECHECK}),
    State.PRECHECK: frozenset({State.WAITING}),
    State.WAITING: frozenset({State.RUNNING, State.STOPPING}),
    State.RUNNING: frozenset({State.STOPPING}),
    State.STOPPING: frozenset({State.DONE}),
}


class VmasMachine(DynoTest[State]):
    """The VMAS procedure, events in, actions out."""

    name = "VMAS"
    columns = COLUMNS
    transitions = TRANSITIONS

    def __init__(
        self,
        table: LimitTable,
        formulas: Formulas,
        reference_mass_kg: float,
        limit_set: str,
        time_scale: float = 1.0,
    ) -> None:
        super().__init__(State.IDLE, State.STOPPING, State.DONE, table.number("asm_stop_timeout_s"))
        self.table, self.formulas, self.limit_set = table, formulas, limit_set
        self.reference_mass_kg = reference_mass_kg
        self.trace = load_trace(str(table.parameters["vmas_trace"].value))
        n = table.number
        self.tol_kmh, self.tol_s = n("vmas_speed_tolerance_kmh"), n("vmas_time_tolerance_s")
        self.cycle_s = float(len(self.trace) - 1)
        self.t0 = 0.0
        self.excursions = Excursions()
        self.mass_g = [0.0, 0.0, 0.0]  # hc, co, nox
        self.km = 0.0
        self.ratios: list[float] = []
        self.khs: list[float] = []
        self.road_load = RoadLoad(
            a_n=round(n("vmas_road_load_a_n_per_kg") * reference_mass_kg, 1),
            c_n_per_kmh2=n("vmas_road_load_c_n_per_kmh2"),
            inertia_kg=reference_mass_kg,
            time_scale=time_scale,  # the lane's seconds for the dyno's dv/dt (1 on a lane)
        )
        self.parameters = {
            "reference_mass_kg": reference_mass_kg, "limit_set": limit_set,
            "road_load_a_n": self.road_load.a_n,
            "road_load_c_n_per_kmh2": self.road_load.c_n_per_kmh2,
            "cycle_s": self.cycle_s, "speed_tolerance_kmh": self.tol_kmh,
            "time_tolerance_s": self.tol_s,
        }  # fmt: skip

    def start(self, t_s: float) -> list[Action]:
        """Ask the analyser and the flowmeter whether they are ready."""
        self.go(State.PRECHECK, t_s)
        return [
            Say("vmas_precheck", "checking the gas analyser and the flowmeter"),
            *self.analyser_precheck(),
            Command("flowmeter", "read_status", reply=True),
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
        status: FlowStatusLike = event.value
        if not status.ready:
            return self.done(Finish(Verdict.ABORTED, reason=f"flowmeter not ready: {status}"))
        return self._begin(event.t_s)

    def _begin(self, t_s: float) -> list[Action]:
        self.go(State.WAITING, t_s)
        reads = (
            Read("dyno", "read_state"),
            Read("analyser", "read_gases"),
            Read("flowmeter", "read_all"),
            Read("analyser", "read_ambient", every=AMBIENT_EVERY, name="ambient"),
        )
        return [
            Command("analyser", "zero"),
            Command("analyser", "pump_on"),
            Command("dyno", "lift", (False,)),
            Command("dyno", "control_off"),
            Say("vmas_probe_in", "insert the probe and connect the flowmeter hose"),
            SetClock(SAMPLE_S, reads),
            Say("vmas_waiting", "engine at idle, wheels still: the cycle starts at rest"),
        ]

    def _sample(self, event: Sample) -> list[Action]:
        t_s, readings = event.t_s, event.readings
        dt = t_s - self.last_t_s
        self.last_t_s = t_s
        self.take_ambient(readings)
        dyno: DynoReading = readings["dyno"]
        if self.state is State.STOPPING:
            return self.stopping(t_s, dyno)
        if self.state is State.WAITING:
            return self._waiting(t_s, dyno)
        return self._running(t_s, dt, dyno, readings["analyser"], readings["flowmeter"])

    def _waiting(self, t_s: float, dyno: DynoReading) -> list[Action]:
        if abs(dyno.speed_kmh) < 1.0:
            self.go(State.RUNNING, t_s)
            self.t0 = t_s
            return [
                Command("dyno", "set_road_load", (self.road_load,)),
                Say("vmas_start", f"VMAS cycle starts: follow the trace ({self.cycle_s:.0f} s)"),
            ]
        timeout = self.table.number("vmas_start_timeout_s")
        if self.in_state_s(t_s) >= timeout:
            return self._invalid(t_s, f"the rollers did not stand still within {timeout:.0f} s")
        return []

    def _running(
        self, t_s: float, dt: float, dyno: DynoReading, gas: LoadedGas, flow: FlowReading
    ) -> list[Action]:
        f = self.formulas
        cycle = round(t_s - self.t0, 3)
        target = target_at(self.trace, cycle)
        low, high = band_at(self.trace, cycle, self.tol_kmh, self.tol_s)
        inside = low <= dyno.speed_kmh <= high
        self.excursions.add(inside, dt)
        ratio = dilution_ratio(
            self.table.number("vmas_ambient_o2_pct"), flow.o2_diluted_pct_vol, gas.o2_pct_vol
        )
        exhaust = flow.flow_standard_l_s * ratio
        kh = f.kh(self.ambient) if self.ambient is not None else 1.0
        no = gas.nox_ppm * kh
        rates = f.mass_rates_g_s(exhaust, gas.hc_ppm, gas.co_pct_vol, no)
        for i, rate in enumerate(rates):
            self.mass_g[i] += rate * dt
        self.km += max(dyno.speed_kmh, 0.0) * dt / 3600.0
        self.ratios.append(ratio)
        self.khs.append(kh)
        self.rows.append([
            t_s, cycle, dyno.speed_kmh, round(target, 2), round(low, 2), round(high, 2), inside,
            dyno.power_kw, gas.hc_ppm, gas.co_pct_vol, gas.co2_pct_vol, gas.o2_pct_vol,
            gas.nox_ppm, flow.o2_diluted_pct_vol, flow.flow_actual_l_s, flow.flow_standard_l_s,
            flow.temperature_c, flow.pressure_kpa, round(ratio, 4), round(exhaust, 3),
            round(kh, 4), round(no, 1), round(rates[0], 5), round(rates[1], 5), round(rates[2], 5),
        ])  # fmt: skip
        ahead = target_at(self.trace, cycle + self.table.number("vmas_driver_aid_lookahead_s"))
        live = Say(
            "vmas_live",
            f"{cycle:.0f}/{self.cycle_s:.0f} s: {dyno.speed_kmh:.1f} km/h (target {target:.1f})",
            {
                "t_s": t_s, "cycle_s": cycle, "speed_kmh": dyno.speed_kmh,
                "target_kmh": round(target, 2), "band_low_kmh": round(low, 2),
                "band_high_kmh": round(high, 2), "target_ahead_kmh": round(ahead, 2),
                "in_band": inside, "out_of_band_s": round(self.excursions.cumulative_s, 1),
                "hc_g_s": round(rates[0], 5), "co_g_s": round(rates[1], 5),
                "nox_g_s": round(rates[2], 5), "dilution_ratio": round(ratio, 4),
                "kh": round(kh, 3),
                # the rest of the second's process row, for the platforms' real-time upload
                **{k: v for k, v in zip(COLUMNS, self.rows[-1], strict=True) if k in LIVE_ROW},
            },
        )  # fmt: skip
        n = self.table.number
        if self.excursions.exceeded(
            n("vmas_out_of_band_continuous_s"), n("vmas_out_of_band_cumulative_s")
        ):
            e = self.excursions
            why = (
                f"driver out of the speed band at {cycle:.0f} s ({dyno.speed_kmh:.1f} km/h, "
                f"band {low:.1f}-{high:.1f}): {e.continuous_s:.0f} s in a row, "
                f"{e.cumulative_s:.0f} s in all (allowed {n('vmas_out_of_band_continuous_s'):g} "
                f"and {n('vmas_out_of_band_cumulative_s'):g} s)"
            )
            self.measurements = self._conditions()
            return [live, *self._invalid(t_s, why)]
        if cycle + 1e-9 >= self.cycle_s:
            return [live, *self._judge(t_s)]
        return [live]

    def _conditions(self) -> list[Any]:
        return [
            measured("distance_km", reported(self.km, "0.001"), "km"),
            measured("out_of_band_s", round(self.excursions.cumulative_s, 1), "s"),
            measured("reference_mass_kg", self.reference_mass_kg, "kg"),
        ]

    def _judge(self, t_s: float) -> list[Action]:
        km = self.km
        hc, co, nox = (per_km(m, km) for m in self.mass_g)
        co_gkm = reported(co, "0.01")
        hc_nox = reported(hc + nox, "0.01")
        judged = [
            self.table.judge(limit_key("vmas_co_g_km", self.limit_set), "vmas_co_g_km", co_gkm),
            self.table.judge(
                limit_key("vmas_hc_nox_g_km", self.limit_set), "vmas_hc_nox_g_km", hc_nox
            ),
        ]
        self.measurements = [
            *judged,
            measured("vmas_hc_g_km", reported(hc, "0.001"), "g/km"),
            measured("vmas_nox_g_km", reported(nox, "0.001"), "g/km"),
            measured("vmas_hc_g", reported(self.mass_g[0], "0.001"), "g"),
            measured("vmas_co_g", reported(self.mass_g[1], "0.001"), "g"),
            measured("vmas_nox_g", reported(self.mass_g[2], "0.001"), "g"),
            measured("dilution_ratio_mean", mean(self.ratios, "0.001")),
            measured("kh_mean", mean(self.khs, "0.001")),
            *self._conditions(),
        ]
        verdict = overall([m.verdict for m in judged])
        say = Say(
            "vmas_result", f"VMAS: CO {co_gkm:.2f} g/km, HC+NOx {hc_nox:.2f} g/km",
            {"co_g_km": co_gkm, "hc_nox_g_km": hc_nox, "distance_km": round(km, 3)},
        )  # fmt: skip
        return [say, *self.stop(t_s, Finish(verdict, tuple(self.measurements)), "cycle complete")]

    def _invalid(self, t_s: float, reason: str) -> list[Action]:
        outcome = Finish(Verdict.ABORTED, tuple(self.measurements), f"test invalid: {reason}")
        return [Say("vmas_invalid", f"test invalid: {reason}"), *self.stop(t_s, outcome, "invalid")]

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
        """Process data, the trace's name and the run's sums."""
        return {**super().evidence(), "interval_s": SAMPLE_S, "mass_g": self.mass_g,
                "distance_km": self.km}  # fmt: skip
