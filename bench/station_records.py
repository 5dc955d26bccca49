"""Signed, chained result records for the station benchmark, as a gateway publishes them.

Two sizes: ``s1``, a speedometer item (device, two measurements with a limit, a raw-frame
evidence hash: about 1.3 kB on the wire, like the outbox benchmark's), and ``brake``, an
axle's service brake item (B1: a dozen measurements, four with limits, and the brake curve
evidence with its ~2 kB regulator upload string: about 4 kB), the largest record a lane
sends every few minutes. Records are signed with the gateway's own ``Sealer``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Final

import uuid6
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.inspection.curve import upload_string
from gateway.integrity import GENESIS_HASH, Sealer
from gateway.records import (
    DeviceRef,
    Evidence,
    GatewayState,
    Limit,
    Measurement,
    ResultRecord,
    Verdict,
)

STATION: Final = "4401001"
VARIANTS: Final = ("s1", "brake")
#: the brake curve's samples: 2.5 s at 100 Hz, as a JXGT2 tester streams them
CURVE_SAMPLES: Final = 250
START: Final = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

SPEEDOMETER: Final = DeviceRef(
    id="speedometer", device_class="speedometer_tester", protocol="tlch10", vendor="Nanhua",
    model="TLCH-10", serial="SN-2291", certificate="JD-2025-0117",
    certificate_expires="2026-06-30",
)  # fmt: skip
BRAKE_TESTER: Final = DeviceRef(
    id="brake", device_class="brake_tester", protocol="jxgt2", vendor="Foshan",
    model="JXGT-2", serial="SN-0815", certificate="JD-2025-0093",
    certificate_expires="2026-09-30",
)  # fmt: skip


def _limit(low: float | None, high: float | None, unit: str, clause: str) -> Limit:
    return Limit(low=low, high=high, unit=unit, source=f"GB7258-2017 {clause}", confidence="std")


def _s1_fields() -> dict[str, object]:
    actual = Measurement(
        name="actual_speed_kmh", value=37.6, unit="km/h",
        limit=_limit(32.8, 40.0, "km/h", "4.10"), verdict=Verdict.PASS,
    )  # fmt: skip
    return {
        "item_code": "S1",
        "item_name": "speedometer",
        "devices": [SPEEDOMETER],
        "measurements": [Measurement(name="indicated_speed_kmh", value=40.0, unit="km/h"), actual],
        "evidence": [Evidence(kind="raw_frames", sha256="ab" * 32, samples=212)],
    }


def _curve() -> str:
    """A braking curve: drag, a ramp to the peak, a little noise."""
    left = [20 + 480 * min(1.0, i / 120) + 7 * math.sin(i / 3) for i in range(CURVE_SAMPLES)]
    right = [18 + 455 * min(1.0, i / 125) + 6 * math.cos(i / 4) for i in range(CURVE_SAMPLES)]
    text, _ = upload_string(left, right, 10.0)
    return text


def _brake_fields() -> dict[str, object]:
    def value(name: str, number: float | str | bool, unit: str | None = None) -> Measurement:
        return Measurement(name=name, value=number, unit=unit)

    judged = [
        Measurement(
            name="axle_brake_ratio", value=68.4, unit="%",
            limit=_limit(60.0, None, "%", "7.2.4"), verdict=Verdict.PASS,
        ),
        Measurement(
            name="brake_unbalance", value=5.2, unit="%",
            limit=_limit(None, 20.0, "%", "7.2.5"), verdict=Verdict.PASS,
        ),
        Measurement(
            name="brake_drag_ratio_left", value=2.1, unit="%",
            limit=_limit(None, 10.0, "%", "7.2.6"), verdict=Verdict.PASS,
        ),
        Measurement(
            name="brake_drag_ratio_right", value=1.9, unit="%",
            limit=_limit(None, 10.0, "%", "7.2.6"), verdict=Verdict.PASS,
        ),
    ]  # fmt: skip
    return {
        "item_code": "B1",
        "item_name": "service brake, axle 1",
        "devices": [BRAKE_TESTER],
        "measurements": [
            value("axle", 1),
            value("axle_position", "front"),
            value("axle_load_kg", 1432.0, "kg"),
            value("load_left_kg", 721.0, "kg"),
            value("load_right_kg", 711.0, "kg"),
            value("max_force_left", 500.6, "daN"),
            value("max_force_right", 473.2, "daN"),
            value("diff_force_left", 312.4, "daN"),
            value("diff_force_right", 296.1, "daN"),
            value("locked_left", False),
            value("locked_right", False),
            *judged,
        ],
        "limit_set": "GB7258-2017",
        "evidence": [
            Evidence(
                kind="brake_curve",
                sha256="cd" * 32,
                samples=CURVE_SAMPLES,
                interval_ms=10.0,
                upload_string=_curve(),
            )
        ],
    }


class BenchGateway:
    """One gateway: its key, its birth message and its chained records."""

    def __init__(self, lane: str, station: str = STATION) -> None:
        self.lane, self.station = lane, station
        self.gateway_id = f"lanegw-{station}-{lane}"
        self.sealer = Sealer(Ed25519PrivateKey.generate())
        self.session = str(uuid6.uuid7())
        self.seq = 0
        self.prev_hash = GENESIS_HASH

    def birth(self) -> bytes:
        """The retained birth message announcing the gateway's key."""
        state = GatewayState(
            online=True,
            gateway_id=self.gateway_id,
            station=self.station,
            lane=self.lane,
            session_id=self.session,
            public_key=self.sealer.public_key,
            ts=datetime.now(UTC),
        )
        return self.sealer.sign_json(state.model_dump_json())  # a station believes signed ones

    def records(self, count: int, variant: str) -> list[bytes]:
        """The next ``count`` records of the chain, as published."""
        fields = _s1_fields() if variant == "s1" else _brake_fields()
        return [self._next(fields) for _ in range(count)]

    def _next(self, fields: dict[str, object]) -> bytes:
        self.seq += 1
        started = START + timedelta(seconds=self.seq * 40)
        record = ResultRecord.model_validate(
            {
                "record_id": str(uuid6.uuid7()),
                "seq": self.seq,
                "session_id": self.session,
                "gateway_id": self.gateway_id,
                "station": self.station,
                "lane": self.lane,
                "inspection_id": f"{self.station}2026{self.seq:08d}",
                "verdict": Verdict.PASS,
                "started_at": started,
                "finished_at": started + timedelta(seconds=35),
                **fields,
            }
        )
        body = json.loads(record.model_dump_json(exclude={"prev_hash", "signature", "replayed"}))
        sealed = self.sealer.seal(body, self.prev_hash)
        self.prev_hash = sealed.hash
        return sealed.payload
