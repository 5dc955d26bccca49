"""Turning an outcome into a durable, signed record: the one place records are made.

Inspection items, summaries, equipment checks and calibrations all come through here:
the record gets its id (UUIDv7), the session and gateway identity and the configured
identity of its devices, then the outbox numbers, seals and commits it. If the disk
refuses the write (of the record, or of evidence it names that is still waiting to be
written), the record is kept in memory and retried: it is never dropped.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
import uuid6

from gateway.errors import OutboxFull
from gateway.records import (
    DeviceRef,
    Evidence,
    Flag,
    Measurement,
    RecordKind,
    ResultRecord,
    Verdict,
)

if TYPE_CHECKING:
    from gateway.app import Gateway

log = structlog.get_logger("lanegw.records")

#: wait before retrying a record the disk refused, seconds
RETRY_S = 1.0


@dataclass(slots=True)
class RecordDraft:
    """Everything a record says that its producer knows."""

    item_code: str
    verdict: Verdict
    started_at: datetime
    finished_at: datetime
    kind: RecordKind = "item"
    item_name: str | None = None
    devices: list[str] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)
    reason: str | None = None
    limit_set: str | None = None
    evidence: list[Evidence] = field(default_factory=list)
    inspection_id: str | None = None
    plate: str | None = None
    attempt: int = 1
    flags: list[Flag] = field(default_factory=list)


class RecordProducer:
    """Builds records for one gateway and commits them to its outbox."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway

    async def produce(self, draft: RecordDraft) -> ResultRecord:
        """Commit a record; returns it once it is durable."""
        gw = self._gw
        flags = draft.flags + self._plausibility_flags(draft)

        def build(seq: int) -> ResultRecord:
            return ResultRecord(
                record_id=str(uuid6.uuid7()),
                seq=seq,
                session_id=gw.session_id,
                gateway_id=gw.gateway_id,
                station=gw.config.station,
                lane=gw.config.lane,
                kind=draft.kind,
                inspection_id=draft.inspection_id,
                plate=draft.plate,
                attempt=draft.attempt,
                item_code=draft.item_code,
                item_name=draft.item_name,
                devices=self.device_refs(draft.devices),
                measurements=draft.measurements,
                verdict=draft.verdict,
                reason=draft.reason,
                limit_set=draft.limit_set,
                evidence=draft.evidence,
                flags=flags,
                started_at=draft.started_at,
                finished_at=draft.finished_at,
            )

        while True:
            try:
                gw.evidence.flush()  # the evidence a record names is on disk before it
                record = await gw.outbox.add(
                    build, offline=not gw.link.connected, seal=gw.sealer.seal
                )
            except (OutboxFull, OSError) as exc:
                log.error("record_not_stored_retrying", item=draft.item_code, error=str(exc))
                await asyncio.sleep(RETRY_S)
                continue
            gw.metrics.produced.inc()
            log.info(
                "record_produced",
                record_id=record.record_id,
                seq=record.seq,
                inspection_id=draft.inspection_id,
                item=draft.item_code,
                verdict=record.verdict.value,
            )
            return record

    def _plausibility_flags(self, draft: RecordDraft) -> list[Flag]:
        """Flags for the draft's evidence; a check that cannot run never holds a record up."""
        gw = self._gw
        try:
            flags = gw.plausibility.check(
                draft.evidence, draft.devices, draft.inspection_id, draft.item_code, draft.attempt
            )
        except (OSError, ValueError) as exc:  # evidence unreadable: the record goes out
            log.error("plausibility_check_failed", item=draft.item_code, error=str(exc))
            return []
        for flag in flags:
            gw.metrics.plausibility_flags.labels(flag.code).inc()
            log.warning(
                "record_flagged", item=draft.item_code, flag=flag.code, message=flag.message
            )
        return flags

    def device_refs(self, device_ids: list[str]) -> list[DeviceRef]:
        """The configured identity of each device."""
        configs = {d.id: d for d in self._gw.config.devices}
        refs = []
        for device_id in device_ids:
            cfg = configs[device_id]
            cert = cfg.identity.certificate
            refs.append(
                DeviceRef(
                    id=cfg.id,
                    device_class=cfg.device_class.value,
                    protocol=cfg.protocol,
                    vendor=cfg.identity.vendor,
                    model=cfg.identity.model,
                    serial=cfg.identity.serial,
                    certificate=cert.number if cert else None,
                    certificate_expires=cert.expires.isoformat() if cert else None,
                    calibration_ref=",".join(self._gw.calibrations.in_force(cfg.id)) or None,
                )
            )
        return refs
