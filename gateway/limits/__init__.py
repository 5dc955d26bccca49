"""Limit tables as data: one YAML file per standard and edition, every value with its source."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from gateway.records import Limit, Measurement, Scalar, Verdict


class LimitEntry(BaseModel):
    """One limit as written in a table file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float | None = None
    high: float | None = None
    unit: str | None = None
    source: str
    confidence: Literal["std", "spec", "sec", "mem"]


class LimitTable(BaseModel):
    """A whole limit table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    limits: dict[str, LimitEntry]

    def judge(self, key: str, name: str, value: float, unit: str | None = None) -> Measurement:
        """A measurement of ``value`` judged against limit ``key`` (inclusive bounds)."""
        entry = self.limits[key]
        ok = (entry.low is None or value >= entry.low) and (
            entry.high is None or value <= entry.high
        )
        limit = Limit(
            low=entry.low,
            high=entry.high,
            unit=entry.unit,
            source=f"{self.name}: {entry.source}",
            confidence=entry.confidence,
        )
        verdict = Verdict.PASS if ok else Verdict.FAIL
        return Measurement(
            name=name, value=value, unit=unit or entry.unit, limit=limit, verdict=verdict
        )


def measured(name: str, value: Scalar, unit: str | None = None) -> Measurement:
    """A measurement that no limit applies to."""
    return Measurement(name=name, value=value, unit=unit)


@cache
def load_table(name: str) -> LimitTable:
    """A packaged limit table by file stem, e.g. ``gb7258-2017``."""
    text = resources.files("gateway.limits").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return LimitTable.model_validate(yaml.safe_load(text))
