"""What every check returns, and its argument error (shared by all check modules)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.records import Measurement


class CheckArgumentError(ValueError):
    """A check was asked for with missing or invalid reference values."""


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What a check measured and whether it passed."""

    passed: bool
    measurements: list[Measurement]
    note: str = ""
