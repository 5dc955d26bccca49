"""One owner task per Modbus link; devices queue their requests to it.

A Modbus link is a Modbus TCP connection, or an RTU line (a local serial port, or a
serial device server reached over raw TCP). Several devices (unit ids) may share it, as
on any RS-485 bus. ``ModbusBus`` is a ``BusOwner``: its task opens the link through
``drivers.modbus.adapter`` (the only module that knows pymodbus), reopens it with
backoff when it drops, and runs one device job at a time; ``inter_request_delay`` is
also kept between the requests inside one job (RS-485 turnaround).

URL forms (``url`` argument):

================================  ==========================================
``tcp://192.168.1.20:502``        Modbus TCP (port defaults to 502)
``192.168.1.20:502``              Modbus TCP (the gateway config's form)
``rtu+tcp://192.168.1.30:4001``   RTU frames through a serial device server
``socket://192.168.1.30:4001``    same (as ``socket://`` means on stream buses)
``rtu:///dev/ttyUSB0``            RTU on a local serial port, with ``line``
``/dev/serial/by-id/...``         same; also a PTY path (simulators, tests)
================================  ==========================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from drivers.bus import BusOwner
from drivers.modbus.adapter import ModbusLink, ModbusTarget, open_modbus, parse_url
from drivers.modbus.planner import ReadBlock, Table
from drivers.transport import LineSettings

R = TypeVar("R")


class ModbusBus(BusOwner[ModbusLink]):
    """The owner task of one Modbus link."""

    def __init__(
        self,
        name: str,
        url: str,
        line: LineSettings | None = None,
        *,
        response_timeout: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        self.url = url
        self.target: ModbusTarget = parse_url(url)
        self.line = line or LineSettings()
        self.response_timeout = response_timeout

    async def _open(self) -> ModbusLink:
        return await open_modbus(self.target, self.line, self.response_timeout)

    def _close(self, link: ModbusLink) -> None:
        link.close()

    def _link_alive(self, link: ModbusLink) -> bool:
        return link.is_open

    async def _pause(self, index: int) -> None:
        """Keep the inter-request gap before the ``index``-th request of a job."""
        if index and self.inter_request_delay > 0:
            await asyncio.sleep(self.inter_request_delay)

    async def read_blocks(
        self,
        device: str,
        unit: int,
        blocks: Sequence[ReadBlock],
        decode: Callable[[list[list[int]]], R],
    ) -> R:
        """Read every block for ``device`` in one job (a consistent snapshot) and decode.

        ``decode`` runs inside the job so that a reply it rejects (an implausible value)
        is reported to the bus observer like any other failed request.
        """

        async def run(link: ModbusLink) -> R:
            data: list[list[int]] = []
            for index, block in enumerate(blocks):
                await self._pause(index)
                data.append(await link.read(block.table, block.address, block.count, unit))
            return decode(data)

        return await self.submit(device, run)

    async def write(
        self, device: str, unit: int, table: Table, address: int, words: Sequence[int]
    ) -> None:
        """Write one coil (``words`` = [0 or 1]) or holding registers for ``device``."""

        async def run(link: ModbusLink) -> None:
            if table is Table.COIL:
                await link.write_coil(address, bool(words[0]), unit)
            else:
                await link.write_registers(address, words, unit)

        await self.submit(device, run)
