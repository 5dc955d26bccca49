"""Modbus simulators of the built-in maps, served by a real pymodbus server.

Theory of operation
-------------------
The register memory is a pymodbus ``SimDevice`` (one block per table, covering every
address the map uses, gaps included, so the driver's planned reads work), but it is
only a cache: its ``action`` hook runs on every request and

- on a read (FC01-04) refills the table from the instrument model
  (``simulators.devices.modbus_models``) through the map, read and packed by the
  simulator itself (``simulators.wire.modbus_map``: the map file is the instrument's
  document; the driver's ``drivers.modbus`` codec is not used), so the bytes on the wire
  are those the map describes and a codec mistake in the driver shows;
- on a write (FC05/06/15/16) turns the written coils/registers back into named commands
  (``start_test``...) or point values and hands them to the model, which may refuse
  with an exception code (6 busy, 3 illegal value); unknown addresses get 2.

Command coils are momentary: they read back 0. The device answers only its own unit id
(``SimContext.address``, default 1): requests for other units get no reply at all, as
on an RS-485 line, over TCP too.

Endpoints: ``serve(host, port)`` runs a Modbus TCP server (``options.framing: rtu``
runs RTU framing on the TCP port instead, like a serial device server), restarting on
the same port after a DISCONNECT fault; ``port`` is the bound port (pass 0 to get a free
one) and ``ready`` is set while it listens. ``serve_rtu_pty`` serves RTU on a PTY: a
``PtyEndpoint`` bridges the PTY to a pymodbus RTU server on loopback.

Faults (one per request, from the ``FaultPlan``):

=============  ====================================  =====================================
fault          Modbus TCP (``serve``)                RTU on a PTY (``serve_rtu_pty``)
=============  ====================================  =====================================
no_reply       reply swallowed                       same
slow_reply     reply after ``delay_s``               same
nak            exception response (code 6, or        same, as an RTU exception frame
               ``options.exception_code``)
bad_checksum   MBAP has no checksum: the protocol    last CRC byte corrupted
               id is corrupted, the client drops it
garbage        random bytes before the reply         same
glue           reply held, sent before the next one  same
split          not applicable: TCP is a stream       reply in two writes, 20 ms apart
disconnect     server closed for ``delay_s``, then   PTY (and symlink) gone for
               back on the same port                 ``delay_s``, then back
=============  ====================================  =====================================
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.base import SimContext, SimSpec
from simulators.devices.modbus_models import BrakeModel, HeadlampModel, InstrumentModel, SpeedModel
from simulators.endpoint import PtyEndpoint, SimLink
from simulators.faults import Fault, FaultPlan, FaultSpec
from simulators.wire import modbus_map
from simulators.wire.modbus_map import (
    BIT_TABLES,
    COIL,
    DISCRETE_INPUT,
    HOLDING_REGISTER,
    INPUT_REGISTER,
    SimMap,
    set_bit,
)

#: table addressed by each function code (22/23 are not used by the driver)
_TABLE_OF_FC: Final[dict[int, str]] = {
    1: COIL,
    5: COIL,
    15: COIL,
    2: DISCRETE_INPUT,
    3: HOLDING_REGISTER,
    6: HOLDING_REGISTER,
    16: HOLDING_REGISTER,
    4: INPUT_REGISTER,
}
_OPTIONS: Final = frozenset({"map", "framing", "exception_code"})
ILLEGAL_ADDRESS: Final = 0x02
ILLEGAL_VALUE: Final = 0x03


def crc16(frame: bytes) -> bytes:
    """Modbus RTU CRC of ``frame``, in wire order (low byte first)."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def rtu_exception(unit: int, function: int, code: int) -> bytes:
    """An RTU exception response frame."""
    body = bytes([unit, (function | 0x80) & 0xFF, code])
    return body + crc16(body)


class ModbusSim:
    """One simulated Modbus instrument: a register map, its model, and its endpoints."""

    def __init__(self, ctx: SimContext, regmap: SimMap, model: InstrumentModel) -> None:
        unknown = set(ctx.options) - _OPTIONS
        if unknown:
            raise ValueError(f"unknown Modbus simulator options: {sorted(unknown)}")
        self.ctx = ctx
        self.regmap = regmap
        self.model = model
        self.unit = 1 if ctx.address is None else ctx.address
        self.framing = FramerType.RTU if ctx.options.get("framing") == "rtu" else FramerType.SOCKET
        self.exception_code = int(ctx.options.get("exception_code", ExcCodes.DEVICE_BUSY))
        self.ready = asyncio.Event()
        self.port = 0
        self.url = ""

    # endpoints ------------------------------------------------------------------------
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve Modbus TCP (or RTU-over-TCP) on ``host:port`` until cancelled."""
        scheme = "rtu+tcp" if self.framing is FramerType.RTU else "tcp"
        while True:
            down: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            session = _Session(self, self.framing, self.ctx.faults, down)
            server = self._server(session, host, port)
            await server.serve_forever(background=True)
            self.port = port = _bound_port(server)
            self.url = f"{scheme}://{host}:{port}"
            self.ready.set()
            try:
                down_for = await down
            finally:
                self.ready.clear()
                server.close()  # closes the listener and every client connection
            await asyncio.sleep(down_for)

    async def serve_rtu_pty(self, symlink: Path | None = None) -> None:
        """Serve Modbus RTU on a PTY (``url`` is its path, or ``symlink``) until cancelled."""
        session = _Session(self, FramerType.RTU, None, None)  # faults act on the PTY bytes
        server = self._server(session, "127.0.0.1", 0)
        await server.serve_forever(background=True)
        bridge = functools.partial(self._bridge, _bound_port(server))
        nak = rtu_exception(self.unit, 4, self.exception_code)
        endpoint = PtyEndpoint(bridge, self.ctx.faults, symlink=symlink, nak=nak)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(endpoint.serve())
                await endpoint.ready.wait()
                self.url = endpoint.url
                self.ready.set()
        finally:
            self.ready.clear()
            server.close()  # closes the listener and every client connection

    async def _bridge(self, backend: int, link: SimLink) -> None:
        """Carry one PTY session to the RTU server and its replies back through faults."""
        reader, writer = await asyncio.open_connection("127.0.0.1", backend)
        try:
            async with asyncio.TaskGroup() as group:
                uplink = group.create_task(self._uplink(link, writer))
                while reply := await reader.read(512):
                    await link.send(reply)
                uplink.cancel()
        finally:
            writer.close()

    async def _uplink(self, link: SimLink, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await link.read()
            if len(request) >= 2:  # a NAK fault answers this request's function
                link.nak = rtu_exception(request[0], request[1], self.exception_code)
            writer.write(request)

    def _server(self, session: _Session, host: str, port: int) -> ModbusTcpServer:
        device = SimDevice(id=0, simdata=self._blocks(), action=session.action)
        return ModbusTcpServer(
            device,
            framer=session.framer,
            address=(host, port),
            trace_packet=session.trace_packet,
            trace_pdu=session.trace_pdu,
        )

    def _blocks(self) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
        """One block per table over every address the map uses (coils, di, hr, ir)."""
        spans: dict[str, list[int]] = {table: [] for table in modbus_map.TABLES}
        for point in self.regmap.points:
            spans[point.table] += [point.address, point.address + point.count - 1]
        for command in self.regmap.commands:
            spans[command.table] += [command.address]

        def block(table: str) -> list[SimData]:
            if table in BIT_TABLES:
                low, high = (min(spans[table]), max(spans[table])) if spans[table] else (0, 0)
                return [SimData(low, values=[False] * (high - low + 1), datatype=DataType.BITS)]
            if not spans[table]:  # a table the instrument does not have: every read is refused
                return [SimData(0, datatype=DataType.INVALID)]
            low, high = min(spans[table]), max(spans[table])
            return [SimData(low, count=high - low + 1, values=0, datatype=DataType.UINT16)]

        return (
            block(COIL),
            block(DISCRETE_INPUT),
            block(HOLDING_REGISTER),
            block(INPUT_REGISTER),
        )

    # request handling ----------------------------------------------------------------
    def access(
        self, fc: int, start: int, address: int, registers: list[int], written: list[Any] | None
    ) -> int | None:
        """Serve one request on the register memory; an exception code refuses it."""
        table = _TABLE_OF_FC.get(fc)
        if table is None:
            return int(ExcCodes.ILLEGAL_FUNCTION)
        now = asyncio.get_running_loop().time()
        if written is None:
            if fc <= 4:  # not the read-back pymodbus does to echo a write
                self._refresh(table, start, registers, now)
            return None
        if table == COIL:
            return self._write_coils(address, [bool(v) for v in written], now)
        return self._write_registers(address, [int(v) for v in written], now)

    def _refresh(self, table: str, start: int, registers: list[int], now: float) -> None:
        image = self.regmap.image(table, self.model.values(now))
        if table == COIL:  # command coils are momentary
            image.update({c.address: 0 for c in self.regmap.commands if c.table == table})
        for address, word in image.items():
            if table in BIT_TABLES:  # bit blocks are packed 16 to a register, bit 0 first
                index = address // 16 - start
                registers[index] = set_bit(registers[index], address % 16, bool(word))
            else:
                registers[address - start] = word

    def _write_coils(self, address: int, values: list[bool], now: float) -> int | None:
        commands = {c.address: c for c in self.regmap.commands if c.table == COIL}
        points = {p.address: p for p in self.regmap.points if p.table == COIL}
        for offset, value in enumerate(values):
            command, point = commands.get(address + offset), points.get(address + offset)
            if command is not None:
                code = self.model.command(command.name, now) if value == command.value else None
            elif point is not None and point.writable:
                code = self.model.write(point.name, value, now)
            else:
                code = ILLEGAL_ADDRESS
            if code:
                return code
        return None

    def _write_registers(self, address: int, words: list[int], now: float) -> int | None:
        single = (address, words[0]) if len(words) == 1 else None
        for command in self.regmap.commands:
            if command.table == HOLDING_REGISTER and (command.address, command.value) == single:
                return self.model.command(command.name, now)
        end, covered = address + len(words), 0
        for point in self.regmap.points:
            if point.table != HOLDING_REGISTER or not point.writable:
                continue
            if address <= point.address and point.address + point.count <= end:
                start = point.address - address
                value = point.value_of(words[start : start + point.count])
                if not point.plausible(value):  # the instrument refuses what it cannot show
                    return ILLEGAL_VALUE
                if code := self.model.write(point.name, value, now):
                    return code
                covered += point.count
        return None if covered == len(words) else ILLEGAL_ADDRESS


class _Session:
    """The hooks of one pymodbus server: unit filter and the faults acted out on it."""

    def __init__(
        self,
        sim: ModbusSim,
        framer: FramerType,
        faults: FaultPlan | None,
        down: asyncio.Future[float] | None,
    ) -> None:
        self.sim = sim
        self.framer = framer
        self.faults = faults
        self.down = down
        self.asked_unit = 0
        self.fault: FaultSpec | None = None
        self.fresh = False
        self.held = b""

    def trace_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """A request arrived (or a reply leaves): note its unit and draw its fault."""
        if not sending:
            self.asked_unit, self.fresh = pdu.dev_id, True
            mine = pdu.dev_id == self.sim.unit
            self.fault = self.faults.next_fault() if mine and self.faults is not None else None
            dropping = self.fault is not None and self.fault.fault is Fault.DISCONNECT
            if dropping and self.fault and self.down is not None and not self.down.done():
                self.down.set_result(self.fault.delay_s)
        return pdu

    async def action(
        self,
        fc: int,
        start: int,
        address: int,
        _count: int,
        registers: list[int],
        written: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this on every access to the register memory."""
        if self.asked_unit != self.sim.unit:
            return ExcCodes.GATEWAY_NO_RESPONSE  # no side effects; the reply is swallowed
        if self.fresh:
            self.fresh = False
            kind = self.fault.fault if self.fault else None
            if kind is Fault.SLOW_REPLY and self.fault:
                await asyncio.sleep(self.fault.delay_s)
            if kind is Fault.NAK:
                return ExcCodes(self.sim.exception_code)
        code = self.sim.access(fc, start, address, registers, cast(list[Any] | None, written))
        return ExcCodes(code) if code else None

    def trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Bytes about to be sent: drop other units' replies, act out the fault."""
        if not sending or not data:
            return data
        unit = data[0] if self.framer is FramerType.RTU else data[6]
        if unit != self.sim.unit:
            return b""  # not addressed to us: a real slave stays silent
        fault, self.fault = self.fault, None
        if fault is not None and fault.fault is Fault.GLUE:
            self.held += data
            return b""
        out, self.held = self.held + self._corrupt(fault, data), b""
        return out

    def _corrupt(self, fault: FaultSpec | None, data: bytes) -> bytes:
        match fault.fault if fault else None:
            case Fault.NO_REPLY | Fault.DISCONNECT:
                return b""
            case Fault.BAD_CHECKSUM if self.framer is FramerType.RTU:
                return data[:-1] + bytes([data[-1] ^ 0x5A])
            case Fault.BAD_CHECKSUM:  # MBAP: a protocol id other than 0 makes the client drop it
                return data[:2] + b"\x5a\x5a" + data[4:]
            case Fault.GARBAGE if self.faults is not None:
                return self.faults.garbage() + data
            case _:
                return data


def _bound_port(server: ModbusTcpServer) -> int:
    listener = cast(asyncio.Server, server.transport)
    port: int = listener.sockets[0].getsockname()[1]
    return port


def _sim(default_map: str, model: Callable[[SimContext], InstrumentModel]) -> Any:
    def build(ctx: SimContext) -> ModbusSim:
        regmap = modbus_map.load(str(ctx.options.get("map", default_map)))
        return ModbusSim(ctx, regmap, model(ctx))

    return build


SIMS: tuple[SimSpec, ...] = (
    SimSpec(
        "modbus-brake", "modbus", "Modbus roller brake tester", _sim("brake_tester", BrakeModel)
    ),
    SimSpec(
        "modbus-headlamp",
        "modbus",
        "Modbus headlamp tester",
        _sim("headlamp_tester", HeadlampModel),
    ),
    SimSpec(
        "modbus-speedometer",
        "modbus",
        "Modbus speedometer tester",
        _sim("speedometer_tester", SpeedModel),
    ),
)
