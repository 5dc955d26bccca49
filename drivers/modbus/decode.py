"""Register words <-> values: the Modbus data-type codec (pure, no I/O).

Theory of operation
-------------------
Modbus moves 16-bit registers ("words") and single bits; everything wider is a
convention between the instrument and us. A value of N bytes is packed big-endian
(``struct`` with ``>``), cut into N/2 words, and then two independent switches apply:

- ``word_order`` (the order of the registers): ``big`` puts the most significant word at
  the lowest address (Modicon's own convention and protocols.md §9's "two registers
  big-endian word order"); ``little`` reverses the words.
- ``byte_order`` (inside each register): ``big`` sends the high byte first, as the Modbus
  spec mandates for a register; ``little`` swaps the two bytes of every register (seen
  on some PLC-derived instruments).

So float32 1.0 (0x3F800000) is ``[0x3F80, 0x0000]`` in big/big ("ABCD"), ``[0x0000,
0x3F80]`` in word-little ("CDAB"), ``[0x803F, 0x0000]`` in byte-little ("BADC") and
``[0x0000, 0x803F]`` in both-little ("DCBA").

Engineering values: ``value = raw * scale + offset``. For integer types the result is
rounded to the decimals that ``scale`` and ``offset`` can produce (raw 383 × 0.1 gives
38.3, not 38.300000000000004); it stays an ``int`` when scale is 1 and offset 0. Float
types are not rounded. The reverse (for writes and for the simulator) rounds to the
nearest raw integer and refuses values the type cannot hold (``ValueError``).

``bits`` is one bit of a register (bit 0 = least significant); ``bool`` is a coil or
discrete input. Both decode to ``bool``. This module raises only ``ValueError``; the
register map turns that into the driver error tree.
"""

from __future__ import annotations

import enum
import functools
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

Value = int | float | bool


class DataType(enum.StrEnum):
    """What a point holds."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BITS = "bits"  # one bit of a register
    BOOL = "bool"  # a coil or discrete input

    @property
    def is_bit(self) -> bool:
        """Decodes to a bool."""
        return self in (DataType.BITS, DataType.BOOL)

    @property
    def is_float(self) -> bool:
        """An IEEE-754 type."""
        return self in (DataType.FLOAT32, DataType.FLOAT64)


class Order(enum.StrEnum):
    """Byte order inside a register, or word order across registers."""

    BIG = "big"
    LITTLE = "little"


#: struct format character of each numeric type (packed big-endian)
_STRUCT: Final[dict[DataType, str]] = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}


#: precompiled per type (decoding runs for every point of every poll: keep it lean)
_STRUCTS: Final[dict[DataType, struct.Struct]] = {
    t: struct.Struct(">" + f) for t, f in _STRUCT.items()
}
_COUNTS: Final[dict[DataType, int]] = {
    **{t: s.size // 2 for t, s in _STRUCTS.items()},
    DataType.BITS: 1,
    DataType.BOOL: 1,
}
_WORDS: Final[dict[int, struct.Struct]] = {n: struct.Struct(f">{n}H") for n in (1, 2, 4)}


def register_count(dtype: DataType) -> int:
    """How many registers (or, for ``bool``, bits) a value of ``dtype`` occupies."""
    return _COUNTS[dtype]


def raw_range(dtype: DataType) -> tuple[int, int]:
    """Smallest and largest raw integer of an integer type."""
    size = register_count(dtype) * 16
    if dtype.value.startswith("u"):
        return 0, (1 << size) - 1
    return -(1 << (size - 1)), (1 << (size - 1)) - 1


def _order_words(words: list[int], byte_order: Order, word_order: Order) -> list[int]:
    """Apply (or undo: the operation is its own inverse) the two order switches."""
    if word_order is Order.LITTLE:
        words = words[::-1]
    if byte_order is Order.LITTLE:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words


def words_to_raw(
    words: Sequence[int], dtype: DataType, byte_order: Order, word_order: Order
) -> int | float:
    """Decode the raw number held in ``words`` (exactly ``register_count`` of them)."""
    count = _COUNTS[dtype]
    if len(words) != count or dtype is DataType.BITS or dtype is DataType.BOOL:
        raise ValueError(f"{dtype.value} needs {count} register(s), got {len(words)}")
    packer = _WORDS[count]
    try:
        data = packer.pack(*words)  # also checks that every word is 0..65535
    except struct.error:
        raise ValueError(f"register values must be 0..65535: {list(words)}") from None
    if byte_order is Order.LITTLE or word_order is Order.LITTLE:
        data = packer.pack(*_order_words(list(words), byte_order, word_order))
    value: int | float = _STRUCTS[dtype].unpack(data)[0]
    return value


def raw_to_words(
    raw: int | float, dtype: DataType, byte_order: Order, word_order: Order
) -> list[int]:
    """Encode a raw number into registers; ``ValueError`` if the type cannot hold it."""
    if dtype.is_bit:
        raise ValueError(f"{dtype.value} is not a register type")
    try:
        data = _STRUCTS[dtype].pack(raw)
    except (struct.error, OverflowError) as exc:
        raise ValueError(f"{raw!r} does not fit {dtype.value}: {exc}") from None
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return _order_words(words, byte_order, word_order)


def get_bit(word: int, bit: int) -> bool:
    """Bit ``bit`` (0 = least significant) of a register."""
    return bool((word >> bit) & 1)


def set_bit(word: int, bit: int, value: bool) -> int:
    """``word`` with bit ``bit`` set to ``value``."""
    return word | (1 << bit) if value else word & ~(1 << bit) & 0xFFFF


@functools.cache
def _decimals(number: float) -> int:
    exponent = Decimal(repr(number)).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclass(frozen=True, slots=True)
class ValueCodec:
    """How one point's registers become an engineering value, and back."""

    dtype: DataType
    byte_order: Order = Order.BIG
    word_order: Order = Order.BIG
    scale: float = 1.0
    offset: float = 0.0
    bit: int | None = None

    @property
    def count(self) -> int:
        """Registers (or bits) the point occupies."""
        return register_count(self.dtype)

    @property
    def is_identity(self) -> bool:
        """No scaling: integer raws stay integers."""
        return self.scale == 1 and self.offset == 0

    def decode(self, words: Sequence[int]) -> Value:
        """Value from the point's own registers (``bits``: the one register)."""
        if self.dtype is DataType.BOOL:
            raise ValueError("bool points are coils or discrete inputs, not registers")
        if self.dtype is DataType.BITS:
            if len(words) != 1 or self.bit is None:
                raise ValueError("bits needs one register and a bit index")
            return get_bit(words[0], self.bit)
        raw = words_to_raw(words, self.dtype, self.byte_order, self.word_order)
        return self.scaled(raw)

    def decoder(self) -> Callable[[Sequence[int]], Value]:
        """``decode`` with every per-point choice made once (for the per-poll hot path)."""
        return _compiled(self)

    def scaled(self, raw: int | float) -> Value:
        """Engineering value of a raw number."""
        scale, offset = self.scale, self.offset
        identity = scale == 1 and offset == 0
        if self.dtype is DataType.FLOAT32 or self.dtype is DataType.FLOAT64:
            return raw * scale + offset if not identity else raw
        if identity:
            return int(raw)
        return round(raw * scale + offset, max(_decimals(scale), _decimals(offset)))

    def to_raw(self, value: Value) -> int | float:
        """Raw number for an engineering value; ``ValueError`` when out of the type."""
        if self.dtype.is_bit:
            raise ValueError(f"{self.dtype.value} has no raw number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        raw = (value - self.offset) / self.scale if not self.is_identity else value
        if self.dtype.is_float:
            return float(raw)
        rounded = round(raw)
        low, high = raw_range(self.dtype)
        if not low <= rounded <= high:
            raise ValueError(f"{value!r} gives raw {rounded}, outside {self.dtype.value}")
        return rounded

    def encode(self, value: Value) -> list[int]:
        """Registers holding ``value`` (not for bit points)."""
        return raw_to_words(self.to_raw(value), self.dtype, self.byte_order, self.word_order)


@functools.cache
def _compiled(codec: ValueCodec) -> Callable[[Sequence[int]], Value]:
    """A function equal to ``codec.decode`` for the common case: plain big-endian words."""
    dtype = codec.dtype
    if dtype.is_bit or codec.byte_order is Order.LITTLE or codec.word_order is Order.LITTLE:
        return codec.decode
    count = _COUNTS[dtype]
    pack, unpack = _WORDS[count].pack, _STRUCTS[dtype].unpack
    scale, offset = codec.scale, codec.offset
    identity, is_float = codec.is_identity, dtype.is_float
    digits = max(_decimals(scale), _decimals(offset))

    def decode(words: Sequence[int]) -> Value:
        if len(words) != count:
            raise ValueError(f"{dtype.value} needs {count} register(s), got {len(words)}")
        try:
            raw = unpack(pack(*words))[0]
        except struct.error:
            raise ValueError(f"register values must be 0..65535: {list(words)}") from None
        if identity:
            return raw  # type: ignore[no-any-return]
        if is_float:
            return raw * scale + offset  # type: ignore[no-any-return]
        return round(raw * scale + offset, digits)  # type: ignore[no-any-return]

    return decode
