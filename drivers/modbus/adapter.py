"""The only door to pymodbus's client API: connect, read, write, and errors in our terms.

pymodbus breaks its API between minor releases (it is pinned to 3.16 in pyproject.toml);
everything version-specific lives here so an upgrade touches one module.

What this adapter decides
-------------------------
- **Who reconnects**: not pymodbus. Clients are built with ``reconnect_delay=0`` (no
  automatic reconnect) and ``retries=0`` (one attempt per request); the ``ModbusBus``
  owner task reopens the link with its own backoff. pymodbus still drops a TCP
  connection by itself after ``retries + 3`` consecutive unanswered requests on it
  (all devices together); the owner then sees a dead link and reopens it.
- **Errors**: a failed connect is ``PortUnavailable``; ``ConnectionException`` (or a
  request failing on a link that has gone) is ``ConnectionLost``; silence is
  ``ResponseTimeout``; bytes that arrived but never formed an acceptable reply (bad CRC,
  garbage, a reply from another unit) are a ``FrameError`` carrying those bytes; a Modbus
  exception response is ``DeviceRefused`` with the exception code; a reply of the wrong
  function or size is ``UnexpectedResponse``.
- **Link kinds** (``parse_url``): Modbus TCP, RTU framing over a raw TCP socket (a serial
  device server), RTU on a local serial port.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU

from drivers.errors import (
    ConnectionLost,
    DeviceRefused,
    FrameError,
    LocalProtocolError,
    PortUnavailable,
    ResponseTimeout,
    UnexpectedResponse,
)
from drivers.modbus.planner import Table
from drivers.transport import LineSettings

#: Modbus TCP's registered port
DEFAULT_TCP_PORT: Final = 502

#: exception codes of the Modbus application protocol spec, §7
EXCEPTION_NAMES: Final[dict[int, str]] = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}

#: read function code of each table
_READ_FC: Final[dict[Table, int]] = {
    Table.COIL: 1,
    Table.DISCRETE_INPUT: 2,
    Table.HOLDING_REGISTER: 3,
    Table.INPUT_REGISTER: 4,
}


class LinkKind(enum.StrEnum):
    """How the bytes travel."""

    TCP = "tcp"  # Modbus TCP (MBAP header, no CRC)
    RTU_OVER_TCP = "rtu+tcp"  # RTU frames through a serial device server's raw TCP port
    RTU = "rtu"  # RTU frames on a local serial port


@dataclass(frozen=True, slots=True)
class ModbusTarget:
    """Where a Modbus link goes."""

    kind: LinkKind
    host: str = ""
    port: int = DEFAULT_TCP_PORT
    path: str = ""

    def describe(self) -> str:
        """Short form for logs."""
        where = self.path if self.kind is LinkKind.RTU else f"{self.host}:{self.port}"
        return f"{self.kind.value}:{where}"


def parse_url(url: str) -> ModbusTarget:
    """Parse a Modbus bus URL (see docs/protocols/modbus.md).

    ``tcp://host[:port]`` and bare ``host:port``: Modbus TCP. ``rtu+tcp://host:port`` and
    ``socket://host:port``: RTU frames over a raw TCP socket (serial device server, as
    ``socket://`` means on stream buses). ``rtu:///dev/ttyUSB0`` or a plain device path:
    RTU on a serial port.
    """
    parts = urlsplit(url)
    if parts.scheme in ("tcp", "rtu+tcp", "socket"):
        if not parts.hostname:
            raise PortUnavailable(f"{url}: expected {parts.scheme}://host:port")
        kind = LinkKind.TCP if parts.scheme == "tcp" else LinkKind.RTU_OVER_TCP
        if kind is LinkKind.RTU_OVER_TCP and parts.port is None:
            raise PortUnavailable(f"{url}: a serial device server needs an explicit port")
        return ModbusTarget(kind, parts.hostname, parts.port or DEFAULT_TCP_PORT)
    if parts.scheme == "rtu":
        return ModbusTarget(LinkKind.RTU, path=parts.path)
    if not url.startswith("/") and ":" in url and "/" not in url:
        host, _, port = url.rpartition(":")
        if port.isdigit():
            return ModbusTarget(LinkKind.TCP, host, int(port))
    return ModbusTarget(LinkKind.RTU, path=url)


class ModbusLink:
    """One open Modbus connection (used only by its bus owner task)."""

    def __init__(self, target: ModbusTarget, line: LineSettings, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._heard = b""
        self._client = _client(target, line, timeout, self._trace)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        # pymodbus hands us the receive buffer as it grows: remember what arrived, so
        # silence and garbage can be told apart when no reply is accepted
        if not sending:
            self._heard = data
        return data

    @property
    def is_open(self) -> bool:
        """False once the connection or port went away."""
        return self._client.connected

    async def connect(self) -> None:
        """Open the connection; ``PortUnavailable`` on failure."""
        if not await self._client.connect():
            raise PortUnavailable(f"modbus {self.target.describe()}: cannot connect")

    def close(self) -> None:
        """Close the connection; idempotent."""
        self._client.close()

    async def read(self, table: Table, address: int, count: int, unit: int) -> list[int]:
        """Read ``count`` registers (or bits, as 0/1) of ``table`` from wire ``address``."""
        fc = _READ_FC[table]
        client = self._client
        calls: dict[int, Callable[[], Awaitable[ModbusPDU]]] = {
            1: lambda: client.read_coils(address, count=count, device_id=unit),
            2: lambda: client.read_discrete_inputs(address, count=count, device_id=unit),
            3: lambda: client.read_holding_registers(address, count=count, device_id=unit),
            4: lambda: client.read_input_registers(address, count=count, device_id=unit),
        }
        reply = await self._execute(f"read {table} {address}+{count}", fc, calls[fc])
        values = [int(b) for b in reply.bits[:count]] if table.is_bit else list(reply.registers)
        if len(values) != count:
            raise UnexpectedResponse(
                f"asked {count} {table} values from {address}, got {len(values)}"
            )
        return values

    async def write_coil(self, address: int, value: bool, unit: int) -> None:
        """Write one coil (FC05)."""

        def call() -> Awaitable[ModbusPDU]:
            return self._client.write_coil(address, value, device_id=unit)

        await self._execute(f"write coil {address}", 5, call)

    async def write_registers(self, address: int, words: Sequence[int], unit: int) -> None:
        """Write holding registers: one with FC06, several with FC16."""
        if not words or any(not 0 <= w <= 0xFFFF for w in words):
            raise LocalProtocolError(f"register values must be 0..65535: {list(words)}")
        if len(words) == 1:
            fc = 6

            def call() -> Awaitable[ModbusPDU]:
                return self._client.write_register(address, words[0], device_id=unit)
        else:
            fc = 16

            def call() -> Awaitable[ModbusPDU]:
                return self._client.write_registers(address, list(words), device_id=unit)

        await self._execute(f"write holding {address}+{len(words)}", fc, call)

    async def _execute(
        self, what: str, fc: int, call: Callable[[], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        self._heard = b""
        try:
            # pymodbus applies its own timeout; this outer one only guards against a hang
            async with asyncio.timeout(self.timeout * 2 + 1.0):
                reply = await call()
        except ConnectionException as exc:
            raise ConnectionLost(f"{what}: {exc}") from None
        except ModbusIOException as exc:
            raise self._no_reply(what, exc) from None
        except TimeoutError:
            raise ResponseTimeout(f"{what}: no reply within {self.timeout} s") from None
        if isinstance(reply, ExceptionResponse):
            code = reply.exception_code
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise DeviceRefused(f"{what}: exception {code:#04x} ({name})", code)
        if reply.function_code != fc:
            raise UnexpectedResponse(f"{what}: reply has function {reply.function_code}")
        return reply

    def _no_reply(self, what: str, exc: ModbusIOException) -> Exception:
        if not self.is_open:
            return ConnectionLost(f"{what}: link dropped ({exc})")
        if self._heard:
            return FrameError(f"{what}: {len(self._heard)} bytes but no valid reply", self._heard)
        return ResponseTimeout(f"{what}: no reply within {self.timeout} s")


def _client(
    target: ModbusTarget,
    line: LineSettings,
    timeout: float,
    trace: Callable[[bool, bytes], bytes],
) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
    if target.kind is LinkKind.RTU:
        if line.stopbits not in (1, 2):
            raise PortUnavailable(f"{target.path}: pymodbus supports 1 or 2 stop bits only")
        return AsyncModbusSerialClient(
            target.path,
            framer=FramerType.RTU,
            baudrate=line.baudrate,
            bytesize=line.bytesize,
            parity=line.parity,
            stopbits=int(line.stopbits),
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
            trace_packet=trace,
        )
    return AsyncModbusTcpClient(
        target.host,
        port=target.port,
        framer=FramerType.SOCKET if target.kind is LinkKind.TCP else FramerType.RTU,
        timeout=timeout,
        retries=0,
        reconnect_delay=0,
        trace_packet=trace,
    )


async def open_modbus(target: ModbusTarget, line: LineSettings, timeout: float) -> ModbusLink:
    """Open a link to ``target``; raises ``PortUnavailable`` on failure."""
    link = ModbusLink(target, line, timeout)
    await link.connect()
    return link
