"""The station receiver's config: one YAML file, validated completely before anything
starts (unknown keys are errors; every problem is reported with its line)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config import Ident, TlsConfig, load_model
from gateway.integrity import public_key_from_text
from station.flow.config import FlowConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StationMqtt(_Model):
    """Connection to the station's broker (MQTT 5: shared subscriptions)."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = Field(
        default="5", description="3.1.1 only for a broker without MQTT 5, with share_group null"
    )
    topic_root: Ident = "lanegw"
    client_id: str | None = Field(
        default=None, description="default lanegw-station-{station}-{hostname}-{pid}"
    )
    share_group: Ident | None = Field(
        default="lanegw-receivers",
        description="receivers in one group share the results; null: this one takes all",
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    username: str | None = None
    password_file: Path | None = Field(
        default=None, description="file holding the password; or env LANEGW_MQTT_PASSWORD"
    )
    tls: TlsConfig = TlsConfig()
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    acknowledge: bool = Field(
        default=True,
        description="acknowledge stored records on the lanes' ack topics; false: store "
        "only, another tier acknowledges (station and region, docs/scale.md)",
    )
    max_held: int = Field(
        default=400,
        ge=0,
        description="records received and not yet stored at which the receiver stops "
        "reading from the broker until a batch is stored (keep it at least 2 x "
        "checks.batch; the broker's max_queued_messages must hold the rest of a burst, "
        "docs/performance.md); 0: no bound",
    )


class DatabaseConfig(_Model):
    """Where records and alarms are kept."""

    url: str = Field(
        default="sqlite:///var/lib/lanegw-station/station.sqlite3",
        description="sqlite:///absolute/path, sqlite:relative/path, or postgresql://...",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite:", "postgresql://", "postgres://")):
            raise ValueError(f"database url must start with sqlite: or postgresql://, not {url!r}")
        return url

    partitions: Literal["none", "monthly"] = Field(
        default="none",
        description="monthly: records partitioned by the month of their id, with the "
        "regulator's indexes (PostgreSQL only: the regional database, docs/scale.md)",
    )

    transactions: Literal["per_gateway", "per_batch"] = Field(
        default="per_gateway",
        description="per_batch: one transaction (one commit) for a batch of many gateways' "
        "records, instead of one per gateway: the regional receivers (docs/scale.md)",
    )

    @model_validator(mode="after")
    def _partitions_need_postgres(self) -> DatabaseConfig:
        if self.partitions != "none" and self.url.startswith("sqlite:"):
            raise ValueError("database.partitions: monthly needs a postgresql:// url")
        return self


class TrustConfig(_Model):
    """Which gateway keys are believed. ``tofu``: the first key a gateway announces is
    registered; ``pinned``: only the keys listed here (a station with key handover)."""

    mode: Literal["tofu", "pinned"] = "tofu"
    keys: dict[str, str] = Field(
        default_factory=dict, description="gateway_id: public key (base64), always preferred"
    )
    ack_key_file: Path | None = Field(
        default=None,
        description="Ed25519 key signing the acks (created 0600 at first start); pin its "
        "public key (`lanegw station key`) in the lanes' mqtt.ack_keys",
    )

    @field_validator("keys")
    @classmethod
    def _keys_parse(cls, keys: dict[str, str]) -> dict[str, str]:
        for gateway_id, text in keys.items():
            try:
                public_key_from_text(text)
            except ValueError:
                raise ValueError(f"key of {gateway_id!r} is not a base64 Ed25519 key") from None
        return keys


class ChecksConfig(_Model):
    """Sequence checking."""

    gap_grace_s: float = Field(
        default=180.0,
        gt=0,
        description="a missing seq is alarmed once the record after it is this old; keep "
        "it above the gateways' mqtt.ack_timeout_s (late records are resent then)",
    )
    sweep_interval_s: float = Field(default=10.0, gt=0)
    batch: int = Field(default=200, ge=1, le=10_000, description="records per transaction")


class WebConfig(_Model):
    """The live lane page."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    full_vin: bool = Field(default=False, description="show whole VINs (default: masked)")


class StationMetrics(_Model):
    """Prometheus exporter; loopback by default."""

    enabled: bool = True
    address: str = "127.0.0.1"
    port: int = Field(default=9109, ge=0, le=65535)


PSB_ITEMS = ("B1", "B2", "B3", "B4", "B5", "B0", "H1", "H2", "H3", "H4", "S1")


class _PlatformUpload(_Model):
    enabled: bool = True
    url: str | None = Field(default=None, description="the platform's service URL")
    station_code: str | None = Field(
        default=None, description="the station's number at the platform (default: station)"
    )
    lane_codes: dict[str, str] = Field(
        default_factory=dict, description="lane: its number at the platform (default: the lane)"
    )
    device_codes: dict[str, str] = Field(
        default_factory=dict,
        description="'lane/device' or 'device': its registered number (default: the device id)",
    )
    fields_file: Path | None = Field(
        default=None, description="a province's variant of the field table (docs/regulator.md)"
    )
    time_sync_interval_h: float = Field(default=12.0, gt=0)


class PsbUpload(_PlatformUpload):
    """The 公安部 inspection-supervision interface (SOAP)."""

    jkxlh: str = Field(default="", description="the interface serial the platform issued")
    station_name: str | None = Field(default=None, description="检验机构名称 (18C83 pfjczmc)")
    software_id: str = Field(default="", description="备案编号 of the business software (18C50)")
    items: tuple[str, ...] = Field(default=PSB_ITEMS, description="items sent as 18C55/81/58")
    emission_results: bool = Field(default=True, description="send 18C83 per emission item")
    timeout_s: float = Field(default=10.0, gt=0)


class EnvUpload(_PlatformUpload):
    """The environmental (生态环境) networking platform (JSON, family A)."""

    jksqm: str = Field(default="", description="the 8-character interface code")
    timeout_s: float = Field(
        default=2.0, gt=0, description="no answer within 2 s is a communication failure"
    )
    daily_checks: dict[str, list[str]] = Field(
        default_factory=lambda: {"gas_analyser": ["leak", "zero", "low_flow"],
                                 "opacimeter": ["zero"],
                                 "chassis_dynamometer": ["coast_down"],
                                 "flowmeter": ["flowmeter"]},
        description="device class: the checks whose upload the platform requires each day",
    )  # fmt: skip
    check_validity_h: float = Field(default=24.0, gt=0)
    lock_lanes: bool = Field(
        default=True, description="lock a lane's device whose daily check upload is missing "
        "or refused, as the platform does (regulator_lock command)",
    )  # fmt: skip


class UploadConfig(_Model):
    """The regulator hand-off (docs/regulator.md): off unless enabled."""

    enabled: bool = False
    psb: PsbUpload = PsbUpload()
    environmental: EnvUpload = EnvUpload()
    retry_min_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0, description="looks for new records")
    lock_interval_s: float = Field(default=30.0, gt=0, description="re-sends lane locks")
    lease_s: float = Field(
        default=30.0, gt=0, description="a send unanswered this long (uploader killed) is redone"
    )

    @model_validator(mode="after")
    def _usable(self) -> UploadConfig:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("upload.retry_max_s must be >= upload.retry_min_s")
        for name, platform in (("psb", self.psb), ("environmental", self.environmental)):
            if self.enabled and platform.enabled and not platform.url:
                raise ValueError(f"upload.{name}.url is needed (or upload.{name}.enabled: false)")
            if self.lease_s <= platform.timeout_s:
                raise ValueError(f"upload.lease_s must be above upload.{name}.timeout_s")
        return self


class StationConfig(_Model):
    """``lanegw station run --config FILE``."""

    station: Ident | Literal["+"] = Field(
        description="station code, as in the lanes' topics; + for a regional receiver "
        "taking every station's lanes (docs/scale.md)"
    )
    mqtt: StationMqtt = StationMqtt()
    database: DatabaseConfig = DatabaseConfig()
    trust: TrustConfig = TrustConfig()
    checks: ChecksConfig = ChecksConfig()
    web: WebConfig = WebConfig()
    metrics: StationMetrics = StationMetrics()
    flow: FlowConfig = FlowConfig()
    timezone: str = Field(default="Asia/Shanghai", description="local time of exports")
    upload: UploadConfig = UploadConfig()

    @model_validator(mode="after")
    def _consistent(self) -> StationConfig:
        if self.mqtt.reconnect_max_s < self.mqtt.reconnect_min_s:
            raise ValueError("mqtt.reconnect_max_s must be >= mqtt.reconnect_min_s")
        if self.mqtt.protocol == "3.1.1" and self.mqtt.share_group is not None:
            raise ValueError("mqtt.share_group needs MQTT 5: set protocol 5, or share_group null")
        if self.flow.enabled and self.flow.serial_prefix is None and len(self.station) != 7:
            raise ValueError("flow.serial_prefix is needed: the station id has not 7 characters")
        if self.regional and self.web.enabled:
            raise ValueError(
                "the live page shows one station: set web.enabled false on a regional receiver"
            )
        return self

    @property
    def regional(self) -> bool:
        """A regional receiver: every station's lanes (``station: "+"``)."""
        return self.station == "+"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (e.g. Asia/Shanghai)") from None
        return name

    @property
    def client_id(self) -> str:
        """This receiver's MQTT client id (unique per process unless configured)."""
        tier = "region" if self.regional else f"station-{self.station}"
        default = f"lanegw-{tier}-{socket.gethostname()}-{os.getpid()}"
        return self.mqtt.client_id or default


def load_station_config(path: str | Path) -> StationConfig:
    """Read and validate a station config; raises ``ConfigError`` listing every problem."""
    return load_model(path, StationConfig)
