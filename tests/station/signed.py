"""A signing gateway for the station tests: real Ed25519 keys and hash chains, so the
receiver's checks run on what a gateway really sends (and on forgeries of it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import uuid6
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.integrity import GENESIS_HASH, Sealer
from gateway.records import GatewayState, Measurement, ResultRecord, Verdict

STATION = "4401001"


class SigningGateway:
    """Produces a gateway's birth message and its chained, signed records."""

    def __init__(self, gateway_id: str, lane: str, station: str = STATION) -> None:
        self.gateway_id, self.lane, self.station = gateway_id, lane, station
        self.sealer = Sealer(Ed25519PrivateKey.generate())
        self.seq = 0
        self.prev_hash = GENESIS_HASH

    @property
    def public_key(self) -> str:
        return self.sealer.public_key

    def birth(self, online: bool = True) -> bytes:
        state = GatewayState(
            online=online,
            gateway_id=self.gateway_id,
            station=self.station,
            lane=self.lane,
            session_id="s1",
            public_key=self.public_key if online else None,
            ts=datetime.now(UTC),
        )
        return self.sealer.sign_json(state.model_dump_json())

    def record(self, inspection_id: str = "44010012026112901", **fields: Any) -> bytes:
        """The next record of the chain, as published."""
        self.seq += 1
        now = datetime.now(UTC)
        record = ResultRecord(
            record_id=str(uuid6.uuid7()),
            seq=self.seq,
            session_id="s1",
            gateway_id=self.gateway_id,
            station=self.station,
            lane=self.lane,
            inspection_id=inspection_id,
            item_code="S1",
            measurements=[Measurement(name="speed_kmh", value=40.2, unit="km/h")],
            verdict=Verdict.PASS,
            started_at=now,
            finished_at=now,
        )
        body = json.loads(record.model_dump_json(exclude={"prev_hash", "signature", "replayed"}))
        body.update(fields)
        sealed = self.sealer.seal(body, self.prev_hash)
        self.prev_hash = sealed.hash
        return sealed.payload


def forged(payload: bytes, **changes: Any) -> bytes:
    """A record with its values rewritten and its signature kept (a man in the middle)."""
    record = json.loads(payload)
    record.update(changes)
    return json.dumps(record).encode()
