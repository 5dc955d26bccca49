"""Finding sequence gaps: pure, on the sequence numbers stored above a watermark.

The watermark is the sequence number up to which a gateway's records are known to be
complete, or their gaps alarmed. Records arrive out of order (in-flight windows, several
receivers), so a gap is reported only once the record above it is older than the grace
period; until then the watermark waits at the gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Gap:
    """Sequence numbers ``first..last`` missing."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Sweep:
    """The new watermark and the gaps found below it."""

    watermark: int | None
    gaps: list[Gap] = field(default_factory=list)


def find_gaps(watermark: int | None, rows: Sequence[tuple[int, str]], cutoff: str) -> Sweep:
    """``rows``: (seq, received_at) above ``watermark``, by seq; ``cutoff``: the received_at
    before which a record is past the grace period (times as sortable text).

    A gateway seen for the first time (no watermark) starts at its lowest record: records
    before it went to no receiver of this database (installed later), unless it is seq 1.
    """
    if not rows:
        return Sweep(watermark)
    if watermark is None:
        first_seq, first_at = rows[0]
        if first_seq != 1 and first_at >= cutoff:
            return Sweep(None)  # a lower one may still arrive
        watermark = first_seq - 1
    gaps = []
    for seq, received_at in rows:
        if seq > watermark + 1:
            if received_at >= cutoff:
                break
            gaps.append(Gap(watermark + 1, seq - 1))
        watermark = seq
    return Sweep(watermark, gaps)
