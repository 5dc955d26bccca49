"""Which lane devices the environmental platform would lock: pure, no I/O.

"检查不通过或超过1天未上传检查信息，设备会被锁定" (CS-ENV §8: a failed check, or no check
uploaded for over a day, locks the device; regulator.md §2.4). For every device of an
online lane whose class has required checks (``upload.environmental.daily_checks``), each
required kind must have an upload the platform accepted, of a passed check, within
``check_validity_h``. Otherwise the device is locked with the reasons; the uploader sends
the lane's set to its gateway (``regulator_lock`` command), whose lockouts then refuse
the device for inspections until a check is uploaded and accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from station.upload.store import Upload

PENDING = ("queued", "sending", "retrying", "held")


def _latest(uploads: Iterable[Upload]) -> list[Upload]:
    return sorted(uploads, key=lambda u: u.ord, reverse=True)


def _reasons(kind: str, uploads: list[Upload], now: datetime, validity: timedelta) -> list[str]:
    """Why ``kind`` does not hold (empty: it holds). ``uploads``: newest first."""
    if not uploads:
        return [f"daily {kind} check not uploaded to the environmental platform"]
    latest = uploads[0]
    if latest.status in ("refused", "invalid"):
        answer = f"{latest.code or ''} {latest.message or ''}".strip()
        return [f"{kind} check refused by the environmental platform: {answer}"]
    if latest.status == "accepted":
        return _accepted_reasons(kind, latest, now, validity)
    earlier = [u for u in uploads[1:] if u.status == "accepted"]
    if earlier and not _accepted_reasons(kind, earlier[0], now, validity):
        return []  # the new one is on its way; the last accepted one still holds
    return [f"{kind} check not yet accepted by the environmental platform ({latest.status})"]


def _accepted_reasons(kind: str, upload: Upload, now: datetime, validity: timedelta) -> list[str]:
    if upload.inputs.get("verdict") != "pass":
        return [f"{kind} check failed (uploaded to the environmental platform)"]
    done = datetime.fromisoformat(str(upload.inputs["finished_at"]))
    if now - done > validity:
        return [f"{kind} check expired (last uploaded check {done:%Y-%m-%d %H:%M} UTC)"]
    return []


def regulator_locks(
    lanes: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    checks: Sequence[Upload],
    required: Mapping[str, Sequence[str]],
    validity_h: float,
    now: datetime,
) -> dict[str, dict[str, list[str]]]:
    """lane -> device -> reasons, for every lane in ``lanes`` (lane, its devices as the
    birth lists them); a lane with nothing locked maps to ``{}``."""
    validity = timedelta(hours=validity_h)
    by_device: dict[tuple[str, str, str], list[Upload]] = {}
    for upload in checks:
        key = (upload.lane or "", str(upload.inputs.get("device")), str(upload.inputs.get("kind")))
        by_device.setdefault(key, []).append(upload)
    out: dict[str, dict[str, list[str]]] = {}
    for lane, devices in lanes:
        locked: dict[str, list[str]] = {}
        for device in devices:
            device_id, device_class = str(device.get("id")), str(device.get("device_class"))
            reasons = []
            for kind in required.get(device_class, ()):
                found = _latest(by_device.get((lane, device_id, kind), []))
                reasons += _reasons(kind, found, now, validity)
            if reasons:
                locked[device_id] = reasons
        out[lane] = locked
    return out
