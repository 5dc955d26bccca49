"""The Modbus data-type codec: every type, byte and word order, scaling (pure; no I/O)."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.modbus.decode import (
    DataType,
    Order,
    ValueCodec,
    raw_range,
    raw_to_words,
    register_count,
    words_to_raw,
)

B, L = Order.BIG, Order.LITTLE
INT_TYPES = [t for t in DataType if not t.is_bit and not t.is_float]


@pytest.mark.parametrize(
    ("dtype", "raw", "byte_order", "word_order", "words"),
    [
        (DataType.INT16, -1, B, B, [0xFFFF]),
        (DataType.INT16, 0x1234, L, B, [0x3412]),
        (DataType.UINT16, 0xBEEF, B, L, [0xBEEF]),  # word order means nothing for one word
        (DataType.UINT32, 0x12345678, B, B, [0x1234, 0x5678]),  # ABCD
        (DataType.UINT32, 0x12345678, B, L, [0x5678, 0x1234]),  # CDAB
        (DataType.UINT32, 0x12345678, L, B, [0x3412, 0x7856]),  # BADC
        (DataType.UINT32, 0x12345678, L, L, [0x7856, 0x3412]),  # DCBA
        (DataType.INT32, -2, B, B, [0xFFFF, 0xFFFE]),
        (DataType.INT32, -2, B, L, [0xFFFE, 0xFFFF]),
        (DataType.FLOAT32, 1.0, B, B, [0x3F80, 0x0000]),
        (DataType.FLOAT32, 1.0, B, L, [0x0000, 0x3F80]),
        (DataType.FLOAT32, 1.0, L, B, [0x803F, 0x0000]),
        (DataType.FLOAT32, 1.0, L, L, [0x0000, 0x803F]),
        (DataType.FLOAT32, -37.5, B, B, [0xC216, 0x0000]),
        (DataType.UINT64, 0x0102030405060708, B, B, [0x0102, 0x0304, 0x0506, 0x0708]),
        (DataType.UINT64, 0x0102030405060708, B, L, [0x0708, 0x0506, 0x0304, 0x0102]),
        (DataType.INT64, -1, L, L, [0xFFFF] * 4),
        (DataType.INT64, -(2**63), B, B, [0x8000, 0, 0, 0]),
        (DataType.FLOAT64, 1.0, B, B, [0x3FF0, 0, 0, 0]),
        (DataType.FLOAT64, 1.0, L, L, [0, 0, 0, 0xF03F]),
    ],
)
def test_every_type_and_order(
    dtype: DataType, raw: int | float, byte_order: Order, word_order: Order, words: list[int]
) -> None:
    assert raw_to_words(raw, dtype, byte_order, word_order) == words
    assert words_to_raw(words, dtype, byte_order, word_order) == raw
    assert register_count(dtype) == len(words)


def test_bits_and_bools() -> None:
    codec = ValueCodec(DataType.BITS, bit=4)
    assert codec.decode([0b10000]) is True
    assert codec.decode([0b01111]) is False
    with pytest.raises(ValueError, match="not registers"):
        ValueCodec(DataType.BOOL).decode([1])
    with pytest.raises(ValueError, match="no raw number"):
        codec.encode(True)


@pytest.mark.parametrize(
    ("codec", "words", "value"),
    [
        (ValueCodec(DataType.UINT16, scale=0.1), [383], 38.3),
        (ValueCodec(DataType.INT16, scale=0.01), [0xFFCE], -0.5),
        (ValueCodec(DataType.UINT16, scale=100), [215], 21500),
        (ValueCodec(DataType.INT16, scale=0.5, offset=-40), [100], 10.0),
        (ValueCodec(DataType.UINT16, scale=0.25), [3], 0.75),
        (ValueCodec(DataType.UINT16), [7], 7),
        (ValueCodec(DataType.FLOAT32, scale=2, offset=1), [0x3F80, 0], 3.0),
    ],
)
def test_scale_and_offset(codec: ValueCodec, words: list[int], value: float) -> None:
    assert codec.decode(words) == value
    assert codec.encode(value) == words


def test_unscaled_integers_stay_integers() -> None:
    assert isinstance(ValueCodec(DataType.UINT32).decode([0, 5]), int)
    assert isinstance(ValueCodec(DataType.UINT16, scale=0.1).decode([5]), float)


@pytest.mark.parametrize(
    ("codec", "value"),
    [
        (ValueCodec(DataType.UINT16), -1),
        (ValueCodec(DataType.UINT16, scale=0.1), 6553.6),
        (ValueCodec(DataType.INT16), 40000),
        (ValueCodec(DataType.FLOAT32), 1e39),
        (ValueCodec(DataType.INT32), math.nan),
    ],
)
def test_values_a_type_cannot_hold_are_refused(codec: ValueCodec, value: float) -> None:
    with pytest.raises(ValueError, match=r"fit|outside|finite"):
        codec.encode(value)


def test_wrong_register_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="needs 2"):
        words_to_raw([1], DataType.INT32, B, B)
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        words_to_raw([70000], DataType.UINT16, B, B)


orders = st.sampled_from(list(Order))


@st.composite
def typed_raws(draw: st.DrawFn) -> tuple[DataType, int | float]:
    dtype = draw(st.sampled_from([t for t in DataType if not t.is_bit]))
    if dtype is DataType.FLOAT32:
        return dtype, draw(st.floats(width=32, allow_nan=False))
    if dtype is DataType.FLOAT64:
        return dtype, draw(st.floats(allow_nan=False))
    low, high = raw_range(dtype)
    return dtype, draw(st.integers(low, high))


@given(typed_raws(), orders, orders)
def test_raw_round_trip(
    typed: tuple[DataType, int | float], byte_order: Order, word_order: Order
) -> None:
    dtype, raw = typed
    words = raw_to_words(raw, dtype, byte_order, word_order)
    assert all(0 <= w <= 0xFFFF for w in words)
    assert words_to_raw(words, dtype, byte_order, word_order) == raw


STRUCT_CHAR = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}


@given(typed_raws(), orders, orders)
def test_orders_agree_with_struct(
    typed: tuple[DataType, int | float], byte_order: Order, word_order: Order
) -> None:
    """Undoing the orders by hand gives the big-endian struct packing back."""
    dtype, raw = typed
    words = raw_to_words(raw, dtype, byte_order, word_order)
    if word_order is L:
        words = words[::-1]
    data = b"".join(w.to_bytes(2, "big" if byte_order is B else "little") for w in words)
    assert struct.unpack(">" + STRUCT_CHAR[dtype.value], data)[0] == raw


@given(
    st.sampled_from(INT_TYPES),
    st.sampled_from([1.0, 0.1, 0.01, 0.5, 0.25, 100.0, 10.0]),
    st.sampled_from([0.0, -40.0, 273.15, 0.5]),
    st.data(),
)
def test_scaled_values_round_trip_to_the_same_raw(
    dtype: DataType, scale: float, offset: float, data: st.DataObject
) -> None:
    low, high = raw_range(dtype)
    raw = data.draw(st.integers(max(low, -(2**40)), min(high, 2**40)))
    codec = ValueCodec(dtype, scale=scale, offset=offset)
    assert codec.to_raw(codec.scaled(raw)) == raw


@given(
    typed_raws(),
    orders,
    orders,
    st.sampled_from([1.0, 0.1, 0.01, 0.25, 100.0]),
    st.sampled_from([0.0, -40.0, 0.5]),
)
def test_the_compiled_decoder_equals_decode(
    typed: tuple[DataType, int | float],
    byte_order: Order,
    word_order: Order,
    scale: float,
    offset: float,
) -> None:
    """``decoder()`` (the per-poll fast path) gives exactly what ``decode`` gives."""
    dtype, raw = typed
    codec = ValueCodec(dtype, byte_order, word_order, scale, offset)
    words = raw_to_words(raw, dtype, byte_order, word_order)
    expected = codec.decode(words)
    got = codec.decoder()(words)
    assert type(got) is type(expected)
    assert got == expected or (math.isnan(got) and math.isnan(expected))
    for bad in ([*words, 0], [70000] * len(words)):
        with pytest.raises(ValueError, match=r"needs|0\.\.65535"):
            codec.decoder()(bad)
