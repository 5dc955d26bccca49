"""The declarative register map: which values live where, in which type, and how to read them.

A map is a YAML file (see docs/protocols/modbus.md for the full reference). It names
every *point* (a value, unit-suffixed like ``force_left_dan``) with its table, address,
data type, byte/word order, scale/offset, unit and plausibility range, and every
*command* (a named coil or holding-register write such as ``start_test``). The map is
validated once, at load: overlapping points, a type that does not fit its table, a unit
that is not in the name, addresses outside 0..65535, writes to read-only tables.

Addressing is explicit, never guessed: ``address_base`` (0 or 1, required) says how the
plain integer addresses of the file count; a quoted Modicon reference (``"30001"``,
``"400010"``) is always 1-based and its leading digit must match the table (0 coil,
1 discrete input, 3 input register, 4 holding register). Either way the map resolves it
to the 0-based *wire* address that goes into the request.

A reading outside a point's ``min``/``max`` raises ``ImplausibleValue`` (a
``ProtocolError``): the whole read is rejected and counted by the bus observer, never
passed upward as a valid value.

``RegisterMap.plan`` groups the points into as few requests as possible with the pure
``drivers.modbus.planner.plan_reads``.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, model_validator

from drivers.devices.base import DeviceClass
from drivers.errors import ProtocolError
from drivers.modbus.decode import (
    DataType,
    Order,
    Value,
    ValueCodec,
    raw_range,
    raw_to_words,
)
from drivers.modbus.planner import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    ReadBlock,
    Span,
    Table,
    plan_reads,
)

Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class ImplausibleValue(ProtocolError):
    """A decoded value outside its point's plausibility range (rejected, never used)."""

    def __init__(self, point: str, value: Value) -> None:
        super().__init__(f"{point}={value!r} is outside its plausible range")
        self.point = point
        self.value = value


class Access(enum.StrEnum):
    """Whether the driver may write a point."""

    READ = "read"
    READ_WRITE = "read_write"


def unit_slug(unit: str) -> str:
    """The name suffix a unit demands: ``daN`` -> ``dan``, ``km/h`` -> ``kmh``, ``%`` -> ``pct``."""
    return re.sub(r"[^a-z0-9]", "", unit.lower().replace("%", "pct"))


def wire_address(address: int | str, table: Table, base: int) -> int:
    """The 0-based request address of a map address (plain integer or Modicon string)."""
    if isinstance(address, int):
        if address < base:
            raise ValueError(f"address {address} is below address_base {base}")
        return address - base
    if not re.fullmatch(r"[0134]\d{4,5}", address):
        raise ValueError(f"{address!r}: Modicon references are 5 or 6 digits, e.g. '30001'")
    if address[0] != table.modicon_prefix:
        raise ValueError(f"{address!r} is not a {table.value} reference")
    number = int(address[1:])
    if number < 1:
        raise ValueError(f"{address!r}: Modicon references count from 1")
    return number - 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Point(_Model):
    """One value of the instrument, as written in the map file."""

    name: Name
    table: Table
    address: int | str
    type: DataType
    bit: int | None = Field(default=None, ge=0, le=15, description="bits: bit index, 0 = LSB")
    byte_order: Order | None = Field(default=None, description="overrides the map's")
    word_order: Order | None = Field(default=None, description="overrides the map's")
    scale: float = Field(default=1.0, description="value = raw * scale + offset")
    offset: float = 0.0
    unit: str | None = None
    min: float | None = Field(default=None, description="plausibility: lowest sane value")
    max: float | None = Field(default=None, description="plausibility: highest sane value")
    access: Access = Access.READ
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Point:
        if self.table.is_bit != (self.type is DataType.BOOL):
            raise ValueError(f"{self.name}: type {self.type.value} cannot live in {self.table}")
        if (self.type is DataType.BITS) != (self.bit is not None):
            raise ValueError(f"{self.name}: 'bit' is required for bits and only for bits")
        if self.access is Access.READ_WRITE and not self.table.writable:
            raise ValueError(f"{self.name}: a {self.table.value} cannot be written")
        if self.access is Access.READ_WRITE and self.type is DataType.BITS:
            raise ValueError(f"{self.name}: one bit of a register cannot be written atomically")
        if self.type.is_bit and (self.scale != 1 or self.offset or self.unit or self._ranged):
            raise ValueError(f"{self.name}: bit points take no scale, offset, unit or range")
        if self.scale == 0 or not math.isfinite(self.scale) or not math.isfinite(self.offset):
            raise ValueError(f"{self.name}: scale must be finite and non-zero")
        if self.unit is not None and not self.name.endswith("_" + unit_slug(self.unit)):
            raise ValueError(
                f"{self.name}: a value in {self.unit} must end in _{unit_slug(self.unit)}"
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{self.name}: min > max")
        return self

    @property
    def _ranged(self) -> bool:
        return self.min is not None or self.max is not None


class Command(_Model):
    """A named write: a coil (FC05) or one holding register (FC06)."""

    name: Name
    table: Literal[Table.COIL, Table.HOLDING_REGISTER]
    address: int | str
    value: bool | int = True
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Command:
        if self.table is Table.COIL and not isinstance(self.value, bool):
            raise ValueError(f"{self.name}: a coil command writes true or false")
        if self.table is Table.HOLDING_REGISTER and (
            isinstance(self.value, bool) or not 0 <= self.value <= 0xFFFF
        ):
            raise ValueError(f"{self.name}: a register command writes a raw 0..65535")
        return self


@dataclass(frozen=True, slots=True)
class BoundPoint:
    """A point resolved against its map: wire address and codec."""

    name: str
    table: Table
    address: int
    codec: ValueCodec
    unit: str | None
    minimum: float | None
    maximum: float | None
    writable: bool

    @property
    def count(self) -> int:
        """Registers (bits for coils and discrete inputs) the point occupies."""
        return self.codec.count

    def check(self, value: Value) -> Value:
        """Return ``value`` if plausible, else raise ``ImplausibleValue``."""
        if isinstance(value, bool):
            return value
        too_low = self.minimum is not None and value < self.minimum
        too_high = self.maximum is not None and value > self.maximum
        if too_low or too_high or (isinstance(value, float) and math.isnan(value)):
            raise ImplausibleValue(self.name, value)
        return value


@dataclass(frozen=True, slots=True)
class BoundCommand:
    """A command resolved against its map."""

    name: str
    table: Table
    address: int
    value: bool | int


#: decoding one point of a block: name, slice of the reply, decoder (None: a bit), check
_DecodeStep = tuple[
    str, int, int, Callable[[Sequence[int]], Value] | None, Callable[[Value], Value]
]


class RegisterMap(_Model):
    """A whole map file, validated."""

    name: Name
    device_class: DeviceClass
    description: str = ""
    address_base: Literal[0, 1] = Field(description="what plain integer addresses count from")
    byte_order: Order = Order.BIG
    word_order: Order = Order.BIG
    max_read_registers: int = Field(default=MAX_READ_REGISTERS, ge=1, le=MAX_READ_REGISTERS)
    max_read_bits: int = Field(default=MAX_READ_BITS, ge=1, le=MAX_READ_BITS)
    max_gap: int = Field(default=8, ge=0, le=124, description="unused registers read across")
    max_bit_gap: int = Field(default=64, ge=0, le=1999, description="unused bits read across")
    points: tuple[Point, ...] = Field(min_length=1, max_length=2000)
    commands: tuple[Command, ...] = Field(default=(), max_length=200)

    _bound: dict[str, BoundPoint] = PrivateAttr(default_factory=dict)
    _commands: dict[str, BoundCommand] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _resolve(self) -> RegisterMap:
        names = [p.name for p in self.points] + [c.name for c in self.commands]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"names used twice: {', '.join(duplicates)}")
        self._bound = {p.name: self._bind(p) for p in self.points}
        self._commands = {
            c.name: BoundCommand(
                c.name,
                c.table,
                _checked(wire_address(c.address, c.table, self.address_base)),
                c.value,
            )
            for c in self.commands
        }
        _check_overlaps(self._bound.values())
        return self

    def _bind(self, point: Point) -> BoundPoint:
        codec = ValueCodec(
            point.type,
            point.byte_order or self.byte_order,
            point.word_order or self.word_order,
            point.scale,
            point.offset,
            point.bit,
        )
        address = wire_address(point.address, point.table, self.address_base)
        _checked(address + codec.count - 1)
        return BoundPoint(
            point.name,
            point.table,
            address,
            codec,
            point.unit,
            point.min,
            point.max,
            point.access is Access.READ_WRITE,
        )

    # queries ----------------------------------------------------------------------
    def point(self, name: str) -> BoundPoint:
        """The resolved point ``name``; ``KeyError`` names the known ones."""
        try:
            return self._bound[name]
        except KeyError:
            raise KeyError(
                f"{self.name}: no point {name!r}; known: {sorted(self._bound)}"
            ) from None

    def command(self, name: str) -> BoundCommand:
        """The resolved command ``name``; ``KeyError`` names the known ones."""
        try:
            return self._commands[name]
        except KeyError:
            known = sorted(self._commands)
            raise KeyError(f"{self.name}: no command {name!r}; known: {known}") from None

    @property
    def bound_points(self) -> tuple[BoundPoint, ...]:
        """Every point, resolved, in file order."""
        return tuple(self._bound.values())

    @property
    def bound_commands(self) -> tuple[BoundCommand, ...]:
        """Every command, resolved, in file order."""
        return tuple(self._commands.values())

    def plan(self, names: Iterable[str] | None = None) -> tuple[ReadBlock, ...]:
        """Read requests covering ``names`` (default: every point)."""
        chosen = self.bound_points if names is None else [self.point(n) for n in names]
        return plan_reads(
            [Span(p.name, p.table, p.address, p.count) for p in chosen],
            max_registers=self.max_read_registers,
            max_bits=self.max_read_bits,
            max_gap=self.max_gap,
            max_bit_gap=self.max_bit_gap,
        )

    def decode_block(self, block: ReadBlock, data: Sequence[int]) -> dict[str, Value]:
        """Values of the block's points from its registers (or 0/1 bits), range-checked."""
        return self.block_decoder(block)(data)

    def block_decoder(self, block: ReadBlock) -> Callable[[Sequence[int]], dict[str, Value]]:
        """``decode_block`` for one block with the per-point work done once (drivers keep it)."""
        steps: list[_DecodeStep] = []
        for name in block.names:
            point = self._bound[name]
            start = point.address - block.address
            decode = None if block.table.is_bit else point.codec.decoder()
            steps.append((name, start, start + point.count, decode, point.check))
        where = f"{block.table} block at {block.address}"

        def decode_block(data: Sequence[int]) -> dict[str, Value]:
            if len(data) < block.count:
                raise ProtocolError(f"{where}: short reply")
            values: dict[str, Value] = {}
            for name, start, end, decode, check in steps:
                if decode is None:  # a bit table: one 0/1 per address
                    value: Value = bool(data[start])
                else:
                    try:
                        value = decode(data[start:end])
                    except ValueError as exc:
                        raise ProtocolError(f"{name}: {exc}") from None
                values[name] = check(value)
            return values

        return decode_block

    def image(self, table: Table, values: Mapping[str, Value]) -> dict[int, int]:
        """Wire address -> register (or 0/1 bit) holding ``values`` (simulator side).

        Values are clamped into their type, as an instrument saturates its display.
        """
        words: dict[int, int] = {}
        for point in self.bound_points:
            if point.table is not table or point.name not in values:
                continue
            value = values[point.name]
            if table.is_bit:
                words[point.address] = int(bool(value))
            elif point.codec.dtype is DataType.BITS:
                assert point.codec.bit is not None
                bit = 1 << point.codec.bit
                old = words.get(point.address, 0)
                words[point.address] = old | bit if value else old & ~bit
            else:
                for i, word in enumerate(_clamped_words(point, value)):
                    words[point.address + i] = word
        return words


def _clamped_words(point: BoundPoint, value: Value) -> list[int]:
    codec = point.codec
    if codec.dtype.is_float:
        return codec.encode(value)
    low, high = raw_range(codec.dtype)
    raw = min(max(round((value - codec.offset) / codec.scale), low), high)
    return raw_to_words(raw, codec.dtype, codec.byte_order, codec.word_order)


def _checked(address: int) -> int:
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"wire address {address} is outside 0..65535")
    return address


def _check_overlaps(points: Iterable[BoundPoint]) -> None:
    """No register (or bit) may belong to two points; bits of one register may share it."""
    owners: dict[tuple[Table, int], str | dict[int, str]] = {}
    for point in points:
        for address in range(point.address, point.address + point.count):
            key = (point.table, address)
            held = owners.get(key)
            if point.codec.dtype is DataType.BITS and (held is None or isinstance(held, dict)):
                bits = held if isinstance(held, dict) else {}
                bit = point.codec.bit
                assert bit is not None
                if bit in bits:
                    raise ValueError(f"{point.name} overlaps {bits[bit]} ({point.table} {address})")
                bits[bit] = point.name
                owners[key] = bits
            elif held is not None:
                other = held if isinstance(held, str) else ", ".join(held.values())
                raise ValueError(f"{point.name} overlaps {other} ({point.table} {address})")
            else:
                owners[key] = point.name
