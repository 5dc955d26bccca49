"""The lane config: one YAML file per lane, validated completely before anything starts.

Every model rejects unknown keys, so a typo is an error, not a silent default. Protocol
names and their options are checked against the driver registry, bus references and the
bus kind a protocol needs are cross-checked. ``load_config`` raises ``ConfigError`` with
one ``ConfigProblem`` per mistake, each naming its field path and YAML line.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from drivers.devices.base import DeviceClass
from drivers.registry import driver_specs
from drivers.transport import LineSettings, url_problem
from gateway.errors import ConfigError, ConfigProblem
from gateway.integrity import public_key_from_text
from gateway.yamlpos import load_yaml_with_positions

M = TypeVar("M", bound=BaseModel)
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Model):
    """MQTT over TLS; the server certificate is always verified unless ``insecure``."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(default=False, description="skip hostname check (lab use only)")


class MqttConfig(_Model):
    """Connection to the station's broker."""

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(default=None, description="default lanegw-{station}-{lane}")
    topic_root: Ident = "lanegw"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    username: str | None = None
    password_file: Path | None = Field(
        default=None, description="file holding the password; or env LANEGW_MQTT_PASSWORD"
    )
    tls: TlsConfig = TlsConfig()
    delivery: Literal["puback", "server_ack"] = Field(
        default="puback",
        description="when a record may leave the outbox: on PUBACK, or on the server's ack",
    )
    ack_keys: list[str] = Field(
        default_factory=list,
        description="server_ack: the station's public keys (base64 Ed25519, `lanegw station "
        "key`); when set, only acks signed by one of them delete records",
    )
    ack_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="server_ack: records still unacknowledged this long after they were sent "
        "are sent again, oldest first",
    )
    inflight: int = Field(default=32, ge=1, le=1000, description="records in flight at once")
    telemetry_max_hz: float = Field(default=5.0, gt=0, le=100)
    progress_expiry_s: int = Field(default=60, ge=1)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @field_validator("ack_keys")
    @classmethod
    def _keys_parse(cls, keys: list[str]) -> list[str]:
        for text in keys:
            try:
                public_key_from_text(text)
            except ValueError:
                raise ValueError(f"{text!r} is not a base64 Ed25519 public key") from None
        return keys


class OutboxConfig(_Model):
    """The durable outbox in the state directory."""

    max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024)
    alarm_fraction: float = Field(
        default=0.8, gt=0, lt=1, description="raise the alarm and refuse new inspections here"
    )


class MetricsConfig(_Model):
    """Prometheus exporter; loopback by default."""

    enabled: bool = True
    address: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)


BusKind = Literal["serial", "modbus_rtu", "modbus_tcp"]


class BusConfig(_Model):
    """One physical bus: a serial port / device server, or a Modbus link."""

    id: Ident
    kind: BusKind = "serial"
    url: str = Field(
        min_length=1,
        description="/dev/serial/by-id/..., socket://host:port (a device server in raw TCP "
        "mode), or host:port for modbus_tcp",
    )
    baudrate: int = Field(default=9600, ge=50, le=4_000_000)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = Field(default=1, description="1, 1.5 or 2")
    inter_request_delay_s: float = Field(default=0.0, ge=0, le=10)
    response_timeout_s: float = Field(default=1.0, gt=0, le=60)

    @property
    def line(self) -> LineSettings:
        """The serial line settings of this bus."""
        return LineSettings(self.baudrate, self.bytesize, self.parity, self.stopbits)

    @model_validator(mode="after")
    def _url_fits_kind(self) -> BusConfig:
        if self.stopbits not in (1, 1.5, 2):
            raise ValueError(f"stopbits must be 1, 1.5 or 2, got {self.stopbits}")
        if self.kind == "modbus_tcp" and not re.fullmatch(r"(tcp://)?[^/:]+:\d+", self.url):
            raise ValueError(f"modbus_tcp url must be host:port, got {self.url!r}")
        if self.kind == "serial" and (problem := url_problem(self.url)) is not None:
            raise ValueError(problem)
        return self


class Certificate(_Model):
    """The device's verification certificate (检定证书)."""

    number: str
    expires: date


#: full-scale quantities a device's measuring range can name (what the plausibility
#: checks compare raw values with; see docs/records.md, "Plausibility flags")
RANGE_QUANTITIES: frozenset[str] = frozenset(
    {"force_dan", "wheel_load_kg", "co_pct", "hc_ppm", "co2_pct", "no_ppm", "opacity_k_m1"}
    # a weighing indicator's full scale (axle or wheel plate): bounds its calibration
    | {"weight_kg"}
    # a chassis dynamometer's roller speed and force sensor: bound their calibration
    | {"roller_speed_kmh", "force_n"}
)


class Identity(_Model):
    """Who the device is, carried into every record it contributes to."""

    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    certificate: Certificate | None = None
    ranges: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict,
        description="measuring range from the nameplate or certificate, full scale per "
        "quantity, e.g. {force_dan: 3000} for a 30 kN-per-wheel brake tester",
    )

    @model_validator(mode="after")
    def _known_quantities(self) -> Identity:
        unknown = sorted(set(self.ranges) - RANGE_QUANTITIES)
        if unknown:
            raise ValueError(
                f"unknown range quantity {', '.join(unknown)}; "
                f"known: {', '.join(sorted(RANGE_QUANTITIES))}"
            )
        return self


class DeviceConfig(_Model):
    """One tester on a bus."""

    id: Ident
    device_class: DeviceClass = Field(alias="class")
    protocol: str
    bus: Ident
    address: int | None = Field(default=None, ge=0, le=255)
    poll_period_s: float = Field(default=1.0, gt=0, le=3600)
    identity: Identity = Identity()
    options: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _protocol_known(self) -> DeviceConfig:
        specs = driver_specs()
        spec = specs.get(self.protocol)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none"
            raise ValueError(f"unknown protocol {self.protocol!r} (known: {known})")
        if spec.device_class != self.device_class:
            raise ValueError(
                f"protocol {self.protocol!r} drives a {spec.device_class.value}, "
                f"not a {self.device_class.value}"
            )
        spec.options.model_validate(self.options)
        return self


class PlausibilityConfig(_Model):
    """Heuristics that flag (never block) records whose raw data look manipulated."""

    enabled: bool = True
    min_curve_samples: int = Field(
        default=30, ge=5, description="shorter curves are not judged for noise or identity"
    )
    noise_free_fraction: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="a curve is 'without noise' when at least this fraction of its second "
        "differences (over the braking part, in whole daN) is exactly zero",
    )
    remembered_curves: int = Field(
        default=100_000, ge=100, description="curve fingerprints kept to spot repeated curves"
    )


class LockoutPolicy(_Model):
    """When devices are locked (refused for inspections) until the cause is cleared."""

    certificate_expiry: bool = Field(
        default=True, description="lock a device whose identity.certificate has expired"
    )
    daily_checks: dict[DeviceClass, list[str]] = Field(
        default_factory=dict,
        description="checks each device of a class must pass every day, e.g. "
        "{gas_analyser: [leak, zero], opacimeter: [zero]}",
    )
    check_validity_h: float = Field(default=24.0, gt=0, description="how long a check lasts")

    @model_validator(mode="after")
    def _known_checks(self) -> LockoutPolicy:
        from gateway.maintenance.checks import check_spec

        for device_class, kinds in self.daily_checks.items():
            for kind in kinds:
                try:
                    check_spec(device_class, kind)
                except KeyError as exc:
                    raise ValueError(str(exc).strip('"')) from None
        return self


class LaneConfig(_Model):
    """A whole lane config file."""

    station: Ident = Field(description="station id (检测站编号)")
    lane: Ident = Field(description="lane id within the station")
    state_dir: Path = Path("/var/lib/lanegw")
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    metrics: MetricsConfig = MetricsConfig()
    buses: list[BusConfig] = Field(min_length=1)
    devices: list[DeviceConfig] = Field(min_length=1)
    lockouts: LockoutPolicy = LockoutPolicy()
    plausibility: PlausibilityConfig = PlausibilityConfig()
    procedure_time_scale: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="shortens the standard's procedure timings (stabilisation, averaging "
        "windows) for benches with simulators; keep 1.0 on a real lane",
    )

    @model_validator(mode="after")
    def _cross_check(self) -> LaneConfig:
        _unique([b.id for b in self.buses], "bus")
        _unique([d.id for d in self.devices], "device")
        buses = {b.id: b for b in self.buses}
        for device in self.devices:
            bus = buses.get(device.bus)
            if bus is None:
                raise ValueError(f"device {device.id!r}: no bus named {device.bus!r}")
            wants = driver_specs()[device.protocol].bus_kind
            has = "stream" if bus.kind == "serial" else "modbus"
            if wants != has:
                raise ValueError(
                    f"device {device.id!r}: protocol {device.protocol!r} needs a "
                    f"{'serial' if wants == 'stream' else 'modbus_rtu/modbus_tcp'} bus, "
                    f"bus {bus.id!r} is {bus.kind}"
                )
        return self

    @property
    def client_id(self) -> str:
        """MQTT client id: configured, or derived from station and lane (stable)."""
        return self.mqtt.client_id or f"lanegw-{self.station}-{self.lane}"


def _unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    for ident in ids:
        if ident in seen:
            raise ValueError(f"duplicate {what} id {ident!r}")
        seen.add(ident)


def load_config(path: str | Path) -> LaneConfig:
    """Read and validate a lane config; raises ``ConfigError`` listing every problem."""
    return load_model(path, LaneConfig)


def load_model(path: str | Path, model: type[M]) -> M:
    """Read a YAML file into ``model``; raises ``ConfigError`` with every problem and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read file: {exc.strerror}")]) from None
    return parse_model(text, path, model)


def parse_model(text: str, path: str | Path, model: type[M]) -> M:
    """Validate YAML ``text`` (read from ``path``) into ``model``; raises ``ConfigError``."""
    path = Path(path)
    data, positions = load_yaml_with_positions(text, path)
    if not isinstance(data, dict):
        raise ConfigError(path, [ConfigProblem("", "the file must hold a mapping of settings")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, _problems(exc, positions)) from None


def _problems(
    exc: ValidationError, positions: dict[tuple[str | int, ...], int]
) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        line = None
        for cut in range(len(loc), -1, -1):  # the nearest enclosing node that exists
            if loc[:cut] in positions:
                line = positions[loc[:cut]]
                break
        problems.append(ConfigProblem(_path(loc), message, line))
    return problems


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
