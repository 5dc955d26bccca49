"""The handheld's results as records: one record per item group (NQ, UC, F1, DC, C1, as
the 18C80 call carries them), signed with the station's Ed25519 key and chained like a
gateway's, and stored through the receiver's own checks (``RecordStore.ingest``), so that
a manual result is verified, kept and exported exactly like an instrument result."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import uuid6

from gateway.errors import GatewayError
from gateway.integrity import GENESIS_HASH, Sealer, load_or_create_key
from gateway.records import Evidence, Measurement, ResultRecord, Verdict
from station.checks import Arrival, Decision
from station.flow.rules import manual_item, manual_table
from station.store import RecordStore

#: the lane name the station's manual records carry (the handheld is not a lane)
MANUAL_LANE: Final = "PDA"
DESCRIPTION_MAX: Final = 200


class ManualError(GatewayError):
    """A manual record could not be stored (the store refused it: see its alarm)."""


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One manual item as the inspector judged it."""

    n: int
    passed: bool
    description: str = ""


@dataclass(frozen=True, slots=True)
class PhotoRef:
    """A photo taken for the inspection (its bytes are in flow_photos)."""

    code: str
    sha256: str


@dataclass(slots=True)
class Submission:
    """What one inspector submitted for one attempt."""

    serial: str
    attempt: int
    inspector: str
    inspector_name: str
    results: list[ItemResult]
    photos: list[PhotoRef] = field(default_factory=list)
    started_at: datetime | None = None


def gateway_id_for(station: str) -> str:
    """The ``gateway_id`` of this station server's manual records."""
    return f"{station}-flow-{socket.gethostname()}"


class ManualSigner:
    """Signs and stores the manual records of one station server."""

    def __init__(self, store: RecordStore, station: str, key_file: Path) -> None:
        self._store = store
        self.station = station
        self.gateway_id = gateway_id_for(station)
        self._key = load_or_create_key(key_file)
        self._sealer = Sealer(self._key)
        self._session = str(uuid.uuid4())
        self._lock = asyncio.Lock()

    @property
    def public_key(self) -> str:
        """The key the records verify with (base64), pinned in the store at start."""
        return self._sealer.public_key

    def sign(self, data: bytes) -> bytes:
        """The station's signature of ``data`` (the report's verification code)."""
        return self._key.sign(data)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raises ``InvalidSignature`` unless ``signature`` is this station's of ``data``."""
        self._key.public_key().verify(signature, data)

    async def start(self) -> None:
        """Trust this server's key for its records."""
        await self._store.pin_keys({self.gateway_id: self.public_key})

    async def submit(self, submission: Submission) -> list[dict[str, Any]]:
        """Sign, chain and store one record per group; returns the records."""
        records = build_records(submission, self.station, self.gateway_id, self._session)
        async with self._lock:  # one chain: the sequence numbers follow one another
            seq, prev = await self._last()
            arrivals = []
            for record in records:
                seq += 1
                sealed = self._sealer.seal({**record, "seq": seq}, prev)
                prev = sealed.hash
                arrivals.append(Arrival(MANUAL_LANE, json.loads(sealed.payload), sealed.payload))
            outcomes = await self._store.ingest(arrivals)
        refused = [o for o in outcomes if o.decision is not Decision.STORE]
        if refused:
            reasons = "; ".join(a.detail for o in refused for a in o.alarms)
            raise ManualError(f"manual records not stored: {reasons or refused[0].decision}")
        return [a.record for a in arrivals]

    async def _last(self) -> tuple[int, str]:
        async with self._store.db.transaction() as tx:
            row = await tx.one(
                "SELECT seq, hash FROM records WHERE gateway_id = %s ORDER BY seq DESC LIMIT 1",
                (self.gateway_id,),
            )
        return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


def build_records(
    submission: Submission, station: str, gateway_id: str, session_id: str
) -> list[dict[str, Any]]:
    """The unsigned records of a submission, one per group, in the table's group order."""
    now = datetime.now(UTC)
    started = submission.started_at or now
    by_group: dict[str, list[ItemResult]] = {}
    for result in sorted(submission.results, key=lambda r: r.n):
        by_group.setdefault(manual_item(result.n).group, []).append(result)
    groups = manual_table().groups
    records = []
    for group in (g for g in groups if g in by_group):
        results = by_group[group]
        failed = [r for r in results if not r.passed]
        measurements = [_measurement(r) for r in results]
        measurements.append(Measurement(name="inspector", value=submission.inspector))
        evidence = [Evidence(kind=f"photo:{p.code}", sha256=p.sha256) for p in submission.photos]
        record = ResultRecord(
            record_id=str(uuid6.uuid7()),
            seq=1,  # set when sealed
            session_id=session_id,
            gateway_id=gateway_id,
            station=station,
            lane=MANUAL_LANE,
            kind="item",
            inspection_id=submission.serial,
            attempt=submission.attempt,
            item_code=group,
            item_name=groups[group],
            measurements=measurements,
            verdict=Verdict.FAIL if failed else Verdict.PASS,
            reason="；".join(f"{r.n} {manual_item(r.n).name}：{r.description}" for r in failed)
            or None,
            evidence=evidence if group == next(iter(by_group)) else [],
            started_at=started,
            finished_at=now,
        )
        body = record.model_dump(mode="json", exclude={"prev_hash", "signature", "replayed"})
        records.append(body)
    return records


def _measurement(result: ItemResult) -> Measurement:
    item = manual_item(result.n)
    return Measurement(
        name=f"{result.n:02d}.{item.tag}",
        value=result.description[:DESCRIPTION_MAX] if not result.passed else "",
        verdict=Verdict.PASS if result.passed else Verdict.FAIL,
    )


def manual_results(records: Sequence[dict[str, Any]]) -> dict[int, tuple[str, str, int]]:
    """{item number: (verdict, description, attempt)} of stored manual records, the
    latest record of an item winning (a resubmission after a send-back)."""
    found: dict[int, tuple[str, str, int]] = {}
    for record in records:
        for m in record.get("measurements", []):
            number, _, _tag = str(m.get("name", "")).partition(".")
            if number.isdigit() and m.get("verdict"):
                found[int(number)] = (str(m["verdict"]), str(m.get("value") or ""),
                                      int(record.get("attempt", 1)))  # fmt: skip
    return found
