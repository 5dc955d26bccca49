"""Pure tests on raw signals: does a curve carry sensor noise, what is its fingerprint.

A tester's force transducer is read through an ADC: at 100 Hz its samples jitter by a
few digits even on a steady pedal. A curve whose braking part has (almost) no jitter was
computed, not measured; a curve equal, sample for sample, to one already recorded for
another item was replayed. Both are what a box rewriting the serial line produces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Final

#: the part of a curve judged for noise: samples at or above this fraction of its peak
BRAKING_PART: Final = 0.8
#: a wheel below this force (daN) is not braking: leading and trailing idle samples
IDLE_DAN: Final = 5.0


def braking_part(values: Sequence[float], fraction: float = BRAKING_PART) -> list[int]:
    """The samples at or above ``fraction`` of the peak, in whole units, in order."""
    if not values:
        return []
    threshold = max(values) * fraction
    return [round(v) for v in values if v >= threshold]


def flat_fraction(values: Sequence[int]) -> float:
    """Share of second differences that are exactly zero (1.0: a perfectly smooth line).

    Sensor noise makes consecutive slopes differ; a computed plateau or ramp does not.
    """
    if len(values) < 3:
        return 0.0
    second = [values[i + 2] - 2 * values[i + 1] + values[i] for i in range(len(values) - 2)]
    return sum(1 for d in second if d == 0) / len(second)


def is_noise_free(values: Sequence[float], min_samples: int, min_flat_fraction: float) -> bool:
    """True when the braking part is long enough to judge and has no sensor noise."""
    part = braking_part(values)
    if len(part) < min_samples or max(part, default=0) <= IDLE_DAN:
        return False
    return flat_fraction(part) >= min_flat_fraction


def _trimmed(left: Sequence[float], right: Sequence[float]) -> list[tuple[int, int]]:
    """The pairs from the first to the last sample where a wheel brakes, in whole units."""
    active = [i for i, (a, b) in enumerate(zip(left, right, strict=True)) if max(a, b) > IDLE_DAN]
    if not active:
        return []
    return [(round(left[i]), round(right[i])) for i in range(active[0], active[-1] + 1)]


def curve_fingerprint(
    left: Sequence[float], right: Sequence[float], min_samples: int
) -> str | None:
    """SHA-256 of the braking samples (idle ends cut, whole daN), or None when too short.

    Cutting the idle ends makes a replay that starts a little earlier or later match.
    """
    pairs = _trimmed(left, right)
    if len(pairs) < min_samples:
        return None
    text = ";".join(f"{a},{b}" for a, b in pairs)
    return hashlib.sha256(text.encode()).hexdigest()


def above(values: Sequence[float], full_scale: float) -> float | None:
    """The largest value beyond ``full_scale``, or None when all are within it."""
    peak = max(values, default=None)
    return peak if peak is not None and peak > full_scale else None
