"""The platforms' field tables as data: ``psb.yaml`` and ``env.yaml``, validated on load.

Each field names where its value comes from (``from``), its format, unit, width and
decimals, and its source document. A field without a source (``from: none``) must say
why; values of our records that no field carries are listed as ``unmapped`` with the
reason, so ``tests/station/upload`` can check that nothing a record holds is dropped
without a word. Templates (the B1..B5 axle prefixes, the H1..H4 lamp names) are expanded
here, so the renderer sees one flat list of fields per call and item.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.errors import GatewayError

Confidence = Literal["std", "spec", "sec", "inf", "mem"]
PSB_FILE: Final = "psb.yaml"
ENV_FILE: Final = "env.yaml"
FORMATS: Final = ("number", "text", "verdict", "time")
SOURCES: Final = (
    "record", "measurement", "verdict", "limit", "evidence", "vehicle", "config", "summary",
    "sample", "context", "check",
)  # fmt: skip
RECORD_FIELDS: Final = (
    "inspection_id", "attempt", "item_code", "lane", "station", "started_at", "finished_at",
)  # fmt: skip
VEHICLE_FIELDS: Final = ("plate", "vin", "category", "fuel", "hpzl", "engine_no")
CONFIG_FIELDS: Final = ("station_code", "lane_code", "device_code", "software_id", "station_name")


class TablesError(GatewayError):
    """A field table that cannot be used; the message names the file and the problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldSpec(_Model):
    """One field of a call: its name, where its value comes from, how it is written."""

    field: str
    source_expr: str = Field(alias="from")
    format: str
    unit: str | None = None
    factor: float = 1.0
    width: int | None = Field(default=None, ge=1)
    decimals: int | None = Field(default=None, ge=0)
    required: bool = False
    when_axle: int | None = None
    only: tuple[str, ...] | None = None
    names: dict[str, str] | None = None
    source: str
    confidence: Confidence
    note: str | None = None
    why: str | None = None

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in FORMATS and not value.startswith("code:"):
            raise ValueError(f"format {value!r}: one of {', '.join(FORMATS)} or code:<table>")
        return value

    @field_validator("source_expr")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value in ("none", "now", "verdict") or value.startswith("const:"):
            return value
        head, _, rest = value.partition(".")
        if head not in SOURCES or not rest:
            raise ValueError(f"from {value!r}: none, now, const:X or one of {', '.join(SOURCES)}")
        allowed = {"record": RECORD_FIELDS, "vehicle": VEHICLE_FIELDS, "config": CONFIG_FIELDS}
        if head in allowed and rest not in allowed[head]:
            raise ValueError(f"from {value!r}: {head}.{'|'.join(allowed[head])}")
        return value

    def model_post_init(self, context: Any) -> None:
        if self.source_expr == "none" and not self.why:
            raise ValueError(f"{self.field}: a field without a source must say why")

    @property
    def code_table(self) -> str | None:
        """The code table of a ``code:`` field."""
        return self.format.removeprefix("code:") if self.format.startswith("code:") else None


class ReplyField(_Model):
    """A field of a platform's answer; ``capture`` keeps it for the inspection's later calls."""

    field: str
    meaning: str
    capture: bool = False
    required: bool = False
    confidence: Confidence


class Unmapped(_Model):
    """A value of our records (or live samples) that no field carries, and why."""

    measurement: str | None = None
    sample: str | None = None
    why: str

    @property
    def name(self) -> str:
        """The value's name."""
        return str(self.measurement or self.sample)


class CallSpec(_Model):
    """One call (jkid), as the data file gives it (templates still unexpanded)."""

    title: str
    kind: Literal["query", "write"]
    source: str
    confidence: Confidence
    fields: list[Any] = Field(default_factory=list)
    head: list[Any] = Field(default_factory=list)
    reply: tuple[ReplyField, ...] = ()
    axle_template: dict[str, Any] | None = None
    items: dict[str, dict[str, Any]] = Field(default_factory=dict)
    unmapped: Any = None
    unmapped_all: str | None = None
    calls: dict[str, str] = Field(default_factory=dict)
    common: list[Any] = Field(default_factory=list)
    methods: dict[str, list[Any]] = Field(default_factory=dict)
    ext_slots: dict[str, Any] | None = None


class Service(_Model):
    """How a platform is reached."""

    variant: str
    source: str
    confidence: Confidence
    success_codes: tuple[str, ...]
    retry_codes: tuple[str, ...] = ()
    time_format: str
    clock_format: str
    namespace: str | None = None
    namespace_confidence: Confidence | None = None
    write_operation: str | None = None
    query_operation: str | None = None
    parameters: tuple[str, ...] = ()
    parameters_confidence: Confidence | None = None
    xtlb: str | None = None
    xml_declaration: str | None = None
    url_encode: Literal["non_ascii_values", "document", "none"] = "none"
    content_type: str | None = None


class TableFile(_Model):
    """A whole data file."""

    name: str
    version: int
    sources: dict[str, str]
    service: Service
    codes: dict[str, dict[str, str]]
    calls: dict[str, CallSpec]
    head: Any = None
    vehicle: Any = None
    sequence: dict[str, list[str]] = Field(default_factory=dict)


def _flat(entries: Iterable[Any]) -> list[dict[str, Any]]:
    """Fields, with the YAML aliases of field lists (``- *head``) spliced in."""
    out: list[dict[str, Any]] = []
    for entry in entries:
        out.extend(_flat(entry) if isinstance(entry, list) else [entry])
    return out


def _fields(entries: Iterable[Any], **names: str) -> tuple[FieldSpec, ...]:
    specs = []
    for raw in _flat(entries):
        data = dict(raw)
        data["field"] = str(data["field"]).format(**names) if names else data["field"]
        specs.append(FieldSpec.model_validate(data))
    return tuple(specs)


def _unmapped(raw: Any) -> tuple[Unmapped, ...]:
    return tuple(Unmapped.model_validate(entry) for entry in raw or [])


class Tables:
    """A data file, expanded: fields per (call, item), unmapped values, code tables."""

    def __init__(self, data: TableFile, path: str) -> None:
        self.data = data
        self.path = path
        self.service = data.service
        self.codes = data.codes
        self.fields: dict[tuple[str, str | None], tuple[FieldSpec, ...]] = {}
        self.unmapped: dict[tuple[str, str | None], tuple[Unmapped, ...]] = {}
        self.call_names: dict[tuple[str, str], str] = {}
        for jkid, call in data.calls.items():
            self._expand(jkid, call)
        for (jkid, _), fields in self.fields.items():
            for spec in fields:
                table = spec.code_table
                if table is not None and table not in self.codes:
                    raise TablesError(f"{path}: {jkid} {spec.field}: no code table {table!r}")

    def _expand(self, jkid: str, call: CallSpec) -> None:
        if call.fields:
            self.fields[(jkid, None)] = _fields(call.fields)
            self.unmapped[(jkid, None)] = _unmapped(call.unmapped)
        if call.axle_template is not None:
            template = call.axle_template
            for item, prefix in template["prefixes"].items():
                fields = []
                for raw in template["fields"]:
                    spec = FieldSpec.model_validate(raw)
                    if spec.only is not None and item not in spec.only:
                        continue
                    name = (spec.names or {}).get(item, spec.field.format(p=prefix))
                    fields.append(spec.model_copy(update={"field": name}))
                self.fields[(jkid, item)] = _fields(call.head) + tuple(fields)
                self.unmapped[(jkid, item)] = _unmapped(template.get("unmapped"))
        for item, raw in call.items.items():
            names = raw.get("lamp_fields", {}).get(item, {})
            self.fields[(jkid, item)] = _fields(call.head) + _fields(raw["fields"], **names)
            self.unmapped[(jkid, item)] = _unmapped(raw.get("unmapped"))
        for item, name in call.calls.items():
            self.call_names[(jkid, item)] = name
            self.fields[(jkid, item)] = _fields(call.common) + _fields(call.methods[item])
            unmapped = call.unmapped
            self.unmapped[(jkid, item)] = _unmapped(
                unmapped.get(item) if isinstance(unmapped, dict) else unmapped
            )

    def fields_for(self, jkid: str, item: str | None = None) -> tuple[FieldSpec, ...]:
        """The fields of a call (for an item, when the call has per-item fields)."""
        found = self.fields.get((jkid, item)) or self.fields.get((jkid, None))
        if found is None:
            raise KeyError(f"{self.path}: no fields for {jkid} {item or ''}".strip())
        return found

    def unmapped_for(self, jkid: str, item: str | None = None) -> tuple[Unmapped, ...]:
        """The values of an item no field of the call carries."""
        return self.unmapped.get((jkid, item)) or self.unmapped.get((jkid, None)) or ()

    def call(self, jkid: str) -> CallSpec:
        """A call as the file gives it."""
        return self.data.calls[jkid]

    def call_name(self, jkid: str, item: str) -> str:
        """The platform's name of a per-method call (uploadInspProcess + TSI -> ...DIDLE)."""
        return self.call_names.get((jkid, item), jkid)

    def items(self, jkid: str) -> list[str]:
        """The items a per-item call knows."""
        return sorted(item for (j, item) in self.fields if j == jkid and item is not None)


def _load(text: str, path: str) -> Tables:
    try:
        raw = yaml.safe_load(text)
        return Tables(TableFile.model_validate(raw), path)
    except yaml.YAMLError as exc:
        raise TablesError(f"{path}: not YAML: {exc}") from None
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        message = re.sub(r"\s+", " ", str(exc))[:2000]
        raise TablesError(f"{path}: {message}") from None


@cache
def packaged(name: str) -> Tables:
    """A data file shipped with the package (``psb.yaml`` or ``env.yaml``)."""
    text = resources.files("station.upload").joinpath(name).read_text(encoding="utf-8")
    return _load(text, f"station/upload/{name}")


def load_tables(path: Path | None, default: str) -> Tables:
    """A province's variant at ``path``, or the packaged file ``default``."""
    if path is None:
        return packaged(default)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TablesError(f"cannot read {path}: {exc}") from None
    return _load(text, str(path))
