"""MQD-6A lamp records: the 18 ASCII bytes per beam, and the six slots of the dump.

Layout (protocols.md §4.1, S4, S6): horizontal offset (5 chars), vertical offset (5),
intensity (4 digits, x100 cd), lamp height (4, mm). Offsets are signed decimal text; we
send ``+12.3`` when |v| < 99.95 and ``+0123`` up to 9999, and read any sign / digits /
point / space padding. Their unit is not stated: the driver converts (``offset_unit``).
All '0' means "not measured" (S4 reads it so) and is decoded as None. Pure: no I/O.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final, Literal

from drivers.errors import LocalProtocolError

RECORD_LEN: Final = 18
EMPTY_RECORD: Final = b"0" * RECORD_LEN
#: where the six records of the dump start (protocols.md §4.1; S4 reads the same offsets)
DUMP_OFFSETS: Final = (2, 20, 38, 57, 75, 93)


class Slot(enum.Enum):
    """The six records of the dump, in dump order."""

    LEFT_MAIN_HIGH = 0
    LEFT_AUX_HIGH = 1
    LEFT_LOW = 2
    RIGHT_MAIN_HIGH = 3
    RIGHT_AUX_HIGH = 4
    RIGHT_LOW = 5

    @property
    def side(self) -> Literal["left", "right"]:
        """Which side of the vehicle."""
        return "left" if self.value < 3 else "right"

    @property
    def beam(self) -> Literal["high", "low"]:
        """High (main or auxiliary lamp) or low beam."""
        return "low" if self.value % 3 == 2 else "high"

    @property
    def lamp(self) -> Literal["main", "aux"]:
        """The main (outer, dual-beam) or the auxiliary (inner, high-only) lamp."""
        return "aux" if self.value % 3 == 1 else "main"


@dataclass(frozen=True, slots=True)
class LampRecord:
    """One measured beam in the tester's units (offsets: see ``offset_unit``)."""

    horizontal_offset: float
    vertical_offset: float
    intensity_cd: int
    height_mm: int


Record = LampRecord | None  # None: the tester did not measure this beam


# --- fields ---------------------------------------------------------------------------
_OFFSET = re.compile(rb" *[+-]? *(?:[0-9]+\.?[0-9]*|\.[0-9]+) *")
_UNSIGNED = re.compile(rb" *[0-9]+ *")


def format_offset(value: float) -> bytes:
    """A signed offset in 5 characters: ``+12.3`` below 99.95, ``-0123`` up to 9999."""
    if -99.95 < value < 99.95:
        text = f"{value:+05.1f}"
    elif -9999.5 < value < 9999.5:
        text = f"{round(value):+05d}"
    else:
        raise LocalProtocolError(f"offset {value} does not fit 5 characters")
    return text.encode("ascii")


def parse_offset(raw: bytes) -> float | None:
    """A 5-character offset field (sign, digits, optional point), or None."""
    return float(raw.replace(b" ", b"")) if _OFFSET.fullmatch(raw) else None


def encode_record(record: Record) -> bytes:
    """The 18 ASCII bytes of ``record`` (all '0' for None)."""
    if record is None:
        return EMPTY_RECORD
    hundreds = round(record.intensity_cd / 100)
    if not 0 <= hundreds <= 9999 or not 0 <= record.height_mm <= 9999:
        raise LocalProtocolError(f"{record} does not fit the record fields")
    return (
        format_offset(record.horizontal_offset)
        + format_offset(record.vertical_offset)
        + f"{hundreds:04d}{record.height_mm:04d}".encode("ascii")
    )


def parse_record(raw: bytes) -> Record:
    """Interpret 18 record bytes; raises ``ValueError`` when a field is malformed."""
    if raw == EMPTY_RECORD:
        return None
    horizontal, vertical = parse_offset(raw[0:5]), parse_offset(raw[5:10])
    intensity, height = raw[10:14], raw[14:18]
    if horizontal is None or vertical is None:
        raise ValueError(f"bad offset in record {raw!r}")
    if not (_UNSIGNED.fullmatch(intensity) and _UNSIGNED.fullmatch(height)):
        raise ValueError(f"bad intensity or height in record {raw!r}")
    return LampRecord(horizontal, vertical, int(intensity) * 100, int(height))
