"""Pure calculations of the headlamp items (H1..H4): lamp positions, limit keys, the
total of all high beams and the four-lamp rule. No I/O; unit tested directly.

Limit values are never here: this module only names the keys of the limit table
(``gateway/limits/gb7258-2017.yaml``) that apply to a vehicle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from gateway.limits import measured
from gateway.records import Measurement, Verdict

Side = Literal["left", "right"]
LampKind = Literal["main", "aux"]

#: the unit of beam offsets as the driver reports them: mm on a screen 10 m ahead
OFFSET_UNIT: Final = "mm/10m"
#: key of the "all high beams together" limit (a maximum)
TOTAL_KEY: Final = "headlamp_high_beam_total"


@dataclass(frozen=True, slots=True)
class Position:
    """Where a regulator lamp item sits: H1 left outer ... H4 right outer."""

    code: str
    side: Side
    lamp: LampKind  # main = outer (dual-beam) lamp, aux = inner (high-beam only) lamp
    label: str

    @property
    def high_slot(self) -> str:
        """The tester's record of this lamp's high beam (driver slot name)."""
        return f"{self.side}_{self.lamp}_high"

    @property
    def low_slot(self) -> str | None:
        """The low-beam record, which only the main (outer) lamp has."""
        return f"{self.side}_low" if self.lamp == "main" else None


#: PSB-IF-Chengdu 18C81 tables 13-16: H1 left outer (or left lamp of a 2-lamp system),
#: H2 left inner, H3 right inner, H4 right outer (or right lamp)
POSITIONS: Final[dict[str, Position]] = {
    "H1": Position("H1", "left", "main", "left outer"),
    "H2": Position("H2", "left", "aux", "left inner"),
    "H3": Position("H3", "right", "aux", "right inner"),
    "H4": Position("H4", "right", "main", "right outer"),
}

#: order vehicle category -> row of the intensity table. Every category an order can
#: carry today is a 汽车 except the trailer, which has no headlamps; the other rows
#: (tricycle, motorcycle, moped, car_lt70kmh) exist as limit keys for later categories.
TABLE_ROWS: Final[dict[str, str | None]] = {
    "passenger_car": "car",
    "other_le_3500kg": "car",
    "other": "car",
    "articulated": "car",
    "trailer": None,
}

#: the symmetrical pairs of a four-lamp system, by driver slot name
PAIRS: Final[dict[str, tuple[str, str]]] = {
    "outer": ("left_main_high", "right_main_high"),
    "inner": ("left_aux_high", "right_aux_high"),
}


def table_row(category: str) -> str | None:
    """The intensity-table row of an order category; None when it has no headlamps."""
    return TABLE_ROWS.get(category)


def intensity_key(row: str, inspection_type: str, lamp_system: int) -> str:
    """Limit key of the per-lamp high-beam minimum, e.g. ``..._car_in_use_2lamp``."""
    return f"headlamp_high_beam_{row}_{inspection_type}_{lamp_system}lamp"


def pair_rule_key(row: str, inspection_type: str) -> str:
    """Limit key of the four-lamp rule (a symmetrical pair meeting the 2-lamp value).

    The rule is [MEM]: it applies only when the limit table has this key.
    """
    return f"{intensity_key(row, inspection_type, 4)}_pair"


def expected_high_slots(lamp_system: int) -> tuple[str, ...]:
    """The high-beam records a complete run of this lamp system gives."""
    main = ("left_main_high", "right_main_high")
    return main if lamp_system == 2 else (*main, "left_aux_high", "right_aux_high")


def total_high_cd(intensities: Mapping[str, float]) -> float:
    """Sum of every high beam measured (the lamps lit together), cd."""
    return float(sum(v for slot, v in intensities.items() if slot.endswith("_high")))


def best_pair(intensities: Mapping[str, float]) -> tuple[str, float] | None:
    """The symmetrical pair whose weaker lamp is brightest, and that weaker intensity.

    A pair counts only when both of its lamps were measured; None when no pair was.
    """
    complete = [
        (name, min(intensities[left], intensities[right]))
        for name, (left, right) in PAIRS.items()
        if left in intensities and right in intensities
    ]
    if not complete:
        return None
    return max(complete, key=lambda pair: pair[1])


def four_lamp_verdict(own: Verdict | None, pair: Verdict | None) -> Verdict:
    """A four-lamp lamp passes on its own value, or when a symmetrical pair passes."""
    if Verdict.PASS in (own, pair):
        return Verdict.PASS
    return Verdict.FAIL


def offset_measurements(
    beam: Literal["high", "low"],
    horizontal_mm: float,
    vertical_mm: float,
    height_mm: int,
    height_ratio: float | None,
) -> list[Measurement]:
    """A beam's position as recorded values (GB 38900-2020 no longer judges them)."""
    values = [
        measured(f"{beam}_beam_horizontal_offset", horizontal_mm, OFFSET_UNIT),
        measured(f"{beam}_beam_vertical_offset", vertical_mm, OFFSET_UNIT),
    ]
    if beam == "high":
        values.append(measured("lamp_height", height_mm, "mm"))
    elif height_ratio is not None:  # the low-beam cut-off figure of the 0.7H-0.9H era
        values.append(measured("low_beam_height_ratio", round(height_ratio, 3), "H"))
    return values
