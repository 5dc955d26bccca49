"""The regulator's item layout as data: ``psb-items.yaml``, validated on load.

The file says which record values fill which 公安部 (PSB) field, with unit factor,
decimals, source and confidence; see its header comment for the rule on unnamed fields.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

LAYOUT_FILE: Final = "psb-items.yaml"

Confidence = Literal["std", "spec", "sec", "mem"]
RecordField = Literal["inspection_id", "station", "lane", "item_code", "attempt"]
TimeField = Literal["started_at", "finished_at"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecordFieldMap(_Model):
    """A regulator field filled from a top-level field of a record."""

    field: str
    record: RecordField | TimeField
    note: str | None = None
    source: str
    confidence: Confidence


class ValueFieldMap(_Model):
    """A regulator field filled from one measurement, or from an evidence's upload string."""

    field: str
    measurement: str | None = None
    evidence: str | None = Field(default=None, description="evidence kind with upload_string")
    unit: str | None = None
    factor: float = 1.0
    decimals: int | None = Field(default=None, ge=0, description="None: as recorded")
    note: str | None = None
    source: str
    confidence: Confidence

    @model_validator(mode="after")
    def _one_origin(self) -> ValueFieldMap:
        if (self.measurement is None) == (self.evidence is None):
            raise ValueError(f"{self.field}: give exactly one of measurement / evidence")
        return self


class ItemLayout(_Model):
    """One item code's (or the summary's) mapped fields; the rest goes unmapped."""

    title: str
    note: str | None = None
    fields: tuple[ValueFieldMap, ...] = ()


class VerdictCodes(_Model):
    """Our verdict -> the regulator's 0 / 1 / 2."""

    codes: dict[Literal["pass", "fail", "aborted", "not_judged"], int]
    note: str
    source: str
    confidence: Confidence


class EmissionMethod(_Model):
    """An emission item: exported under its method name, values under our names."""

    title: str
    standard: str


class Emissions(_Model):
    """The emission methods and why they carry no regulator field names."""

    note: str
    methods: dict[str, EmissionMethod]


class Layout(_Model):
    """The whole layout file."""

    name: str
    version: int
    sources: dict[str, str]
    header: tuple[RecordFieldMap, ...]
    item: tuple[RecordFieldMap, ...]
    not_from_records: dict[str, str]
    local_time_format: str
    verdict_codes: VerdictCodes
    items: dict[str, ItemLayout]
    summary: ItemLayout
    emissions: Emissions

    @model_validator(mode="after")
    def _disjoint(self) -> Layout:
        both = set(self.items) & set(self.emissions.methods)
        if both:
            raise ValueError(f"codes both PSB items and emission methods: {sorted(both)}")
        return self


@cache
def load_layout() -> Layout:
    """The packaged layout (read once)."""
    text = resources.files("station.export").joinpath(LAYOUT_FILE).read_text(encoding="utf-8")
    return Layout.model_validate(yaml.safe_load(text))
