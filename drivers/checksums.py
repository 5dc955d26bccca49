"""Checksum variants used by Chinese tester protocols (protocols.md, "common conventions").

Each function takes the bytes the checksum covers and returns the checksum byte(s).
"""

from __future__ import annotations


def sum8(data: bytes) -> int:
    """Plain 8-bit sum, carry dropped (Nanhua analysers)."""
    return sum(data) & 0xFF


def neg_sum8(data: bytes) -> int:
    """Two's complement of the 8-bit sum, ``(-sum) & 0xFF`` (FuLi, Jiangxing, Mingquan)."""
    return -sum(data) & 0xFF


def inv_sum8(data: bytes) -> int:
    """One's complement of the 8-bit sum, ``~sum & 0xFF`` (Foshan FGA-4100, FuLi FMP-1)."""
    return ~sum(data) & 0xFF


def xor8(data: bytes) -> int:
    """XOR of all bytes."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def xor_ascii_hex(data: bytes) -> bytes:
    """XOR of all bytes rendered as two upper-case ASCII hex digits (Yaohua XK3190)."""
    return b"%02X" % xor8(data)
