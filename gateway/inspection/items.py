"""What a test item procedure is given and what it returns.

An item procedure (``ItemProcedure``) runs one regulator item (B1, H1, S1...) for one
order: it takes the devices it needs through ``ItemContext.hold``, reports progress,
and returns an ``ItemOutcome`` judged against the limits. A ``DriverError`` or an
``ItemAborted`` ends the item as aborted with the reason: an item that could not be
measured is never failed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from drivers.devices.base import DeviceClass
from gateway.errors import GatewayError
from gateway.evidence import EvidenceStore
from gateway.inspection.order import InspectionOrder
from gateway.maintenance.calibration import CalibrationBook
from gateway.records import Evidence, Measurement, Scalar, Verdict
from gateway.supervisor import DeviceSupervisor


class ItemAborted(GatewayError):
    """The item cannot go on (device offline, operator abort...); the message says why."""


@dataclass(slots=True)
class ItemOutcome:
    """The judged result of one item."""

    verdict: Verdict
    measurements: list[Measurement] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    reason: str | None = None
    limit_set: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    name: str | None = None


def overall(verdicts: list[Verdict | None]) -> Verdict:
    """Item verdict from value verdicts: any fail fails; otherwise pass if anything passed."""
    judged = [v for v in verdicts if v is not None]
    if Verdict.FAIL in judged:
        return Verdict.FAIL
    if Verdict.ABORTED in judged:
        return Verdict.ABORTED
    if Verdict.PASS in judged:
        return Verdict.PASS
    return Verdict.NOT_JUDGED


ProgressFn = Callable[[str, str, dict[str, Scalar]], None]


@dataclass(slots=True)
class InspectionState:
    """What items of one inspection share: results later items and the summary need.

    Axles are numbered from 1. Brake items store the static wheel loads and maximum
    forces of each axle here so B0 and the whole-vehicle brake ratio can be computed;
    ``summary`` collects measurements (such as the whole-vehicle brake ratio) that the
    closing summary record carries and judges.
    """

    axle_loads_kg: dict[int, tuple[float, float]] = field(default_factory=dict)
    axle_max_forces_dan: dict[int, tuple[float, float]] = field(default_factory=dict)
    summary: list[Measurement] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ItemContext:
    """The order, the lane's devices and the progress channel, for one item."""

    order: InspectionOrder
    item_code: str
    supervisors: dict[str, DeviceSupervisor]
    progress_fn: ProgressFn
    evidence: EvidenceStore
    state: InspectionState
    time_scale: float = 1.0
    lockouts: dict[str, list[str]] = field(default_factory=dict)
    calibrations: CalibrationBook | None = None
    used: list[str] = field(default_factory=list)
    #: evidence an item stored before it was cancelled (abort command): the runner puts
    #: it on the aborted record, so what was measured until then is not lost
    kept_evidence: list[Evidence] = field(default_factory=list)

    #: hands a held device's live values to ``lanegw monitor`` (polling pauses meanwhile)
    live_fn: Callable[[str, dict[str, Any]], None] | None = None

    def live(self, device_id: str, values: dict[str, Any]) -> None:
        """Show raw ``values`` of a held device (calibrated here) to its monitors."""
        if self.live_fn is not None:
            self.live_fn(device_id, self.corrected(device_id, values))

    def show(self, device_id: str, values: dict[str, Any]) -> None:
        """Show ``values`` of a held device that are already calibrated to its monitors."""
        if self.live_fn is not None:
            self.live_fn(device_id, values)

    def corrected(self, device_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` of ``device_id`` with the lane's active calibrations applied."""
        if self.calibrations is None:
            return values
        return self.calibrations.correct(device_id, values)

    def corrector(self, device_id: str, channel: str) -> Callable[[float], float]:
        """The calibration of one channel as a function (for per-sample streams)."""
        if self.calibrations is None:
            return float
        return self.calibrations.active(device_id, channel).apply

    def seconds(self, standard_s: float) -> float:
        """A procedure duration from the standard, scaled for benches (1.0 on a lane)."""
        return standard_s * self.time_scale

    def progress(self, step: str, message: str, **values: Scalar) -> None:
        """Publish a progress event for this item."""
        self.progress_fn(step, message, values)

    def supervisor_for(self, device_class: DeviceClass) -> DeviceSupervisor:
        """The lane's device of a class, or ``ItemAborted`` when there is none usable."""
        for supervisor in self.supervisors.values():
            if supervisor.device.device_class is device_class:
                reasons = self.lockouts.get(supervisor.device_id)
                if reasons:
                    why = "; ".join(reasons)
                    raise ItemAborted(
                        f"{device_class.value} {supervisor.device_id} is locked: {why}"
                    )
                if supervisor.availability.value == "offline":
                    raise ItemAborted(
                        f"{device_class.value} {supervisor.device_id} is offline"
                        f" ({supervisor.last_error})"
                    )
                return supervisor
        raise ItemAborted(f"this lane has no {device_class.value}")

    @contextlib.asynccontextmanager
    async def hold(self, device_class: DeviceClass) -> AsyncIterator[Any]:
        """Take the device of ``device_class`` for this item (polling pauses)."""
        supervisor = self.supervisor_for(device_class)
        if supervisor.device_id not in self.used:
            self.used.append(supervisor.device_id)
        purpose = f"inspection {self.order.inspection_id}, item {self.item_code}"
        async with supervisor.hold(purpose) as device:
            yield device


class ItemProcedure(Protocol):
    """One kind of test item."""

    #: the device classes the item needs (checked before an order is accepted)
    needs: tuple[DeviceClass, ...]

    async def run(self, ctx: ItemContext) -> ItemOutcome:
        """Run the item and judge it."""
