"""The items ASM, VMAS, LUG and OBD: a sans-I/O machine each, driven on the lane's devices.

An item checks the order (method and fuel, as TSI and FA do), takes the devices its
machine names by role, runs the machine with ``sansio.drive`` and turns its ``Finish``
into the item's outcome. The machine's process data become the ``emission_process``
evidence (``obd_readout`` for OBD) whatever the outcome, so an aborted test keeps what
was measured.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Final

from drivers.devices.base import DeviceClass
from gateway.inspection.asm import AsmMachine
from gateway.inspection.calibrated import CalibratedDevice, trace_values
from gateway.inspection.dyno_calc import Formulas
from gateway.inspection.emissions_common import check_order
from gateway.inspection.items import ItemAborted, ItemContext, ItemOutcome
from gateway.inspection.lug_down import LugDownMachine
from gateway.inspection.obd_check import ObdCheckMachine
from gateway.inspection.sansio import ProcedureMachine, Say, drive
from gateway.inspection.vmas import VmasMachine
from gateway.limits import load_table
from gateway.records import Evidence, Verdict

#: the roles whose readings the machines get corrected by the lane's calibrations
CALIBRATED_ROLES: Final = frozenset({"dyno", "flowmeter"})
PETROL: Final = frozenset({"petrol", "hybrid"})
DIESEL: Final = frozenset({"diesel", "hybrid"})


def formulas() -> Formulas:
    """The formula constants (cached table)."""
    return Formulas.from_table(load_table("emission-formulas"))


def reference_mass(ctx: ItemContext) -> float:
    """The order's reference mass, or curb mass + 100 kg (``asm_reference_mass_extra_kg``)."""
    order = ctx.order
    if order.reference_mass_kg is not None:
        return float(order.reference_mass_kg)
    return order.curb_mass_kg + load_table("gb18285-2018").number("asm_reference_mass_extra_kg")


class MachineItem(abc.ABC):
    """Base of the four items: roles -> device classes, a machine per run."""

    needs: tuple[DeviceClass, ...] = ()
    #: device role in the machine -> device class on the lane
    roles: tuple[tuple[str, DeviceClass], ...] = ()
    name = "item"
    evidence_kind = "emission_process"

    @abc.abstractmethod
    def prepare(self, ctx: ItemContext) -> tuple[ProcedureMachine, str | None]:
        """Check the order; the machine and the limit set it judges by."""

    def configure(self, machine: ProcedureMachine, devices: dict[str, Any]) -> None:
        """Give the machine what it needs to know of the devices (default: nothing)."""
        return  # a hook: most methods need nothing

    async def run(self, ctx: ItemContext) -> ItemOutcome:
        """Run the machine on the lane's devices and judge."""
        machine, limit_set = self.prepare(ctx)

        async with contextlib.AsyncExitStack() as stack:
            devices: dict[str, Any] = {}
            ids: dict[str, str] = {}
            for role, device_class in self.roles:
                held = await stack.enter_async_context(ctx.hold(device_class))
                ids[role] = ctx.supervisor_for(device_class).device_id
                devices[role] = self._view(ctx, ids[role], held, role in CALIBRATED_ROLES)
            self.configure(machine, devices)
            say = self._say(ctx, ids.get("dyno"))
            try:
                finish = await drive(machine, devices, say, ctx.time_scale)
            except asyncio.CancelledError:  # aborted by command: keep the data, then go
                ctx.kept_evidence.append(self._evidence(ctx, machine))
                raise
        return ItemOutcome(
            finish.verdict,
            list(finish.measurements),
            reason=finish.reason,
            limit_set=limit_set,
            evidence=[self._evidence(ctx, machine)],
            name=self.name,
        )

    @staticmethod
    def _view(ctx: ItemContext, device_id: str, device: Any, calibrated: bool) -> Any:
        """The device as the lane's calibrations correct it (the dyno, the flowmeter)."""
        if not calibrated:
            return device
        return CalibratedDevice(device, lambda values: ctx.corrected(device_id, values))

    @staticmethod
    def _say(ctx: ItemContext, dyno_id: str | None) -> Callable[[Say], None]:
        """Progress to the station; a ``*_live`` step's speed trace also to the dyno's
        monitors (``lanegw monitor``)."""

        def say(action: Say) -> None:
            ctx.progress(action.step, action.message, **action.values)
            trace = trace_values(action.values) if action.step.endswith("_live") else {}
            if dyno_id is not None and trace:
                ctx.show(dyno_id, trace)

        return say

    def _evidence(self, ctx: ItemContext, machine: ProcedureMachine) -> Evidence:
        document = {**machine.evidence(), "time_scale": ctx.time_scale}
        rows = document.get("rows")
        interval = document.get("interval_s")
        return ctx.evidence.put(
            self.evidence_kind,
            document,
            samples=len(rows) if isinstance(rows, list) else None,
            interval_ms=float(interval) * 1000 if isinstance(interval, int | float) else None,
        )


class AsmItem(MachineItem):
    """ASM 5025/2540, GB 18285-2018 annex B."""

    needs = (DeviceClass.CHASSIS_DYNAMOMETER, DeviceClass.GAS_ANALYSER)
    roles = (("dyno", DeviceClass.CHASSIS_DYNAMOMETER), ("analyser", DeviceClass.GAS_ANALYSER))
    name = "ASM 5025/2540"

    def prepare(self, ctx: ItemContext) -> tuple[ProcedureMachine, str | None]:
        """Petrol order with emission_method asm."""
        check_order(ctx, "asm", PETROL)
        table = load_table("gb18285-2018")
        limit_set = ctx.order.emission_limit_set
        machine = AsmMachine(table, formulas(), reference_mass(ctx), limit_set)
        return machine, f"{table.name} limit {limit_set}"


class VmasItem(MachineItem):
    """VMAS simplified transient, GB 18285-2018 annex C."""

    needs = (DeviceClass.CHASSIS_DYNAMOMETER, DeviceClass.GAS_ANALYSER, DeviceClass.FLOWMETER)
    roles = (
        ("dyno", DeviceClass.CHASSIS_DYNAMOMETER),
        ("analyser", DeviceClass.GAS_ANALYSER),
        ("flowmeter", DeviceClass.FLOWMETER),
    )
    name = "VMAS"

    def prepare(self, ctx: ItemContext) -> tuple[ProcedureMachine, str | None]:
        """Petrol order with emission_method vmas."""
        check_order(ctx, "vmas", PETROL)
        table = load_table("gb18285-2018")
        limit_set = ctx.order.emission_limit_set
        machine = VmasMachine(table, formulas(), reference_mass(ctx), limit_set, ctx.time_scale)
        return machine, f"{table.name} limit {limit_set}"


class LugDownItem(MachineItem):
    """Lug-down, GB 3847-2018 annex B."""

    needs = (DeviceClass.CHASSIS_DYNAMOMETER, DeviceClass.OPACIMETER, DeviceClass.GAS_ANALYSER)
    roles = (
        ("dyno", DeviceClass.CHASSIS_DYNAMOMETER),
        ("opacimeter", DeviceClass.OPACIMETER),
        ("analyser", DeviceClass.GAS_ANALYSER),
    )
    name = "lug-down"

    def prepare(self, ctx: ItemContext) -> tuple[ProcedureMachine, str | None]:
        """Diesel order with emission_method lug_down and the engine's rated power and speed."""
        check_order(ctx, "lug_down", DIESEL)
        order = ctx.order
        if order.rated_power_kw is None or order.rated_speed_rpm is None:
            raise ItemAborted("lug-down needs the order's rated_power_kw and rated_speed_rpm")
        table = load_table("gb3847-2018")
        machine = LugDownMachine(
            table, formulas(), order.rated_power_kw, order.rated_speed_rpm,
            order.emission_limit_set, table.number("lug_down_sample_interval_s"),
        )  # fmt: skip
        return machine, f"{table.name} limit {order.emission_limit_set}"

    def configure(self, machine: ProcedureMachine, devices: dict[str, Any]) -> None:
        """The dyno's base inertia, for the scan's inertia compensation."""
        assert isinstance(machine, LugDownMachine)
        machine.base_inertia_kg = float(devices["dyno"].base_inertia_kg)


class ObdItem(MachineItem):
    """OBD check, GB 18285-2018 / GB 3847-2018 §7."""

    needs = (DeviceClass.OBD_READER,)
    roles = (("obd", DeviceClass.OBD_READER),)
    name = "OBD check"
    evidence_kind = "obd_readout"

    def prepare(self, ctx: ItemContext) -> tuple[ProcedureMachine, str | None]:
        """Any fuel; a vehicle without OBD (order) is not judged."""
        if ctx.order.obd_equipped is False:
            raise _NotApplicable("the order says the vehicle has no OBD")
        table = load_table("obd-checks")
        return ObdCheckMachine(table, ctx.order.vin), table.name

    async def run(self, ctx: ItemContext) -> ItemOutcome:
        """As the base, but a vehicle without OBD ends not judged."""
        try:
            return await super().run(ctx)
        except _NotApplicable as exc:
            return ItemOutcome(Verdict.NOT_JUDGED, reason=str(exc), name=self.name)


class _NotApplicable(Exception):
    """The item does not apply to this vehicle."""


DYNO_PROCEDURES: Final = {
    "ASM": AsmItem(),
    "VMAS": VmasItem(),
    "LUG": LugDownItem(),
    "OBD": ObdItem(),
}
