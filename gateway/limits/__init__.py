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


Confidence = Literal["std", "spec", "sec", "mem"]


class Parameter(BaseModel):
    """A procedure parameter or formula constant (a timing, a tolerance, a coefficient):
    not a pass/fail bound, but data with a source all the same."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float | bool | str
    unit: str | None = None
    source: str
    confidence: Confidence


class LimitTable(BaseModel):
    """A whole limit table, with the parameters of its procedures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    limits: dict[str, LimitEntry] = {}
    parameters: dict[str, Parameter] = {}

    def number(self, key: str) -> float:
        """A numeric parameter (``KeyError`` naming the table when it is missing)."""
        value = self._parameter(key).value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{self.name}: parameter {key} is not a number: {value!r}")
        return float(value)

    def flag(self, key: str) -> bool:
        """A yes/no parameter."""
        value = self._parameter(key).value
        if not isinstance(value, bool):
            raise TypeError(f"{self.name}: parameter {key} is not true/false: {value!r}")
        return value

    def _parameter(self, key: str) -> Parameter:
        try:
            return self.parameters[key]
        except KeyError:
            raise KeyError(f"{self.name}: no parameter {key}") from None

    def bound(self, key: str) -> tuple[float | None, float | None]:
        """The (low, high) of limit ``key``."""
        entry = self.limits[key]
        return entry.low, entry.high

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
