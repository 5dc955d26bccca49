"""The uploader's alarms, in the receiver's ``alarms`` table: a refused (or unwritable)
upload with the request and the answer as evidence, a lane device the platform would
lock, a vehicle the environmental centre locked. One alarm per upload (its id is the
alarm's ``gateway_id``: ``upload:{id}``), resolved when the upload is accepted."""

from __future__ import annotations

import json

from station.checks import Alarm, AlarmKind
from station.store import RecordStore
from station.store.store import now_text
from station.upload.store import Upload
from station.upload.wire import Exchange


def upload_alarm(upload: Upload, detail: str, exchange: Exchange | None = None) -> Alarm:
    """The alarm of an upload; its payload holds the request and the answer."""
    what = f"{upload.call} {upload.inspection_id or ''} {upload.item_code or ''}".strip()
    evidence = {"request": exchange.request if exchange else None,
                "response": exchange.response if exchange else None}  # fmt: skip
    return Alarm(
        AlarmKind.UPLOAD_REFUSED,
        f"upload {upload.upload_id} ({upload.platform} {what}) {detail}",
        gateway_id=f"upload:{upload.upload_id}",
        lane=upload.lane,
        record_id=upload.inputs.get("record_id"),
        payload=json.dumps(evidence, ensure_ascii=False).encode(),
    )


def lock_alarm(lane: str, device: str, reasons: list[str]) -> Alarm:
    """A lane device locked as the platform would lock it."""
    return Alarm(
        AlarmKind.REGULATOR_LOCK,
        f"{device} on {lane} locked: {'; '.join(reasons)}",
        gateway_id=f"lock:{device}",
        lane=lane,
    )


def vehicle_alarm(upload: Upload, epdesc: str) -> Alarm:
    """The environmental centre locked the vehicle (its registration's ``epdesc``)."""
    return Alarm(
        AlarmKind.REGULATOR_LOCK,
        f"vehicle of {upload.inspection_id} locked by the environmental centre: {epdesc}",
        gateway_id=f"vehicle:{upload.inspection_id}",
        lane=upload.lane,
    )


async def resolve(store: RecordStore, alarm: Alarm, note: str) -> None:
    """Close an open alarm (it stays, with the note)."""
    async with store.db.transaction() as tx:
        await tx.execute(
            "UPDATE alarms SET resolved_at = %s, resolution = %s WHERE dedupe = %s"
            " AND resolved_at IS NULL",
            (now_text(), note, alarm.dedupe),
        )
