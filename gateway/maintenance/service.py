"""Running a check on a live device: take it from its supervisor, run the check, log it,
publish the record. Used by the ``check`` command (control socket and MQTT)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from drivers.errors import DriverError
from gateway.commands import CommandError
from gateway.maintenance.checks import CheckArgumentError, check_spec
from gateway.maintenance.lockouts import FIVE_POINT, CheckEntry, log_five_point
from gateway.producer import RecordDraft
from gateway.records import Verdict, utc_now

if TYPE_CHECKING:
    from gateway.app import Gateway

log = structlog.get_logger("lanegw.checks")


async def run_check(gateway: Gateway, args: dict[str, Any]) -> dict[str, Any]:
    """Run ``args.kind`` on ``args.device`` with reference values ``args.values``."""
    device_id, kind = args.get("device"), args.get("kind")
    supervisor = gateway.supervisors.get(str(device_id))
    if supervisor is None:
        raise CommandError(f"no device {device_id!r} (devices: {', '.join(gateway.supervisors)})")
    try:
        spec = check_spec(supervisor.device.device_class, str(kind))
    except KeyError as exc:
        raise CommandError(str(exc).strip('"')) from None
    technician = args.get("technician")
    if not isinstance(technician, str) or not technician.strip():
        raise CommandError("check refused: technician required (who performs the check)")
    started = utc_now()
    try:
        async with supervisor.hold(f"{kind} check") as device:
            values = dict(args.get("values") or {})
            if spec.timed:  # a check that runs in time follows the lane's time scale
                values["time_scale"] = gateway.config.procedure_time_scale
            outcome = await spec.run(device, values)
    except CheckArgumentError as exc:
        raise CommandError(str(exc)) from None
    except DriverError as exc:  # the check could not be done: nothing is logged as failed
        raise CommandError(f"{kind} check on {device_id} could not run: {exc}") from None
    verdict = Verdict.PASS if outcome.passed else Verdict.FAIL
    record = await gateway.producer.produce(
        RecordDraft(
            item_code=f"check:{kind}",
            kind="check",
            item_name=spec.summary,
            verdict=verdict,
            devices=[supervisor.device_id],
            measurements=outcome.measurements,
            reason=outcome.note or None,
            started_at=started,
            finished_at=utc_now(),
        )
    )
    entry = CheckEntry(
        supervisor.device_id,
        spec.kind,
        outcome.passed,
        record.finished_at.timestamp(),
        record.record_id,
        technician.strip(),
        [m.model_dump(mode="json", exclude_none=True) for m in outcome.measurements],
    )
    if spec.kind == FIVE_POINT:
        log_five_point(gateway.checks, entry, int(outcome.measurements[0].value or 0))
    else:
        gateway.checks.append(entry)
    log.info("check_done", device=supervisor.device_id, kind=spec.kind, passed=outcome.passed)
    return {
        "device": supervisor.device_id,
        "kind": spec.kind,
        "passed": outcome.passed,
        "record_id": record.record_id,
        "note": outcome.note,
        "measurements": [m.model_dump(mode="json") for m in outcome.measurements],
        "locked": gateway.lockouts().get(supervisor.device_id, []),
    }
