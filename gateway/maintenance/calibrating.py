"""The daemon side of calibration: sample a channel, fit, apply, roll back.

Commands (control socket and MQTT allow-list): ``sample`` takes raw readings of a device
(uncorrected, so a new calibration is fitted against what the sensor really says),
``calibrate`` fits reference points and, with ``apply``, stores the calibration, applies
it at once and publishes a must-deliver ``calibration`` record; ``rollback`` returns a
channel to its previous calibration (also recorded). Each is refused as ``guards`` says
(an inspection running, the device in use, no technician or certificate, coefficients
beyond the channel's bounds).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeGuard, runtime_checkable

import structlog

from drivers.devices.base import Reading
from drivers.errors import DriverError
from gateway.commands import CommandError
from gateway.maintenance import guards
from gateway.maintenance.calibration import CalibrationEntry, CalibrationError, fit
from gateway.producer import RecordDraft
from gateway.records import Measurement, Verdict, utc_now
from gateway.supervisor import DeviceSupervisor

if TYPE_CHECKING:
    from gateway.app import Gateway

log = structlog.get_logger("lanegw.calibration")


@runtime_checkable
class ForceStream(Protocol):
    """A device whose force channels are only seen in a stream (the JXGT2)."""

    stream_channels: ClassVar[frozenset[str]]

    async def read_forces(self) -> list[Reading]: ...


def _supervisor(gateway: Gateway, args: dict[str, Any]) -> DeviceSupervisor:
    device = str(args.get("device"))
    if device not in gateway.supervisors:
        raise CommandError(f"no device {device!r} (devices: {', '.join(gateway.supervisors)})")
    return gateway.supervisors[device]


def _floats(args: dict[str, Any], name: str) -> list[float]:
    values = args.get(name)
    if not isinstance(values, list) or not values:
        raise CommandError(f"{name} must be a non-empty list of numbers")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise CommandError(f"{name} must be a list of numbers, not {values!r}") from None


async def sample(gateway: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    """``count`` raw readings of ``device`` (polling paused meanwhile); a ``channel`` only
    a stream carries (a JXGT2's forces) is read from one stream."""
    supervisor = _supervisor(gateway, args)
    count, interval = int(args["count"]), float(args["interval_s"])  # checked: SampleArgs
    guards.refuse_while_busy(gateway, supervisor)
    readings: list[dict[str, Any]] = []
    try:
        async with supervisor.hold("sampling for a calibration") as device:
            if stream_channel(device, args.get("channel")):
                readings = [r.as_dict() for r in await device.read_forces()][-count:]
            for index in range(0 if readings else count):
                if index:
                    await asyncio.sleep(interval)
                readings.append((await device.poll()).as_dict())
    except DriverError as exc:
        raise CommandError(f"{supervisor.device_id} did not answer: {exc}") from None
    return {"device": supervisor.device_id, "readings": readings}


def stream_channel(device: object, channel: object) -> TypeGuard[ForceStream]:
    """Whether ``channel`` of ``device`` is read from a stream, not from its poll."""
    return isinstance(device, ForceStream) and channel in device.stream_channels


async def calibrate(gateway: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    """Fit ``references`` to ``readings`` of ``channel``; store and apply if ``apply``."""
    supervisor = _supervisor(gateway, args)
    channel = str(args.get("channel"))
    references, readings = _floats(args, "references"), _floats(args, "readings")
    guards.refuse_while_busy(gateway, supervisor)
    guards.check_references(references)
    tolerance = guards.tolerance_for(supervisor.device.device_class, channel)
    current = gateway.calibrations.active(supervisor.device_id, channel)
    try:
        result = fit(references, readings, tolerance, current)
    except CalibrationError as exc:
        raise CommandError(f"calibration refused: {exc}") from None
    config = next(d for d in gateway.config.devices if d.id == supervisor.device_id)
    bounds = guards.check_coefficients(config, channel, result.coefficients, len(references) > 1)
    answer: dict[str, Any] = {
        "device": supervisor.device_id,
        "channel": channel,
        "gain": result.coefficients.gain,
        "offset": result.coefficients.offset,
        "previous": {"gain": current.gain, "offset": current.offset},
        "bounds": bounds,
        "errors_pct": result.errors_pct,
        "tolerance_pct": tolerance,
        "linear_ok": result.linear_ok,
        "applied": False,
        "history_file": str(gateway.calibrations.history_file(supervisor.device_id)),
    }
    if not args.get("apply"):
        return answer
    technician, certificate = guards.require_signatures(args)
    if not result.linear_ok:
        raise CommandError(
            f"calibration refused: linearity error {max(map(abs, result.errors_pct)):.2f} % "
            f"exceeds {tolerance} % for a {supervisor.device.device_class.value}"
        )
    entry = CalibrationEntry(
        supervisor.device_id,
        channel,
        "calibrate",
        result.coefficients.gain,
        result.coefficients.offset,
        time.time(),
        technician,
        certificate,
        args.get("next_due"),
        references,
        readings,
        result.errors_pct,
    )
    entry.record_id = await _publish(gateway, supervisor, entry, result.linear_ok)
    gateway.calibrations.add(entry)
    log.info(
        "calibration_applied",
        device=supervisor.device_id,
        channel=channel,
        gain=entry.gain,
        offset=entry.offset,
        technician=technician,
        record_id=entry.record_id,
    )
    return answer | {"applied": True, "record_id": entry.record_id}


async def rollback(gateway: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    """Return ``channel`` of ``device`` to its previous calibration."""
    supervisor = _supervisor(gateway, args)
    channel = str(args.get("channel"))
    guards.refuse_while_busy(gateway, supervisor)
    technician = args.get("technician")
    if not isinstance(technician, str) or not technician.strip():
        raise CommandError("rollback refused: technician required (who returns the channel)")
    stack = [e for e in gateway.calibrations.history(supervisor.device_id) if e.channel == channel]
    if not stack:
        raise CommandError(f"{supervisor.device_id} {channel}: nothing to roll back")
    entry = CalibrationEntry(
        supervisor.device_id, channel, "rollback", 1.0, 0.0, time.time(), technician.strip()
    )
    before = gateway.calibrations.active(supervisor.device_id, channel)
    try:
        gateway.calibrations.add(entry)
    except CalibrationError as exc:
        raise CommandError(str(exc)) from None
    now = gateway.calibrations.active(supervisor.device_id, channel)
    entry.gain, entry.offset = now.gain, now.offset
    record_id = await _publish(gateway, supervisor, entry, True)
    return {
        "device": supervisor.device_id,
        "channel": channel,
        "gain": now.gain,
        "offset": now.offset,
        "previous": {"gain": before.gain, "offset": before.offset},
        "record_id": record_id,
        "history_file": str(gateway.calibrations.history_file(supervisor.device_id)),
    }


async def _publish(
    gateway: Gateway, supervisor: DeviceSupervisor, entry: CalibrationEntry, ok: bool
) -> str:
    measurements = [
        Measurement(name=f"{entry.channel}_gain", value=entry.gain),
        Measurement(name=f"{entry.channel}_offset", value=entry.offset),
        *(Measurement(name=f"reference_{i}", value=v) for i, v in enumerate(entry.references)),
        *(
            Measurement(name=f"reading_before_{i}", value=v)
            for i, v in enumerate(entry.readings_before)
        ),
        *(
            Measurement(name=f"error_pct_{i}", value=round(v, 3))
            for i, v in enumerate(entry.errors_pct)
        ),
    ]
    now = utc_now()
    record = await gateway.producer.produce(
        RecordDraft(
            item_code=f"calibration:{entry.action}",
            kind="calibration",
            item_name=f"{entry.channel} {entry.action}",
            verdict=Verdict.PASS if ok else Verdict.FAIL,
            devices=[supervisor.device_id],
            measurements=measurements,
            started_at=now,
            finished_at=now,
            reason=f"certificate {entry.certificate}" if entry.certificate else None,
        )
    )
    return record.record_id
