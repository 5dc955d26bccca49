"""The brake force curve in the regulator's upload format, fitted to its field.

The 公安部 interface (PSB-IF-Chengdu / PSB-IF-Anche, standards.md §1.1 and §5.1) carries
each axle's process curve in a ``varchar2(4000)`` field as::

    [interval, ms]@[left]#[right]$[left]#[right]$...

with forces in 10 N (= daN) units, e.g. ``10@56#45$57#46``. A 100 Hz curve longer than
about 5 s does not fit; the interface does not say what to do then. We keep every
``step``-th sample with the smallest ``step`` that fits and declare ``step × interval``
as the interval, so the string stays an evenly sampled curve of the whole test (the
full curve is kept as evidence). Forces are written as whole daN, negative zero drift
as 0 (a regulator's parser expects unsigned digits).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

#: PSB 18C81 curve fields (e.g. ``yzzdlqx``) are varchar2(4000) [SPEC]
UPLOAD_FIELD_CHARS: Final = 4000


def _force(value_dan: float) -> str:
    return str(max(0, round(value_dan)))


def format_curve(left_dan: Sequence[float], right_dan: Sequence[float], interval_ms: int) -> str:
    """All pairs in the upload format, with ``interval_ms`` declared."""
    pairs = "$".join(f"{_force(a)}#{_force(b)}" for a, b in zip(left_dan, right_dan, strict=True))
    return f"{interval_ms}@{pairs}"


def upload_string(
    left_dan: Sequence[float],
    right_dan: Sequence[float],
    interval_ms: float,
    max_chars: int = UPLOAD_FIELD_CHARS,
) -> tuple[str, int]:
    """The curve as an upload string of at most ``max_chars``, and the step it kept.

    ``interval_ms`` is the device's sample interval. Raises ``ValueError`` for an empty
    curve, sides of different lengths, or when not even a single pair fits.
    """
    if len(left_dan) != len(right_dan):
        raise ValueError("left and right curves differ in length")
    if not left_dan:
        raise ValueError("an empty curve has no upload string")
    for step in range(1, len(left_dan) + 1):
        declared = round(step * interval_ms)
        text = format_curve(left_dan[::step], right_dan[::step], declared)
        if len(text) <= max_chars:
            return text, step
    raise ValueError(f"not even one sample fits in {max_chars} characters")


def parse_upload_string(text: str) -> tuple[int, list[tuple[int, int]]]:
    """The declared interval (ms) and the (left, right) pairs of an upload string."""
    interval, _, body = text.partition("@")
    pairs = [pair.split("#") for pair in body.split("$")] if body else []
    return int(interval), [(int(left), int(right)) for left, right in pairs]
