"""B1..B5 service brake per axle and B0 parking brake, on a roller brake tester.

States (explicit; see ``TRANSITIONS``)::

    IDLE -> POSITIONING -> WEIGHING -> DRAG -> BRAKING -> JUDGING -> LIFT_UP -> DONE

    B0 does not weigh (POSITIONING -> DRAG); DRAG -> JUDGING when the pedal never moved;
    JUDGING -> DONE when B0 follows (the vehicle stays on the rollers, lift down).

Service item Bn: the axle is driven onto the rollers and the lift lowered; its static
load is weighed (on the lane's axle weigher when it has one, else by the brake tester's
own weighing); the tester is zeroed and started: the rollers turn with the pedal released
(drag), then the inspector brakes until lock-up, maximum or the tester's timeout; the
stream gives the curve, the tester's result the maxima and the force pair at the largest
difference. Then the lift rises and the vehicle drives on, unless B0 is next in the
order: then it stays on the rollers (as lane software does) and B0 pulls the hand brake
on the same axle. Once every axle of the order is done, the whole-vehicle brake ratio
goes to the summary record. Formulas: ``brake_calc``; judgement: ``brake_judge``;
the upload curve: ``curve``. See docs/items-brake.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

from drivers.devices.base import DeviceClass
from drivers.devices.jxgt2_brake import BrakeSample, BrakeTestResult, WheelLoads
from gateway.inspection import brake_judge as judge
from gateway.inspection.brake_weighing import MIN_LOAD_KG, plate_loads, roller_loads
from gateway.inspection.curve import upload_string
from gateway.inspection.items import (
    ItemAborted,
    ItemContext,
    ItemOutcome,
    ItemProcedure,
    overall,
)
from gateway.inspection.machine import Machine
from gateway.inspection.order import InspectionOrder
from gateway.limits import load_table
from gateway.records import Evidence, Measurement

LIMIT_SET: Final = "gb7258-2017"
#: service brake item code -> axle number (PSB 18C81 B1..B5)
AXLE_ITEMS: Final[dict[str, int]] = {f"B{n}": n for n in range(1, 6)}
PARKING_ITEM: Final = "B0"
#: wheels settle in the rollers after the lift goes down, before weighing (lane software
#: waits 5-8 s; the vehicle's suspension and the load cells need a moment)
SETTLE_S: Final = 2.0
#: live force values on the progress topic: one event per this much device time (4 Hz)
LIVE_PERIOD_S: Final = 0.25
#: every n-th streamed sample (100 a second) is shown by ``lanegw monitor``: 25 a second
MONITOR_EVERY: Final = 4
#: InspectionState.extra key: axles on which a wheel locked (for the road-test advice)
LOCKED_AXLES: Final = "brake_locked_axles"


@runtime_checkable
class BrakeTester(Protocol):
    """What these items need from a roller brake tester driver (``jxgt2``)."""

    async def lift_down(self) -> None: ...
    async def lift_up(self) -> None: ...
    async def zero(self) -> None: ...
    async def read_wheel_loads(self) -> WheelLoads: ...
    async def run_brake_test(
        self, on_sample: Callable[[BrakeSample], None] | None = None
    ) -> BrakeTestResult: ...


class State(enum.Enum):
    """Steps of a brake item."""

    IDLE = enum.auto()
    POSITIONING = enum.auto()
    WEIGHING = enum.auto()
    DRAG = enum.auto()
    BRAKING = enum.auto()
    JUDGING = enum.auto()
    LIFT_UP = enum.auto()
    DONE = enum.auto()


TRANSITIONS: Final = {
    State.IDLE: frozenset({State.POSITIONING}),
    State.POSITIONING: frozenset({State.WEIGHING, State.DRAG}),  # B0 does not weigh
    State.WEIGHING: frozenset({State.DRAG}),
    State.DRAG: frozenset({State.BRAKING, State.JUDGING}),  # no onset: pedal never pressed
    State.BRAKING: frozenset({State.JUDGING}),
    State.JUDGING: frozenset({State.LIFT_UP, State.DONE}),  # DONE: stay for the B0 test
    State.LIFT_UP: frozenset({State.DONE}),
}


class _Live:
    """Follows the stream (inside the bus task): the braking onset, live forces at 4 Hz."""

    def __init__(
        self, ctx: ItemContext, machine: Machine[State], label: str, device_id: str
    ) -> None:
        self._ctx = ctx
        self._machine = machine
        self._label = label
        self._device_id = device_id
        self._last_t: float | None = None
        self._shown = 0

    def _monitored(self) -> bool:
        """Every ``MONITOR_EVERY``-th sample goes to ``lanegw monitor`` (25 a second)."""
        self._shown += 1
        return self._shown % MONITOR_EVERY == 1

    def __call__(self, sample: BrakeSample) -> None:
        if self._monitored():
            self._ctx.live(
                self._device_id,
                {
                    "force_left_dan": sample.force_left_dan,
                    "force_right_dan": sample.force_right_dan,
                    "braking": sample.braking,
                },
            )
        if sample.braking and self._machine.state is State.DRAG:
            self._machine.go(State.BRAKING)
            self._ctx.progress("brake_braking", f"{self._label} braking")
        if self._last_t is None or sample.t_s - self._last_t >= LIVE_PERIOD_S:
            self._last_t = sample.t_s
            left, right = round(sample.force_left_dan), round(sample.force_right_dan)
            self._ctx.progress(
                "brake_live",
                f"{self._label}: {left} / {right} daN",
                force_left_dan=left,
                force_right_dan=right,
            )


def _tester(device: object) -> BrakeTester:
    if not isinstance(device, BrakeTester):
        name = getattr(device, "device_id", type(device).__name__)
        raise ItemAborted(f"brake tester {name} cannot stream a roller brake test")
    return device


def _device_id(tester: object) -> str:
    return str(getattr(tester, "device_id", ""))


def calibrated(ctx: ItemContext, device_id: str, result: BrakeTestResult) -> BrakeTestResult:
    """The test with the lane's calibration of the tester's force channels applied to
    every sample and maximum (the record names that calibration: calibration_ref)."""
    left = ctx.corrector(device_id, "force_left_dan")
    right = ctx.corrector(device_id, "force_right_dan")
    samples = tuple(
        dataclasses.replace(
            s, force_left_dan=left(s.force_left_dan), force_right_dan=right(s.force_right_dan)
        )
        for s in result.samples
    )
    return dataclasses.replace(
        result,
        max_force_left_dan=left(result.max_force_left_dan),
        max_force_right_dan=right(result.max_force_right_dan),
        diff_force_left_dan=left(result.diff_force_left_dan),
        diff_force_right_dan=right(result.diff_force_right_dan),
        drag_force_left_dan=left(result.drag_force_left_dan),
        drag_force_right_dan=right(result.drag_force_right_dan),
        samples=samples,
    )


def _next_item(ctx: ItemContext) -> str | None:
    items = ctx.order.items
    index = items.index(ctx.item_code)
    return items[index + 1] if index + 1 < len(items) else None


async def _position(
    ctx: ItemContext, machine: Machine[State], tester: BrakeTester, text: str
) -> None:
    machine.go(State.POSITIONING)
    ctx.progress("brake_positioning", text)
    await tester.lift_down()
    await asyncio.sleep(ctx.seconds(SETTLE_S))
    ctx.progress("brake_on_rollers", "vehicle on rollers")


async def _weigh(
    ctx: ItemContext, machine: Machine[State], tester: BrakeTester, axle: int
) -> judge.StaticLoads:
    machine.go(State.WEIGHING)
    ctx.progress("brake_weighing", f"axle {axle}: weighing")
    loads = await plate_loads(ctx) or await roller_loads(ctx, _device_id(tester), tester)
    if loads.axle_kg < MIN_LOAD_KG:
        raise ItemAborted(f"axle {axle}: {loads.axle_kg:.0f} kg weighed, no vehicle on it")
    ctx.progress(
        "brake_weighed",
        f"axle {axle}: {loads.axle_kg:.0f} kg",
        axle_load_kg=loads.axle_kg,
        load_left_kg=loads.left_kg,
        load_right_kg=loads.right_kg,
    )
    return loads


async def _brake(
    ctx: ItemContext, machine: Machine[State], tester: BrakeTester, label: str, action: str
) -> BrakeTestResult:
    """Zero, run the test (drag, then braking), and return the tester's result."""
    await tester.zero()
    machine.go(State.DRAG)
    ctx.progress("brake_drag", f"{label}: rollers running, measuring drag; then {action}")
    device_id = _device_id(tester)
    live = _Live(ctx, machine, label, device_id)
    result = calibrated(ctx, device_id, await tester.run_brake_test(live))
    machine.go(State.JUDGING)
    if len(result.samples) < 2:
        raise ItemAborted(f"{label}: the tester streamed {len(result.samples)} sample(s)")
    return result


async def _release(
    ctx: ItemContext, machine: Machine[State], tester: BrakeTester, label: str, stay: bool
) -> None:
    """Raise the lift so the vehicle drives on, or keep it down for the parking test."""
    if stay:
        ctx.progress("brake_stay", f"{label} done: stay on the rollers, parking brake next")
        machine.go(State.DONE)
        return
    machine.go(State.LIFT_UP)
    ctx.progress("brake_lift_up", f"{label} done: drive on")
    await tester.lift_up()
    machine.go(State.DONE)


def _curve(ctx: ItemContext, axle: int, mode: str, result: BrakeTestResult) -> Evidence:
    """Keep the full curve as evidence, with its upload string for the regulator."""
    samples = result.samples
    left = [s.force_left_dan for s in samples]
    right = [s.force_right_dan for s in samples]
    interval_ms = round((samples[1].t_s - samples[0].t_s) * 1000.0, 3)
    text, step = upload_string(left, right, interval_ms)
    document = {
        "item": ctx.item_code,
        "axle": axle,
        "mode": mode,
        "force_unit": "daN",
        "interval_ms": interval_ms,
        "braking_onset_index": result.braking_onset_index,
        "t_s": [s.t_s for s in samples],
        "left_dan": left,
        "right_dan": right,
        "upload_step": step,
    }
    return ctx.evidence.put(
        "brake_curve", document, samples=len(samples), interval_ms=interval_ms, upload_string=text
    )


def _report(ctx: ItemContext, label: str, measurements: list[Measurement]) -> None:
    values = {m.name: m.value for m in measurements if m.verdict is not None}
    text = ", ".join(f"{name} {value}" for name, value in values.items())
    ctx.progress("brake_result", f"{label}: {text}", **values)


def _ordered_axles(order: InspectionOrder) -> list[str]:
    return [code for code in order.items if code in AXLE_ITEMS]


class AxleBrakeItem:
    """B1..B5: the service brake of one axle."""

    needs: tuple[DeviceClass, ...] = (DeviceClass.BRAKE_TESTER,)

    def __init__(self, axle: int) -> None:
        self.axle = axle

    async def run(self, ctx: ItemContext) -> ItemOutcome:
        """Weigh, brake and judge the axle; store it for B0 and the whole vehicle."""
        table, axle, label = load_table(LIMIT_SET), self.axle, f"axle {self.axle}"
        if axle > ctx.order.axle_count:
            raise ItemAborted(f"{ctx.item_code}: the vehicle has {ctx.order.axle_count} axles")
        machine = Machine(ctx.item_code, State.IDLE, TRANSITIONS)
        async with ctx.hold(DeviceClass.BRAKE_TESTER) as device:
            tester = _tester(device)
            await _position(ctx, machine, tester, f"{label}: drive onto the rollers")
            loads = await _weigh(ctx, machine, tester, axle)
            result = await _brake(ctx, machine, tester, label, "press the brake pedal")
            measurements = judge.axle_measurements(table, ctx.order, axle, loads, result)
            _report(ctx, label, measurements)
            await _release(ctx, machine, tester, label, _next_item(ctx) == PARKING_ITEM)
        self._remember(ctx, loads, result)
        evidence = [_curve(ctx, axle, "service", result)]
        return ItemOutcome(
            overall([m.verdict for m in measurements]),
            measurements,
            limit_set=table.name,
            evidence=evidence,
            name=f"service brake, axle {axle}",
        )

    def _remember(
        self, ctx: ItemContext, loads: judge.StaticLoads, result: BrakeTestResult
    ) -> None:
        """Share the axle with B0 and the summary; add the whole-vehicle ratio when last."""
        state, order = ctx.state, ctx.order
        left = loads.left_kg if loads.left_kg is not None else loads.axle_kg / 2
        right = loads.right_kg if loads.right_kg is not None else loads.axle_kg / 2
        # an axle plate weighs no wheels: halves are stored, only their sum is ever used
        state.axle_loads_kg[self.axle] = (left, right)
        state.axle_max_forces_dan[self.axle] = (
            result.max_force_left_dan,
            result.max_force_right_dan,
        )
        if result.locked_left or result.locked_right:
            state.extra.setdefault(LOCKED_AXLES, set()).add(self.axle)
        ordered = _ordered_axles(order)
        covered = {AXLE_ITEMS[code] for code in ordered} >= set(range(1, order.axle_count + 1))
        if covered and ordered[-1] == ctx.item_code:
            state.summary.extend(
                judge.vehicle_measurements(
                    load_table(LIMIT_SET),
                    order,
                    state.axle_loads_kg,
                    state.axle_max_forces_dan,
                    state.extra.get(LOCKED_AXLES, set()),
                )
            )


class ParkingBrakeItem:
    """B0: the parking brake, on the axle tested just before it (the vehicle stayed)."""

    needs: tuple[DeviceClass, ...] = (DeviceClass.BRAKE_TESTER,)

    async def run(self, ctx: ItemContext) -> ItemOutcome:
        """Pull the hand brake on the rollers and judge against the vehicle's weight."""
        table, order, state = load_table(LIMIT_SET), ctx.order, ctx.state
        axle = _parking_axle(ctx)
        missing = [a for a in range(1, order.axle_count + 1) if a not in state.axle_loads_kg]
        if missing:
            raise ItemAborted(f"B0 needs the static load of every axle; missing {missing}")
        vehicle_kg = sum(sum(state.axle_loads_kg[a]) for a in range(1, order.axle_count + 1))
        label = f"parking brake (axle {axle})"
        machine = Machine(ctx.item_code, State.IDLE, TRANSITIONS)
        async with ctx.hold(DeviceClass.BRAKE_TESTER) as device:
            tester = _tester(device)
            await _position(ctx, machine, tester, f"{label}: stay on the rollers")
            result = await _brake(ctx, machine, tester, label, "pull the parking brake")
            measurements = judge.parking_measurements(table, order, axle, vehicle_kg, result)
            _report(ctx, label, measurements)
            await _release(ctx, machine, tester, label, stay=False)
        return ItemOutcome(
            overall([m.verdict for m in measurements]),
            measurements,
            limit_set=table.name,
            evidence=[_curve(ctx, axle, "parking", result)],
            name=f"parking brake, axle {axle}",
        )


def _parking_axle(ctx: ItemContext) -> int:
    """The axle of the service item right before B0: the vehicle is still on it."""
    items = ctx.order.items
    index = items.index(ctx.item_code)
    previous = items[index - 1] if index > 0 else None
    if previous not in AXLE_ITEMS:
        raise ItemAborted(
            "B0 tests the axle on the rollers: order it right after the parking axle's item"
        )
    axle = AXLE_ITEMS[previous]
    if axle not in ctx.state.axle_max_forces_dan:
        raise ItemAborted(f"B0: axle {axle} was not measured, the vehicle may not be in place")
    return axle


#: item code -> procedure, merged into ``procedures.PROCEDURES``
BRAKE_PROCEDURES: Final[dict[str, ItemProcedure]] = {
    **{code: AxleBrakeItem(axle) for code, axle in AXLE_ITEMS.items()},
    PARKING_ITEM: ParkingBrakeItem(),
}
