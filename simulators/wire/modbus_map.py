"""A register map read by the simulated instrument itself, and its register words.

The instrument's register layout is a document (a YAML map file: the built-in ones in
``drivers/modbus/maps/`` or a path), read here with ``yaml.safe_load`` as data, not with
the driver's ``RegisterMap``; the words are packed here, not with ``drivers.modbus``, so
a mistake in the driver's data-type codec (word or byte order, signedness, scaling,
Modicon references) makes driver and simulator disagree.

Facts used (the Modbus application protocol, and docs/protocols/modbus.md for the map
format): a register holds 16 bits, high byte first; wider values take 2 (32-bit) or 4
(64-bit) registers, most significant word at the lowest address unless the map says
``word_order: little``; ``byte_order: little`` swaps the two bytes of every register.
The raw number is the engineering value as ``value = raw × scale + offset``, integers
saturated to their type (an instrument saturates its display). ``bits`` is bit ``bit``
of a register (0 = least significant); ``bool`` lives in a coil or discrete input.
Addresses: plain integers count from the map's ``address_base``; Modicon references are
5 or 6 digits whose first says the table (0 coil, 1 discrete input, 3 input register, 4
holding register) and whose rest counts from 1.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

COIL, DISCRETE_INPUT = "coil", "discrete_input"
INPUT_REGISTER, HOLDING_REGISTER = "input_register", "holding_register"
TABLES: Final = (COIL, DISCRETE_INPUT, HOLDING_REGISTER, INPUT_REGISTER)
BIT_TABLES: Final = frozenset({COIL, DISCRETE_INPUT})
MODICON_PREFIX: Final = {COIL: "0", DISCRETE_INPUT: "1", INPUT_REGISTER: "3", HOLDING_REGISTER: "4"}
#: register type -> struct code of its big-endian bytes
STRUCT_CODES: Final = {
    "int16": "h", "uint16": "H", "int32": "i", "uint32": "I",
    "int64": "q", "uint64": "Q", "float32": "f", "float64": "d",
}  # fmt: skip

Value = int | float | bool


@dataclass(frozen=True, slots=True)
class SimPoint:
    """One value of the instrument at its wire (0-based) address."""

    name: str
    table: str
    address: int
    type: str
    bit: int | None = None
    byte_order: str = "big"
    word_order: str = "big"
    scale: float = 1.0
    offset: float = 0.0
    minimum: float | None = None
    maximum: float | None = None
    writable: bool = False

    @property
    def count(self) -> int:
        """Registers (bits in a bit table) the point takes."""
        if self.type in ("bits", "bool"):
            return 1
        return struct.calcsize(STRUCT_CODES[self.type]) // 2

    def words(self, value: Value) -> list[int]:
        """The registers holding ``value`` (not for bit points)."""
        code = STRUCT_CODES[self.type]
        raw = (float(value) - self.offset) / self.scale
        if code in "fd":
            data = struct.pack(">" + code, raw)
        else:
            bits = 8 * struct.calcsize(code)
            low, high = (
                (0, 2**bits - 1) if code.isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            )
            data = struct.pack(">" + code, min(high, max(low, round(raw))))
        words = [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]
        if self.word_order == "little":
            words.reverse()
        if self.byte_order == "little":
            words = [(w & 0xFF) << 8 | w >> 8 for w in words]
        return words

    def value_of(self, words: list[int]) -> Value:
        """The engineering value the host wrote into the point's registers."""
        if self.byte_order == "little":
            words = [(w & 0xFF) << 8 | w >> 8 for w in words]
        if self.word_order == "little":
            words = words[::-1]
        code = STRUCT_CODES[self.type]
        raw: float = struct.unpack(">" + code, b"".join(w.to_bytes(2, "big") for w in words))[0]
        if code in "fd":
            return float(raw * self.scale + self.offset)
        if self.scale == 1 and self.offset == 0:
            return int(raw)
        value: float = round(
            raw * self.scale + self.offset, max(_decimals(self.scale), _decimals(self.offset))
        )
        return value

    def plausible(self, value: Value) -> bool:
        """Whether the instrument could display ``value`` (the map's min / max)."""
        if isinstance(value, float) and math.isnan(value):
            return False
        low_ok = self.minimum is None or value >= self.minimum
        return low_ok and (self.maximum is None or value <= self.maximum)


@dataclass(frozen=True, slots=True)
class SimCommand:
    """A named write: a coil or one holding register set to ``value``."""

    name: str
    table: str
    address: int
    value: bool | int


@dataclass(frozen=True, slots=True)
class SimMap:
    """The instrument's points and commands."""

    points: tuple[SimPoint, ...]
    commands: tuple[SimCommand, ...]

    def image(self, table: str, values: dict[str, Value]) -> dict[int, int]:
        """Wire address -> register (or 0/1 bit) of ``table`` holding ``values``."""
        words: dict[int, int] = {}
        for point in self.points:
            if point.table != table or point.name not in values:
                continue
            value = values[point.name]
            if table in BIT_TABLES:
                words[point.address] = int(bool(value))
            elif point.type == "bits":
                assert point.bit is not None
                words[point.address] = set_bit(words.get(point.address, 0), point.bit, bool(value))
            else:
                for i, word in enumerate(point.words(value)):
                    words[point.address + i] = word
        return words


def set_bit(word: int, bit: int, value: bool) -> int:
    """``word`` with bit ``bit`` (0 = least significant) set to ``value``."""
    return word | 1 << bit if value else word & ~(1 << bit) & 0xFFFF


def _decimals(number: float) -> int:
    exponent = Decimal(repr(number)).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def wire_address(address: int | str, table: str, base: int) -> int:
    """The 0-based address of a map address (plain integer or Modicon reference)."""
    if isinstance(address, int):
        return address - base
    if len(address) not in (5, 6) or not address.isdigit() or address[0] != MODICON_PREFIX[table]:
        raise ValueError(f"{address!r} is not a Modicon reference of a {table}")
    return int(address[1:]) - 1


def map_text(name_or_path: str) -> str:
    """A built-in map (by name, from drivers/modbus/maps as data) or a YAML file's text."""
    builtin = resources.files("drivers").joinpath("modbus", "maps", f"{name_or_path}.yaml")
    if name_or_path.isidentifier() and builtin.is_file():
        return builtin.read_text(encoding="utf-8")
    return Path(name_or_path).read_text(encoding="utf-8")


def load(name_or_path: str) -> SimMap:
    """Read a map file as the instrument's register layout."""
    data: dict[str, Any] = yaml.safe_load(map_text(name_or_path))
    base = int(data.get("address_base", 0))
    byte_order, word_order = data.get("byte_order") or "big", data.get("word_order") or "big"
    points = tuple(
        SimPoint(
            name=p["name"],
            table=p["table"],
            address=wire_address(p["address"], p["table"], base),
            type=p["type"],
            bit=p.get("bit"),
            byte_order=p.get("byte_order") or byte_order,
            word_order=p.get("word_order") or word_order,
            scale=float(p.get("scale", 1.0)),
            offset=float(p.get("offset", 0.0)),
            minimum=p.get("min"),
            maximum=p.get("max"),
            writable=p.get("access") == "read_write",
        )
        for p in data["points"]
    )
    commands = tuple(
        SimCommand(
            c["name"],
            c["table"],
            wire_address(c["address"], c["table"], base),
            c.get("value", True),
        )
        for c in data.get("commands") or ()
    )
    return SimMap(points, commands)
