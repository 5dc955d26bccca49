"""Daily checks of the chassis dynamometer (coast-down 滑行, parasitic loss 附加损失) and the
VMAS flowmeter, standards.md §4; their bands and tolerances are data (``dyno-checks.yaml``).

The dyno checks are a sans-I/O machine (``CoastMachine``) driven by ``sansio.drive``: the
motor spins the empty rollers up, lets go, and the roller speed is sampled at 10 Hz while
they coast down. A free coast (no load) gives the parasitic power in each band,
P = ½·I·(v1² − v2²)/t; the coast-down check then spins up again and coasts against a
constant PAU power P_set: its measured time in each band (ACDT) is compared with the
computed CCDT = ½·I·(v1² − v2²)/(P_set + parasitic of the band), within ±7 %.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from drivers.devices.dyno_api import DynoReading
from gateway.inspection.dyno_calc import band_time_s, coast_power_kw, coast_time_s
from gateway.inspection.sansio import (
    Action,
    Command,
    DeviceFailed,
    Event,
    Finish,
    OperatorAbort,
    ProcedureMachine,
    Read,
    Sample,
    Say,
    SetClock,
    drive,
)
from gateway.limits import LimitTable, load_table, measured
from gateway.maintenance.check_outcome import CheckArgumentError, CheckOutcome
from gateway.records import Measurement, Verdict

TABLE: Final = "dyno-checks"
SAMPLE_S: Final = 0.1  # 10 Hz (one platform asks for 100-ms dyno-check process data)


@dataclass(frozen=True, slots=True)
class Band:
    """A speed band of a coast: from ``v1`` down to ``v2`` km/h."""

    v1: float
    v2: float

    @property
    def label(self) -> str:
        """e.g. ``48_32``."""
        return f"{self.v1:g}_{self.v2:g}"


class Phase(enum.Enum):
    """Steps of a coast check."""

    SPIN_UP = enum.auto()
    FREE_COAST = enum.auto()
    SPIN_UP_LOADED = enum.auto()
    LOADED_COAST = enum.auto()
    DONE = enum.auto()


def coast_bands(table: LimitTable, lane: str) -> list[Band]:
    """The coast-down bands of a petrol or diesel line."""
    if lane not in ("petrol", "diesel"):
        raise CheckArgumentError(f"lane must be petrol or diesel, not {lane!r}")
    n = table.number
    return [
        Band(n(f"coast_down_{lane}_{which}_start_kmh"), n(f"coast_down_{lane}_{which}_end_kmh"))
        for which in ("high", "low")
    ]


def parasitic_bands(table: LimitTable) -> list[Band]:
    """The parasitic-loss bands, e.g. ``56-40,40-24,24-8``."""
    text = str(table.parameters["parasitic_bands_kmh"].value)
    bands = []
    for part in text.split(","):
        high, low = (float(x) for x in part.split("-"))
        bands.append(Band(high, low))
    return bands


class CoastMachine(ProcedureMachine):
    """Free coast (parasitic loss), then optionally a loaded coast (coast-down)."""

    name = "coast"

    def __init__(
        self,
        table: LimitTable,
        inertia_kg: float,
        loaded_bands: list[Band] | None,
        load_kw: float,
    ) -> None:
        super().__init__()
        self.table, self.inertia_kg, self.load_kw = table, inertia_kg, load_kw
        self.free_bands = parasitic_bands(table)
        self.loaded_bands = loaded_bands
        every = [b.v1 for b in self.free_bands + (loaded_bands or [])]
        self.top_kmh = max(every) + table.number("coast_down_overspeed_kmh")
        self.phase = Phase.SPIN_UP
        self.free: list[tuple[float, float]] = []
        self.loaded: list[tuple[float, float]] = []
        self.rows: list[list[Any]] = []

    def start(self, t_s: float) -> list[Action]:
        """Lift down (rollers free), no load, motor on."""
        spin = f"no vehicle on the rollers: spinning up to {self.top_kmh:.0f} km/h"
        return [
            Say("coast_spin_up", spin),
            Command("dyno", "lift", (False,)),
            Command("dyno", "control_off"),
            Command("dyno", "motor", (True,)),
            SetClock(SAMPLE_S, (Read("dyno", "read_state"),)),
        ]

    def handle(self, event: Event) -> list[Action]:
        """Samples of the roller speed."""
        if self.finish is not None:
            return []
        if isinstance(event, DeviceFailed | OperatorAbort):
            why = event.error if isinstance(event, DeviceFailed) else event.reason
            return self.done(Finish(Verdict.ABORTED, reason=f"dyno check stopped: {why}"))
        if not isinstance(event, Sample):
            return []
        dyno: DynoReading = event.readings["dyno"]
        t, v = event.t_s, dyno.speed_kmh
        self.rows.append([t, self.phase.name.lower(), v, dyno.power_kw])
        if t > self.table.number("coast_down_timeout_s") * (2 if self.loaded_bands else 1):
            return self.done(
                Finish(Verdict.ABORTED, reason=f"dyno check timed out at {v:.1f} km/h")
            )
        if self.phase in (Phase.SPIN_UP, Phase.SPIN_UP_LOADED):
            return self._spinning(v)
        trace = self.free if self.phase is Phase.FREE_COAST else self.loaded
        trace.append((t, v))
        bands = self.free_bands if self.phase is Phase.FREE_COAST else self.loaded_bands or []
        if v >= min(b.v2 for b in bands) - 1.0:
            return []
        if self.phase is Phase.FREE_COAST and self.loaded_bands:
            self.phase = Phase.SPIN_UP_LOADED
            return [Say("coast_spin_up", "spinning up for the loaded coast"),
                    Command("dyno", "motor", (True,))]  # fmt: skip
        self.phase = Phase.DONE
        return [Command("dyno", "control_off"), *self._judge()]

    def _spinning(self, v: float) -> list[Action]:
        if v < self.top_kmh:
            return []
        if self.phase is Phase.SPIN_UP:
            self.phase = Phase.FREE_COAST
            return [Command("dyno", "motor", (False,)), Say("coast_free", "coasting without load")]
        self.phase = Phase.LOADED_COAST
        return [
            Command("dyno", "motor", (False,)),
            Command("dyno", "set_constant_power", (self.load_kw,)),
            Say("coast_loaded", f"coasting against {self.load_kw:g} kW"),
        ]

    def _band_time(self, trace: list[tuple[float, float]], band: Band) -> float | None:
        times, speeds = [t for t, _ in trace], [v for _, v in trace]
        return band_time_s(times, speeds, band.v1, band.v2)

    def parasitic_kw(self, band: Band) -> float | None:
        """The free coast's mean parasitic power over ``band``."""
        t = self._band_time(self.free, band)
        return None if t is None or t <= 0 else coast_power_kw(self.inertia_kg, band.v1, band.v2, t)

    def _judge(self) -> list[Action]:
        table = self.table
        out: list[Measurement] = [measured("base_inertia_kg", self.inertia_kg, "kg")]
        for band in self.free_bands:
            power = self.parasitic_kw(band)
            if power is None:
                return self.done(
                    Finish(Verdict.ABORTED, tuple(out), f"no free coast over {band.label}")
                )
            out.append(
                table.judge("parasitic_power_kw", f"parasitic_{band.label}_kw", round(power, 3))
            )
        for band in self.loaded_bands or []:
            acdt = self._band_time(self.loaded, band)
            parasitic = self.parasitic_kw(band)
            if acdt is None or parasitic is None:
                return self.done(Finish(Verdict.ABORTED, tuple(out), f"no coast over {band.label}"))
            ccdt = coast_time_s(self.inertia_kg, band.v1, band.v2, self.load_kw + parasitic)
            out += [
                measured(f"coast_{band.label}_acdt_s", round(acdt, 3), "s"),
                measured(f"coast_{band.label}_ccdt_s", round(ccdt, 3), "s"),
                measured(f"coast_{band.label}_parasitic_kw", round(parasitic, 3), "kW"),
                table.judge("coast_down_error_ratio", f"coast_{band.label}_error",
                            round((acdt - ccdt) / ccdt, 4)),
            ]  # fmt: skip
        if self.loaded_bands:
            out.append(measured("coast_load_kw", self.load_kw, "kW"))
        verdict = Verdict.FAIL if any(m.verdict is Verdict.FAIL for m in out) else Verdict.PASS
        return self.done(Finish(verdict, tuple(out)))

    def evidence(self) -> dict[str, Any]:
        """The 10 Hz coast data."""
        return {"columns": ["t_s", "phase", "speed_kmh", "power_kw"], "rows": self.rows}

    def safe_state(self) -> list[Command]:
        """Motor off, load off."""
        return [Command("dyno", "motor", (False,)), Command("dyno", "control_off")]


def _number(args: dict[str, Any], name: str, default: float) -> float:
    try:
        return float(args.get(name, default))
    except (TypeError, ValueError):
        raise CheckArgumentError(f"{name} must be a number, not {args.get(name)!r}") from None


async def _run_coast(dyno: Any, args: dict[str, Any], loaded: bool) -> CheckOutcome:
    table = load_table(TABLE)
    lane = str(args.get("lane", "petrol"))
    bands = coast_bands(table, lane) if loaded else None
    load = _number(args, "load_kw", table.number("coast_down_load_kw"))
    if load <= 0:
        raise CheckArgumentError("load_kw must be positive")
    inertia = _number(args, "base_inertia_kg", float(dyno.base_inertia_kg))
    machine = CoastMachine(table, inertia, bands, load)
    finish = await drive(
        machine, {"dyno": dyno}, lambda say: None, _number(args, "time_scale", 1.0)
    )
    passed = finish.verdict is Verdict.PASS
    note = finish.reason or (f"{lane} line, {load:g} kW, |error| <= 7 %" if loaded else "")
    return CheckOutcome(passed, list(finish.measurements), note)


async def dyno_coast_down(dyno: Any, args: dict[str, Any]) -> CheckOutcome:
    """Coast-down check (free coast for the parasitic loss, then the loaded coast)."""
    return await _run_coast(dyno, args, loaded=True)


async def dyno_parasitic(dyno: Any, args: dict[str, Any]) -> CheckOutcome:
    """Parasitic-loss check (free coast over the bands)."""
    return await _run_coast(dyno, args, loaded=False)


async def flowmeter_check(flowmeter: Any, args: dict[str, Any]) -> CheckOutcome:
    """Flowmeter on ambient air: ready, O2 about 20.9 %, standard flow within its range."""
    table = load_table(TABLE)
    status = await flowmeter.read_status()
    if not status.ready:
        m = Measurement(name="flowmeter_ready", value=False, verdict=Verdict.FAIL)
        return CheckOutcome(False, [m], f"flowmeter not ready: {status}")
    reads = [await flowmeter.read_all() for _ in range(int(table.number("flowmeter_check_reads")))]
    o2 = round(sum(r.o2_diluted_pct_vol for r in reads) / len(reads), 2)
    flow = round(sum(r.flow_standard_l_s for r in reads) / len(reads), 1)
    out = [
        Measurement(name="flowmeter_ready", value=True, verdict=Verdict.PASS),
        table.judge("flowmeter_o2_ambient_pct", "o2_ambient_pct", o2),
        table.judge("flowmeter_flow_standard_l_s", "flow_standard_l_s", flow),
        measured("temperature_c", reads[-1].temperature_c, "°C"),
        measured("pressure_kpa", reads[-1].pressure_kpa, "kPa"),
    ]
    passed = all(m.verdict is not Verdict.FAIL for m in out)
    return CheckOutcome(passed, out, "O2 on ambient air and diluted flow")
