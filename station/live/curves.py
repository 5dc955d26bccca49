"""Brake force curves for the page, from a result record's evidence.

A brake item's record references its full curve by hash and carries it in the regulator's
upload format (``evidence[].upload_string``, ``10@56#45$57#46...``: interval in ms, then
left#right pairs in daN; see gateway/inspection/curve.py). That string is all a station
sees of the curve, so the page draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from gateway.inspection.curve import parse_upload_string
from gateway.records import Evidence

#: a curve with more pairs is thinned to this many (the upload field holds about 500)
MAX_POINTS: Final = 1000
BRAKE_CURVE: Final = "brake_curve"


@dataclass(frozen=True, slots=True)
class Curve:
    """One brake test's left and right force over time."""

    interval_ms: int
    left_dan: tuple[int, ...]
    right_dan: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """The page's form of the curve."""
        return {"interval_ms": self.interval_ms, "left": self.left_dan, "right": self.right_dan}


def curve_of(evidence: Evidence) -> Curve | None:
    """The brake curve of an evidence reference, or None when it has none.

    Raises ``ValueError`` when the upload string is malformed.
    """
    if evidence.kind != BRAKE_CURVE or not evidence.upload_string:
        return None
    interval_ms, pairs = parse_upload_string(evidence.upload_string)
    if interval_ms <= 0 or not pairs:
        raise ValueError(f"brake curve with interval {interval_ms} ms and {len(pairs)} samples")
    step = -(-len(pairs) // MAX_POINTS)  # ceiling: keep the whole test, thinned
    kept = pairs[::step]
    return Curve(
        interval_ms * step,
        tuple(left for left, _ in kept),
        tuple(right for _, right in kept),
    )
