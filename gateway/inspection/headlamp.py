"""H1..H4 headlamp items: high-beam intensity per lamp, beam offsets recorded.

States (explicit; see ``TRANSITIONS``)::

    IDLE -> SETUP -> LEFT -> RIGHT -> HOMING -> READING -> JUDGING -> DONE
    IDLE -> JUDGING                      (the tester already ran in this inspection)

One run of the tester measures both sides, every lamp of the order's lamp system. The
first headlamp item of an inspection runs it and keeps the readings in
``ctx.state.extra[RUN_KEY]``; the following items judge their lamp from those readings,
so the vehicle is measured once however many of H1..H4 the order lists, and each item
still gets its own record (with the same ``headlamp_readings`` evidence).

Judgement: the lamp's high-beam intensity against the limit key of its vehicle row,
inspection type and lamp system (``headlamp_calc.intensity_key``); on a four-lamp system
a failing lamp passes when a symmetrical pair meets the two-lamp value and the limit
table carries that [MEM] rule (``pair_rule_key``). The total of all high beams goes to
the whole-vehicle summary record. Offsets are recorded, not judged (GB 38900-2020 deleted
those items). docs/items-headlamp.md has the details.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, runtime_checkable

from drivers.devices.base import DeviceClass
from drivers.devices.mqd6a_headlamp import HeadlampResult, LampReading
from drivers.errors import DeviceFault, DriverError
from gateway.inspection.headlamp_calc import (
    POSITIONS,
    TOTAL_KEY,
    Side,
    best_pair,
    expected_high_slots,
    four_lamp_verdict,
    intensity_key,
    offset_measurements,
    pair_rule_key,
    table_row,
    total_high_cd,
)
from gateway.inspection.items import ItemAborted, ItemContext, ItemOutcome, overall
from gateway.inspection.machine import Machine
from gateway.limits import LimitTable, load_table, measured
from gateway.records import Evidence, Measurement, Verdict

#: the limit table the items judge against
TABLE: Final = "gb7258-2017"
#: where the inspection's tester run is kept (``InspectionState.extra``)
RUN_KEY: Final = "headlamp_run"
#: the calibration channel of the tester's intensity (``lanegw calibrate``)
INTENSITY_CHANNEL: Final = "intensity_cd"


@runtime_checkable
class HeadlampTester(Protocol):
    """What these items need from a headlamp tester driver (``mqd6a``)."""

    device_id: str

    async def configure(
        self,
        lamp_system: Literal[2, 4] | None = None,
        beams: Literal["high", "low", "both"] | None = None,
    ) -> None: ...
    async def measure(self, side: Literal["left", "right", "both"] = "both") -> tuple[Any, ...]: ...
    async def home(self) -> None: ...
    async def stop(self) -> None: ...
    async def read_all(self) -> HeadlampResult: ...


class State(enum.Enum):
    """Steps of a headlamp item."""

    IDLE = enum.auto()
    SETUP = enum.auto()
    LEFT = enum.auto()
    RIGHT = enum.auto()
    HOMING = enum.auto()
    READING = enum.auto()
    JUDGING = enum.auto()
    DONE = enum.auto()


TRANSITIONS: Final = {
    State.IDLE: frozenset({State.SETUP, State.JUDGING}),
    State.SETUP: frozenset({State.LEFT}),
    State.LEFT: frozenset({State.RIGHT}),
    State.RIGHT: frozenset({State.HOMING}),
    State.HOMING: frozenset({State.READING}),
    State.READING: frozenset({State.JUDGING}),
    State.JUDGING: frozenset({State.DONE}),
}
SIDES: Final[tuple[tuple[Side, State], ...]] = (("left", State.LEFT), ("right", State.RIGHT))


@dataclass(frozen=True, slots=True)
class HeadlampRun:
    """The inspection's one tester run, shared by its headlamp items."""

    measured_by: str  # the item code that ran the tester
    lamp_system: int
    device_id: str | None = None
    readings: dict[str, LampReading] = field(default_factory=dict)
    intensities_cd: dict[str, int] = field(default_factory=dict)  # calibrated, high beams
    side_faults: dict[str, str] = field(default_factory=dict)  # side -> tester error
    evidence: Evidence | None = None
    error: str | None = None  # the run failed as a whole (device lost, NAK, timeout)


@dataclass(frozen=True, slots=True)
class LimitKeys:
    """The limit keys that apply to one lamp of one vehicle."""

    lamp: str
    pair: str | None  # the four-lamp rule, when it applies and the table has it


class HeadlampItem:
    """One of H1..H4."""

    needs: tuple[DeviceClass, ...] = (DeviceClass.HEADLAMP_TESTER,)

    def __init__(self, code: str) -> None:
        self.position = POSITIONS[code]

    async def run(self, ctx: ItemContext) -> ItemOutcome:
        """Measure (first headlamp item only) and judge this lamp."""
        table = load_table(TABLE)
        keys = self._keys(ctx, table)
        machine = Machine(ctx.item_code, State.IDLE, TRANSITIONS)
        run: HeadlampRun | None = ctx.state.extra.get(RUN_KEY)
        if run is None:
            run = await self._measure(ctx, machine, table)
        elif run.error is not None:
            raise ItemAborted(f"the headlamp tester run ({run.measured_by}) failed: {run.error}")
        else:
            ctx.progress(
                "headlamp_reused",
                f"{self.position.label} lamp: judged from the tester run of {run.measured_by}",
            )
        machine.go(State.JUDGING)
        outcome = self._judge(ctx, run, table, keys)
        machine.go(State.DONE)
        return outcome

    # --- limits ---------------------------------------------------------------------------
    def _keys(self, ctx: ItemContext, table: LimitTable) -> LimitKeys:
        """The limit keys for this lamp, or ``ItemAborted`` when none can apply."""
        order, code = ctx.order, ctx.item_code
        row = table_row(order.category.value)
        if row is None:
            raise ItemAborted(f"{code}: a {order.category.value} has no headlamps to judge")
        if self.position.lamp == "aux" and order.headlamp_system == 2:
            raise ItemAborted(
                f"{code}: the {self.position.label} lamp does not exist on a 2-lamp system"
            )
        lamp = intensity_key(row, order.inspection_type, order.headlamp_system)
        if lamp not in table.limits:
            raise ItemAborted(f"{code}: limit table {table.name} has no {lamp}")
        pair = pair_rule_key(row, order.inspection_type) if order.headlamp_system == 4 else None
        return LimitKeys(lamp, pair if pair in table.limits else None)

    # --- the tester run -------------------------------------------------------------------
    async def _measure(
        self, ctx: ItemContext, machine: Machine[State], table: LimitTable
    ) -> HeadlampRun:
        """Run the tester once for the whole inspection and keep the result in the state."""
        async with ctx.hold(DeviceClass.HEADLAMP_TESTER) as tester:
            if not isinstance(tester, HeadlampTester):
                raise ItemAborted(
                    f"{ctx.item_code}: the headlamp tester's driver cannot run a lamp test"
                    " (needs configure / measure / home / read_all, e.g. protocol mqd6a)"
                )
            try:
                run = await self._run_tester(ctx, machine, tester)
            except DriverError as exc:  # later items abort with this reason, no second run
                error = f"{type(exc).__name__}: {exc}"
                failed = HeadlampRun(ctx.item_code, ctx.order.headlamp_system, error=error)
                ctx.state.extra[RUN_KEY] = failed
                with contextlib.suppress(DriverError):  # S4 stops the head after an error
                    await tester.stop()
                raise
        ctx.state.extra[RUN_KEY] = run
        self._add_total(ctx, run, table)
        return run

    async def _run_tester(
        self, ctx: ItemContext, machine: Machine[State], tester: HeadlampTester
    ) -> HeadlampRun:
        """Settings, left side, right side, home, read every record (the S4 sequence)."""
        system = ctx.order.headlamp_system
        machine.go(State.SETUP)
        ctx.progress(
            "headlamp_setup",
            f"headlamp tester set for a {system}-lamp system: switch the high beams on",
            lamp_system=system,
        )
        await tester.configure(lamp_system=system)
        faults: dict[str, str] = {}
        for side, state in SIDES:
            machine.go(state)
            ctx.progress(f"headlamp_{side}_measuring", f"headlamp {side} measuring")
            try:
                await tester.measure(side)
            except DeviceFault as exc:  # no lamp / measurement error: the other side still counts
                faults[side] = str(exc)
                ctx.progress(f"headlamp_{side}_fault", f"headlamp {side}: {exc}", reason=str(exc))
        machine.go(State.HOMING)
        ctx.progress("headlamp_homing", "headlamp tester returning home")
        await tester.home()
        machine.go(State.READING)
        result = await tester.read_all()
        return self._collect(ctx, tester.device_id, system, result.lamps, faults)

    def _collect(
        self,
        ctx: ItemContext,
        device_id: str,
        system: int,
        lamps: tuple[LampReading, ...],
        faults: dict[str, str],
    ) -> HeadlampRun:
        """The run's readings (intensities calibrated), published and kept as evidence."""
        correct = ctx.corrector(device_id, INTENSITY_CHANNEL)
        intensities = {r.slot: round(correct(r.intensity_cd)) for r in lamps if r.beam == "high"}
        for slot, value in intensities.items():
            ctx.progress(
                "headlamp_lamp_measured",
                f"{slot.replace('_', ' ')} beam {value} cd",
                slot=slot,
                intensity_cd=value,
            )
        document = {
            "device_id": device_id,
            "measured_by": ctx.item_code,
            "lamp_system": system,
            "side_faults": faults,
            "readings": [dataclasses.asdict(r) for r in lamps],
            "intensities_cd": intensities,  # as judged: after the lane's calibration
        }
        evidence = ctx.evidence.put("headlamp_readings", document, samples=len(lamps))
        readings = {r.slot: r for r in lamps}
        return HeadlampRun(
            ctx.item_code, system, device_id, readings, intensities, faults, evidence
        )

    def _add_total(self, ctx: ItemContext, run: HeadlampRun, table: LimitTable) -> None:
        """Judge all high beams together, for the summary record, when all were measured."""
        complete = all(s in run.intensities_cd for s in expected_high_slots(run.lamp_system))
        if run.side_faults or not complete:
            return  # a partial sum would pass for the wrong reason
        total = table.judge(
            TOTAL_KEY, "headlamp_high_beam_total", total_high_cd(run.intensities_cd)
        )
        ctx.state.summary.append(total)
        ctx.progress(
            "headlamp_total",
            f"all high beams together {total.value:.0f} cd",
            total_cd=total.value,
            verdict=None if total.verdict is None else total.verdict.value,
        )

    # --- judgement ------------------------------------------------------------------------
    def _judge(
        self, ctx: ItemContext, run: HeadlampRun, table: LimitTable, keys: LimitKeys
    ) -> ItemOutcome:
        """This lamp's verdict from the run's readings and the limits table."""
        label, slot = self.position.label, self.position.high_slot
        intensity = run.intensities_cd.get(slot)
        if intensity is None:
            why = run.side_faults.get(self.position.side, "the tester returned no reading")
            raise ItemAborted(f"{ctx.item_code}: {label} high beam not measured: {why}")
        value = table.judge(keys.lamp, "high_beam_intensity", intensity)
        measurements = [measured("lamp_system", run.lamp_system), value]
        verdict, reason = overall([value.verdict]), None
        pair = best_pair(run.intensities_cd)
        if value.verdict is Verdict.FAIL and keys.pair is not None and pair is not None:
            name, weaker = pair
            pair_value = table.judge(keys.pair, f"{name}_pair_weaker_high_beam_intensity", weaker)
            measurements.append(pair_value)
            verdict = four_lamp_verdict(value.verdict, pair_value.verdict)
            if verdict is Verdict.PASS:
                reason = (
                    f"four-lamp rule (unverified, mem): the {name} pair meets the two-lamp value"
                )
        measurements += self._offsets(run)
        ctx.progress(
            "headlamp_judged",
            f"{label} high beam {intensity} cd: {verdict.value}",
            intensity_cd=intensity,
            verdict=verdict.value,
        )
        return ItemOutcome(
            verdict,
            measurements,
            devices=[run.device_id] if run.device_id else [],
            reason=reason,
            limit_set=table.name,
            evidence=[run.evidence] if run.evidence else [],
            name=f"headlamp {label} high beam",
        )

    def _offsets(self, run: HeadlampRun) -> list[Measurement]:
        """Beam positions of this lamp (high, and low for the outer lamp), recorded only."""
        out: list[Measurement] = []
        slots = (self.position.high_slot, self.position.low_slot)
        for reading in (run.readings.get(s) for s in slots if s is not None):
            if reading is not None:
                out += offset_measurements(
                    reading.beam,
                    reading.horizontal_offset_mm_at_10m,
                    reading.vertical_offset_mm_at_10m,
                    reading.height_mm,
                    reading.height_ratio,
                )
        return out
