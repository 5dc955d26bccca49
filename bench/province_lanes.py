"""The simulated lanes of ``bench.province``: a signing gateway per lane that inspects
vehicles on a time-compressed day and delivers like ``lanegw run`` with
``mqtt.delivery: server_ack``.

Each lane holds its records until their ids come back on its ``ack`` topic; records
unacknowledged ``ack_timeout_s`` after they were last sent are sent again, oldest first
(the daemon's rule). An inspection is the items of ``ITEMS`` (three brake items with
their curve, about 4 kB each; three small ones, about 1.3 kB) and its summary, each a
record chained and signed with the lane's own Ed25519 key (``gateway.integrity.Sealer``),
spread over the inspection's compressed duration. The latency of a record runs from its
first publish to its id acknowledged: through the station broker, the bridge, the
regional broker, a regional receiver's commit and back.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import aiomqtt
import uuid6
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.station_records import _brake_fields, _s1_fields
from gateway.integrity import GENESIS_HASH, Sealer
from gateway.mqtt import publish_bounded
from gateway.records import GatewayState, ResultRecord, Verdict

#: item code and record size of each record of an inspection (the summary comes last)
ITEMS: Final = (("B1", "brake"), ("B2", "brake"), ("B0", "brake"),
                ("H1", "s1"), ("H2", "s1"), ("S1", "s1"))  # fmt: skip
#: an inspection's real duration (items one after another), before compression
INSPECTION_S: Final = 420.0
#: share of items failed (the regulator's "failed items" queries find some)
FAIL_RATE: Final = 0.05


def _template(variant: str) -> dict[str, Any]:
    """A record body of the variant as JSON (its ids, times and chain set per record)."""
    fields = _s1_fields() if variant == "s1" else _brake_fields()
    now = datetime.now(UTC)
    record = ResultRecord.model_validate(
        {"record_id": "x", "seq": 1, "session_id": "x", "gateway_id": "x", "station": "x",
         "lane": "x", "verdict": Verdict.PASS, "started_at": now, "finished_at": now,
         **fields}
    )  # fmt: skip
    body: dict[str, Any] = json.loads(
        record.model_dump_json(exclude={"prev_hash", "signature", "replayed"})
    )
    return body


TEMPLATES: Final = {variant: _template(variant) for variant in ("s1", "brake")}


@dataclass
class Sent:
    """A record in the lane's outbox."""

    payload: bytes
    first_at: float
    last_at: float


@dataclass
class FakeLane:
    """One lane of one station, its day's schedule and what came of its records."""

    station: str
    lane: str
    starts: list[float]  # seconds after the day's start at which inspections begin
    inspection_s: float  # compressed duration of one inspection
    ack_timeout_s: float
    rng: random.Random
    seq: int = 0
    prev_hash: str = GENESIS_HASH
    outbox: dict[str, Sent] = field(default_factory=dict)  # record id -> record, by seq
    latencies: list[float] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # when each record's ack came
    resent: int = 0
    extra_acks: int = 0
    published: int = 0
    finished_at: float = 0.0

    def __post_init__(self) -> None:
        self.gateway_id = f"lanegw-{self.station}-{self.lane}"
        self.sealer = Sealer(Ed25519PrivateKey.generate())
        self.session = str(uuid6.uuid7())
        self.topic = f"lanegw/{self.station}/{self.lane}"
        self.changed = asyncio.Event()

    @property
    def expected(self) -> int:
        """Records this lane produces in its day."""
        return len(self.starts) * (len(ITEMS) + 1)

    def birth(self) -> bytes:
        """The retained birth message with the lane's key, signed (as a gateway signs it)."""
        state = GatewayState(
            online=True, gateway_id=self.gateway_id, station=self.station, lane=self.lane,
            session_id=self.session, public_key=self.sealer.public_key, ts=datetime.now(UTC),
        )  # fmt: skip
        return self.sealer.sign_json(state.model_dump_json())

    def record(self, inspection: int, code: str, variant: str, verdict: str) -> bytes:
        """The lane's next record, sealed into its chain."""
        self.seq += 1
        finished = datetime.now(UTC)
        body = dict(TEMPLATES[variant])
        body.update(
            record_id=str(uuid6.uuid7()), seq=self.seq, session_id=self.session,
            gateway_id=self.gateway_id, station=self.station, lane=self.lane,
            inspection_id=f"{self.station}{self.lane}{inspection:06d}", item_code=code,
            verdict=verdict, kind="summary" if code == "summary" else "item",
            started_at=(finished - timedelta(seconds=60)).isoformat(),
            finished_at=finished.isoformat(),
        )  # fmt: skip
        sealed = self.sealer.seal(body, self.prev_hash)
        self.prev_hash = sealed.hash
        return sealed.payload

    async def run(self, port: int, day: asyncio.Future[float]) -> None:
        """Connect, announce, inspect the day's vehicles (from the moment ``day`` gives),
        and stay until all is acked."""
        client = aiomqtt.Client(
            "127.0.0.1", port, identifier=self.gateway_id,
            protocol=aiomqtt.ProtocolVersion.V5, max_inflight_messages=32,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )  # fmt: skip
        async with client:
            await client.subscribe(f"{self.topic}/ack", qos=1)
            await client.publish(f"{self.topic}/state", self.birth(), qos=1, retain=True)
            async with asyncio.TaskGroup() as group:
                listener = group.create_task(self._listen(client))
                resender = group.create_task(self._resend(client))
                await self._inspect_all(client, await day)
                while self.outbox:
                    self.changed.clear()
                    await self.changed.wait()
                self.finished_at = time.perf_counter()
                listener.cancel()
                resender.cancel()

    async def _inspect_all(self, client: aiomqtt.Client, day_started: float) -> None:
        steps = len(ITEMS) + 1
        for number, start in enumerate(self.starts):
            for step, (code, variant) in enumerate((*ITEMS, ("summary", "s1"))):
                at = day_started + start + self.inspection_s * (step + 1) / steps
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                failed = code != "summary" and self.rng.random() < FAIL_RATE
                payload = self.record(number, code, variant, "fail" if failed else "pass")
                record_id = json.loads(payload)["record_id"]
                now = time.perf_counter()
                self.outbox[record_id] = Sent(payload, now, now)
                await publish_bounded(client, f"{self.topic}/results", payload, 1)
                self.published += 1

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            now = time.perf_counter()
            assert isinstance(message.payload, bytes)
            for record_id in json.loads(message.payload)["record_ids"]:
                sent = self.outbox.pop(record_id, None)
                if sent is None:
                    self.extra_acks += 1  # a resent record acknowledged again
                else:
                    self.latencies.append(now - sent.first_at)
                    self.acked_at.append(now)
            self.changed.set()

    async def _resend(self, client: aiomqtt.Client) -> None:
        """The daemon's rule: the oldest unacknowledged record overdue: all again, in order."""
        while True:
            await asyncio.sleep(self.ack_timeout_s / 4)
            oldest = next(iter(self.outbox.values()), None)
            if oldest is None or time.perf_counter() - oldest.last_at < self.ack_timeout_s:
                continue
            for sent in list(self.outbox.values()):
                await publish_bounded(client, f"{self.topic}/results", sent.payload, 1)
                sent.last_at = time.perf_counter()
                self.resent += 1


def day_schedule(
    per_day: int, day_s: float, inspection_s: float, rng: random.Random
) -> list[float]:
    """Start times of a lane's inspections: one per slot of the day, at a random moment
    of it (a lane inspects one vehicle at a time)."""
    slot = day_s / per_day
    idle = max(0.0, slot - inspection_s)
    return [n * slot + rng.uniform(0, idle) for n in range(per_day)]
