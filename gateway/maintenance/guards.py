"""Guards on calibration: when a channel may be calibrated, by whom, and how far.

A calibration changes every later measurement of a legal-metrology instrument, so the
daemon refuses one (for ``sample``, ``calibrate`` and ``rollback`` alike, over MQTT and
the control socket):

- while an inspection runs on the lane, or while the device is held by a procedure, a
  check or another calibration (``refuse_while_busy``);
- without the technician who does it and the certificate of the reference used
  (``require_signatures``, when applying);
- from a single reference that is not 0: one point can only be a zero; a span needs two
  or more references (``check_references``);
- when the coefficients move the channel further than its bounds allow: the offset
  beyond ``offset_pct`` of the device's measuring range, a span's gain outside its range
  (``check_coefficients``);
- for a device class without a linearity tolerance (``tolerance_for``).

Bounds and tolerances are data, per channel and device class: ``calibration_bounds.yaml``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from drivers.devices.base import DeviceClass
from gateway.commands import CommandError
from gateway.maintenance.calibration import Linear

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.config import DeviceConfig
    from gateway.supervisor import DeviceSupervisor


Confidence = Literal["std", "spec", "sec", "mem", "unverified"]


class _Sourced(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    confidence: Confidence
    #: where an unverified figure comes from (the reference material has none)
    reasoning: str | None = None

    @model_validator(mode="after")
    def _reasoned(self) -> Self:
        if self.confidence == "unverified" and not self.reasoning:
            raise ValueError("an unverified figure needs its reasoning")
        return self


class ChannelBounds(_Sourced):
    """How far a calibration may move one channel."""

    quantity: str | None  # the identity.ranges key naming the device's full scale
    full_scale: float  # used when the device's config names no range
    unit: str
    offset_pct: float  # largest |offset|, % of the measuring range
    gain: tuple[float, float]
    #: this channel's linearity tolerance, % of the span (default: its device class's)
    tolerance_pct: float | None = None


class Tolerance(_Sourced):
    """The linearity a span must show after the fit, % of the calibrated span."""

    value: float


class _BoundsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance_pct: dict[DeviceClass, Tolerance]
    device_channels: dict[DeviceClass, dict[str, ChannelBounds]]
    channels: dict[str, ChannelBounds]


@cache
def _bounds_file() -> _BoundsFile:
    text = resources.files("gateway.maintenance").joinpath("calibration_bounds.yaml").read_text()
    return _BoundsFile.model_validate(yaml.safe_load(text))


def channel_bounds(device_class: DeviceClass | None = None) -> dict[str, ChannelBounds]:
    """The bounds of every channel that may be calibrated (on ``device_class``)."""
    data = _bounds_file()
    specific = data.device_channels.get(device_class, {}) if device_class else {}
    return data.channels | specific


def tolerances() -> dict[DeviceClass, Tolerance]:
    """The linearity tolerance of every device class that may be calibrated."""
    return _bounds_file().tolerance_pct


def bounds_for(channel: str, device_class: DeviceClass | None = None) -> ChannelBounds:
    """The bounds of ``channel``; ``CommandError`` for a channel that has none."""
    known = channel_bounds(device_class)
    bounds = known.get(channel)
    if bounds is None:
        names = ", ".join(sorted(known))
        raise CommandError(f"calibration refused: {channel!r} has no calibration bounds ({names})")
    return bounds


def tolerance_for(device_class: DeviceClass, channel: str) -> float:
    """The linearity tolerance, % of span, for ``channel`` of a ``device_class`` device;
    ``CommandError`` for a class without one (never a ``KeyError``)."""
    bounds = channel_bounds(device_class).get(channel)
    if bounds is not None and bounds.tolerance_pct is not None:
        return bounds.tolerance_pct
    tolerance = tolerances().get(device_class)
    if tolerance is None:
        known = ", ".join(sorted(c.value for c in tolerances()))
        raise CommandError(
            f"calibration refused: device class {device_class.value} has no linearity tolerance in "
            f"calibration_bounds.yaml (classes that can be calibrated: {known})"
        )
    return tolerance.value


def measuring_range(device: DeviceConfig, bounds: ChannelBounds) -> float:
    """The device's full scale for the channel: its configured range, else the default."""
    if bounds.quantity is not None and bounds.quantity in device.identity.ranges:
        return device.identity.ranges[bounds.quantity]
    return bounds.full_scale


def refuse_while_busy(gateway: Gateway, supervisor: DeviceSupervisor) -> None:
    """``CommandError`` while an inspection runs on the lane or the device is held."""
    running = gateway.runner.current_inspection
    if running is not None:
        raise CommandError(
            f"calibration refused: inspection {running} is running on this lane; "
            "calibrate between inspections, with nothing on the device"
        )
    if supervisor.held_for is not None:
        raise CommandError(
            f"calibration refused: {supervisor.device_id} is in use ({supervisor.held_for}); "
            "try again when it is free"
        )


def require_signatures(args: dict[str, Any]) -> tuple[str, str]:
    """The technician and certificate of an applied calibration (both required)."""
    technician, certificate = args.get("technician"), args.get("certificate")
    missing = [
        name
        for name, value in (("technician", technician), ("certificate", certificate))
        if not isinstance(value, str) or not value.strip()
    ]
    if missing:
        raise CommandError(
            f"calibration refused: {' and '.join(missing)} required to apply a calibration "
            "(who calibrates, and the certificate of the reference weights or gases used)"
        )
    return str(technician).strip(), str(certificate).strip()


def check_references(references: list[float]) -> None:
    """One reference can only be a zero; a span needs two or more."""
    if len(references) == 1 and references[0] != 0:
        raise CommandError(
            f"calibration refused: a single reference must be 0 (a zero), not "
            f"{references[0]:g}; a span needs two or more references, e.g. 0 and the "
            "reference value"
        )


def check_coefficients(
    device: DeviceConfig, channel: str, coefficients: Linear, span: bool
) -> dict[str, Any]:
    """``CommandError`` when the coefficients leave the channel's bounds; else the bounds
    as shown to the technician."""
    bounds = bounds_for(channel, device.device_class)
    full = measuring_range(device, bounds)
    limit = bounds.offset_pct / 100.0 * full
    unit = bounds.unit
    if abs(coefficients.offset) > limit:
        what = "zero" if not span else "span"
        raise CommandError(
            f"calibration refused: the {what} would set {channel}'s offset to "
            f"{coefficients.offset:+.3f} {unit}, more than {bounds.offset_pct:g} % of the "
            f"{full:g} {unit} range (±{limit:g} {unit}). Is something on the device (a "
            "vehicle on the plate, a load on the rollers, gas in the cell)? Clear it and "
            "try again; a sensor that needs more is out of order"
        )
    low, high = bounds.gain
    if span and not low <= coefficients.gain <= high:
        raise CommandError(
            f"calibration refused: the span's gain {coefficients.gain:.4f} is outside "
            f"{low:g}-{high:g} for {channel}: check the reference values and that the load "
            "or gas was really applied"
        )
    return {"range": full, "unit": unit, "max_offset": limit, "gain_range": [low, high]}
