"""Yaohua XK3190 weighing-indicator bytes in the indicator role.

From protocols.md §5.4 (the XK3190 manuals, S8). Frames are printable ASCII between STX
(0x02) and ETX (0x03); the two characters before ETX are the XOR of every byte between
STX and them, as upper-case hex, high nibble first.

- Continuous output tF=0, 12 bytes: ``02 · '+'|'-' · 6 digits (no point) · decimals
  ('0'-'4', counted from the right) · XH XL · 03``. +200.0 kg is
  ``02 2B 30 30 32 30 30 30 31 31 38 03``.
- Command mode: the host sends ``02 · address 'A'-'Z' · command 'A'-'F' · XH XL · 03``;
  the indicator answers ``02 · address · command · data · XH XL · 03``, data empty for A
  (handshake) and sign + 6 digits + decimals for B (gross), C (tare), D (net).

Address 'A' is the indicator's address 1, 'Z' 26. The NAK byte 0x15 is our choice (the
manuals define no error answer).
"""

from __future__ import annotations

from typing import Final

from drivers.checksums import xor_ascii_hex

STX: Final = 0x02
ETX: Final = 0x03
NAK: Final = 0x15
REQUEST_LEN: Final = 6
HANDSHAKE, GROSS, TARE, NET = "A", "B", "C", "D"
WEIGHT_COMMANDS: Final = frozenset({GROSS, TARE, NET})


def frame(body: bytes) -> bytes:
    """STX, ``body``, its XOR as two hex characters, ETX."""
    return bytes((STX,)) + body + xor_ascii_hex(body) + bytes((ETX,))


def weight_field(value: float, decimals: int) -> bytes:
    """Sign, the six digits shown (``value`` without its point) and the decimals."""
    counts = round(value * 10**decimals)
    sign = "-" if counts < 0 else "+"
    return f"{sign}{abs(counts):06d}{decimals}".encode("ascii")


def continuous(value: float, decimals: int) -> bytes:
    """One tF=0 frame showing ``value`` with ``decimals`` places."""
    return frame(weight_field(value, decimals))


def reply(address: str, command: str, weight: tuple[float, int] | None = None) -> bytes:
    """A command-mode reply; ``weight`` (value, decimals) for B, C and D."""
    data = b"" if weight is None else weight_field(*weight)
    return frame((address + command).encode("ascii") + data)


def address_letter(address: int) -> str:
    """The indicator's address setting 1-26 as the letter on the wire."""
    if not 1 <= address <= 26:
        raise ValueError(f"XK3190 addresses are 1-26, not {address}")
    return chr(ord("A") - 1 + address)


def _is_letter(byte: int) -> bool:
    return ord("A") <= byte <= ord("Z")


def split_requests(buf: bytearray) -> list[tuple[str, str]]:
    """The (address, command) requests at the front of ``buf`` (removed). Anything else
    (noise, a corrupted frame or checksum) is skipped up to the next STX: an indicator
    stays silent."""
    requests: list[tuple[str, str]] = []
    while buf:
        if buf[0] != STX:
            at = buf.find(bytes((STX,)))
            del buf[: at if at > 0 else len(buf)]
            continue
        if STX in buf[1:REQUEST_LEN]:  # a new frame began: this one was cut
            del buf[: buf.find(bytes((STX,)), 1)]
            continue
        if len(buf) < REQUEST_LEN:
            break
        request = bytes(buf[:REQUEST_LEN])
        address, command, check = request[1], request[2], request[3:5].upper()
        ok = request[5] == ETX and _is_letter(address) and _is_letter(command)
        if ok and xor_ascii_hex(request[1:3]) == check:
            requests.append((chr(address), chr(command)))
            del buf[:REQUEST_LEN]
        else:
            del buf[:1]
    return requests
