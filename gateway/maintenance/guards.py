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
  (``check_coefficients``). Bounds are data, per channel: ``calibration_bounds.yaml``.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict

from gateway.commands import CommandError
from gateway.maintenance.calibration import Linear

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.config import DeviceConfig
    from gateway.supervisor import DeviceSupervisor


class ChannelBounds(BaseModel):
    """How far a calibration may move one channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantity: str | None  # the identity.ranges key naming the device's full scale
    full_scale: float  # used when the device's config names no range
    unit: str
    offset_pct: float  # largest |offset|, % of the measuring range
    gain: tuple[float, float]
    source: str
    confidence: Literal["std", "spec", "sec", "mem"]


class _BoundsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[str, ChannelBounds]


@cache
def channel_bounds() -> dict[str, ChannelBounds]:
    """The bounds of every channel that may be calibrated."""
    text = resources.files("gateway.maintenance").joinpath("calibration_bounds.yaml").read_text()
    return _BoundsFile.model_validate(yaml.safe_load(text)).channels


def bounds_for(channel: str) -> ChannelBounds:
    """The bounds of ``channel``; ``CommandError`` for a channel that has none."""
    bounds = channel_bounds().get(channel)
    if bounds is None:
        known = ", ".join(sorted(channel_bounds()))
        raise CommandError(f"calibration refused: {channel!r} has no calibration bounds ({known})")
    return bounds


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
    bounds = bounds_for(channel)
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
