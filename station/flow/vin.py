"""The VIN check digit of ISO 3779 (position 9), as GB 16735 prescribes it for China."""

from __future__ import annotations

import re
from typing import Final

VIN_PATTERN: Final = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
#: transliteration of letters (I, O and Q are never used)
_VALUES: Final = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(vin: str) -> str:
    """The check character a 17-character VIN must carry at position 9 ('0'-'9' or 'X')."""
    total = sum(_VALUES[c] * w for c, w in zip(vin, _WEIGHTS, strict=True))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


def vin_problem(vin: str) -> str | None:
    """Why ``vin`` is not a valid VIN (in Chinese, for the form), or None."""
    if len(vin) != 17:
        return f"车辆识别代号应为17位，现为{len(vin)}位"
    if not VIN_PATTERN.match(vin):
        return "车辆识别代号只能含数字和大写字母（不含I、O、Q）"
    expected = check_digit(vin)
    if vin[8] != expected:
        return f"校验位（第9位）错误：应为{expected}，现为{vin[8]}"
    return None
