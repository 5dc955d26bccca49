"""Every payload the gateway publishes or accepts over MQTT, as pydantic models.

These are the published contract: ``lanegw schema`` prints their JSON Schemas and
``schemas/`` holds the exported copies (a test keeps them in sync). Field names carry
units (``force_left_dan``) where a value has one; times are UTC ISO 8601.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Final = "1.0"

Scalar = float | int | bool | str | None


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Verdict(enum.StrEnum):
    """Judgement of a value, an item or an inspection."""

    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    FAIL = "fail"
    ABORTED = "aborted"  # could not be measured: never judged as a fail
    NOT_JUDGED = "not_judged"  # measured, but no limit applies


class Limit(_Model):
    """The limit a value was judged against, and where it comes from."""

    low: float | None = None
    high: float | None = None
    unit: str | None = None
    source: str = Field(description="limit set and clause, e.g. 'GB7258-2017 table 7'")
    confidence: Literal["std", "spec", "sec", "mem"] = Field(
        description="std: read in the standard; spec: interface spec; sec: secondary; "
        "mem: recollection, unverified"
    )


class Measurement(_Model):
    """One measured or computed value with its unit and, when judged, limit and verdict."""

    name: str
    value: Scalar
    unit: str | None = None
    limit: Limit | None = None
    verdict: Verdict | None = None


class DeviceRef(_Model):
    """The device behind a record, as configured and as it identified itself."""

    id: str
    device_class: str
    protocol: str
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    certificate: str | None = None
    certificate_expires: str | None = None
    calibration_ref: str | None = None


class Evidence(_Model):
    """Raw data behind a record, kept in the local archive and referenced by hash."""

    kind: str = Field(description="e.g. 'brake_curve', 'raw_frames', 'emission_process'")
    sha256: str
    samples: int | None = None
    interval_ms: float | None = None
    upload_string: str | None = Field(
        default=None, description="the curve in the regulator's upload format, when it has one"
    )


RecordKind = Literal["item", "summary", "calibration", "check", "recovery"]

FlagCode = Literal["identical_curve", "no_noise", "above_range", "diluted_sample"]


class Flag(_Model):
    """A plausibility warning: the values look manipulated or impossible. Never a verdict."""

    code: FlagCode = Field(
        description="identical_curve: the same curve was recorded for another item; "
        "no_noise: a curve without sensor noise; above_range: a value beyond the device's "
        "measuring range; diluted_sample: CO+CO2 below the dilution minimum while sampling"
    )
    message: str
    evidence: str | None = Field(default=None, description="SHA-256 of the evidence concerned")


class StateRecovery(_Model):
    """What a technician's recovery of the gateway's state declared (kind ``recovery``):
    the explained gap and chain restart the station is to expect. docs/security.md."""

    problems: list[str] = Field(
        description="what was wrong: outbox_damaged, outbox_missing, sequence_behind, "
        "outbox_replaced, sequence_damaged, key_missing, key_mismatch"
    )
    lost_seq_first: int | None = Field(
        default=None, description="the first seq that may be lost (none lost: null)"
    )
    lost_seq_last: int | None = Field(
        default=None,
        description="the last seq that may be lost; records in first..last the station did "
        "not receive are gone for good",
    )
    chain_restarts: bool = Field(
        description="true when prev_hash is 64 zeros because the last hash was lost; false "
        "when it links to record lost_seq_last (or the last record before this one)"
    )
    previous_public_key: str | None = Field(
        default=None,
        description="the key earlier records were signed with, when this record starts a "
        "new key (the station must be told to trust the new one)",
    )
    technician: str
    note: str | None = None
    kept_aside: list[str] = Field(
        default_factory=list, description="damaged files moved aside (kept for analysis)"
    )


class ResultRecord(_Model):
    """A result record: one test item (or inspection summary) of one vehicle on one lane."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    record_id: str = Field(description="UUIDv7, time-ordered, unique")
    seq: int = Field(ge=1, description="per-gateway sequence number, survives restarts")
    session_id: str = Field(description="changes at every daemon start")
    gateway_id: str
    station: str
    lane: str
    kind: RecordKind = "item"
    inspection_id: str | None = None
    plate: str | None = Field(
        default=None, description="the vehicle's plate, on the records of an inspection"
    )
    attempt: int = Field(default=1, ge=1)
    item_code: str = Field(description="regulator item code, e.g. B1, H1, S1")
    item_name: str | None = None
    devices: list[DeviceRef] = Field(default_factory=list)
    measurements: list[Measurement] = Field(default_factory=list)
    verdict: Verdict
    reason: str | None = Field(default=None, description="why aborted or flagged")
    limit_set: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    flags: list[Flag] = Field(
        default_factory=list, description="plausibility warnings; they never change a verdict"
    )
    started_at: datetime
    finished_at: datetime
    recovery: StateRecovery | None = Field(
        default=None,
        exclude_if=lambda value: value is None,  # only records of kind recovery carry it
        description="kind recovery only: the state recovery this record declares",
    )
    canon: Literal["rfc8785"] | None = Field(
        default=None,
        description="how the signed body is canonicalized: rfc8785 (JCS); absent on records"
        " signed before it (Python's sorted-keys JSON)",
    )
    prev_hash: str = Field(
        default="", description="SHA-256 of the previous record's body (hash chain per gateway)"
    )
    signature: str = Field(
        default="", description="Ed25519 signature (base64) of this record's canonical body"
    )
    replayed: bool = Field(
        default=False,
        description="true when published after an outage (produced while offline, or resent)",
    )


class DeviceInventoryItem(_Model):
    """A configured device, as announced in the birth message."""

    id: str
    device_class: str
    protocol: str
    bus: str
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    certificate: str | None = None


class GatewayState(_Model):
    """Retained on ``state``: the birth message, or (as the will) the gateway going offline."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    online: bool
    gateway_id: str
    station: str
    lane: str
    session_id: str | None = None
    version: str | None = None
    config_hash: str | None = None
    started_at: datetime | None = None
    devices: list[DeviceInventoryItem] = Field(default_factory=list)
    outbox_alarm: bool = False
    public_key: str | None = Field(
        default=None, description="the gateway's Ed25519 public key (base64 raw), signs records"
    )
    ts: datetime
    signature: str | None = Field(
        default=None,
        description="Ed25519 signature (base64) by the gateway's key of this state's RFC 8785 "
        "form without this field: a station believes no state its gateway did not sign",
    )


class Availability(enum.StrEnum):
    """Device availability as the supervisor sees it."""

    ONLINE = "online"
    DEGRADED = "degraded"  # answering, but with errors
    OFFLINE = "offline"  # not answering; retried with backoff
    STARTING = "starting"


class DeviceStatus(_Model):
    """Retained on ``devices/{device}/status``."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    device: str
    device_class: str
    availability: Availability
    since: datetime
    last_error: str | None = None
    consecutive_failures: int = 0
    ts: datetime


class Telemetry(_Model):
    """Live values on ``telemetry/{device}`` (QoS 0, rate-limited)."""

    device: str
    ts: datetime
    values: dict[str, Scalar]


class Progress(_Model):
    """A step of an inspection on ``progress`` (QoS 0, expires)."""

    inspection_id: str | None
    step: str = Field(description="machine-readable step, e.g. 'axle_braking'")
    message: str = Field(description="human text for a station display")
    item_code: str | None = None
    values: dict[str, Scalar] = Field(default_factory=dict)
    ts: datetime


class Ack(_Model):
    """The station server's acknowledgement on ``ack``: these records are stored."""

    record_ids: list[str] = Field(min_length=1, max_length=10_000)
    signature: str | None = Field(
        default=None,
        description="Ed25519 signature (base64) by the station's key of the ack's RFC 8785 "
        "form without this field; required when the lane pins mqtt.ack_keys",
    )


class CommandRequest(_Model):
    """A command on ``cmd/{name}``. With MQTT 5 the response topic and correlation data
    come as properties; with 3.1.1 they are given here."""

    args: dict[str, Any] = Field(default_factory=dict)
    response_topic: str | None = None
    correlation_id: str | None = None


class CommandResponse(_Model):
    """The answer to a command, on its response topic."""

    command: str
    ok: bool
    correlation_id: str | None = None
    error: str | None = None
    result: dict[str, Any] = Field(default_factory=dict)
    ts: datetime


PUBLISHED_MODELS: dict[str, type[BaseModel]] = {
    "result-record": ResultRecord,
    "gateway-state": GatewayState,
    "device-status": DeviceStatus,
    "telemetry": Telemetry,
    "progress": Progress,
    "ack": Ack,
    "command-request": CommandRequest,
    "command-response": CommandResponse,
}
