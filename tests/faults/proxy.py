"""A TCP proxy between the daemon and mosquitto that breaks the link on demand.

The client-to-broker direction is relayed packet by packet (MQTT fixed header, then the
remaining length), so a cut can fall exactly half-way through a PUBLISH; the other
direction is relayed as bytes. Faults:

- ``drop_all``: every connection reset at once (both sides, RST);
- ``stall_all``: every current connection stops forwarding in both directions but stays
  open, like a link whose packets vanish; when the broker gives up on its side, the
  client's side is still left open, so the client can only notice by its keepalive;
- ``cut_mid_publish``: the next PUBLISH to a topic ending in a suffix is forwarded up to
  half its bytes, then both sides are reset;
- ``cut_after``: the next ``n`` client bytes are forwarded, then both sides are reset.

New connections are always relayed normally (the reconnect must be able to succeed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

PUBLISH = 3


@dataclass
class Cut:
    """Where a connection was cut."""

    topic: str | None  # the PUBLISH cut half-way (None for ``cut_after``)
    packet_bytes: int
    forwarded: int
    record: dict[str, Any] | None = None  # the result record being published, if one


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    stalled: bool = False
    closed_by_client: bool = False

    def reset(self) -> None:
        for writer in (self.client, self.upstream):
            writer.transport.abort()


@dataclass
class _CutPlan:
    topic_suffix: str | None
    budget: int
    done: asyncio.Future[Cut] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class LinkProxy:
    """Listens on a free loopback port and relays to ``127.0.0.1:upstream_port``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.accepted = 0
        self.changed = asyncio.Event()
        self.stalled_pairs: list[_Pair] = []
        self._pairs: set[_Pair] = set()
        self._plan: _CutPlan | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pair in list(self._pairs):
            pair.reset()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    @property
    def live(self) -> int:
        """Connections relaying now (not stalled)."""
        return sum(1 for pair in self._pairs if not pair.stalled)

    # faults ------------------------------------------------------------------------------
    def drop_all(self) -> int:
        """Reset every connection; returns how many there were."""
        pairs = list(self._pairs)
        for pair in pairs:
            pair.reset()
        return len(pairs)

    def stall_all(self) -> int:
        """Stop forwarding on every current connection without closing it."""
        pairs = [pair for pair in self._pairs if not pair.stalled]
        for pair in pairs:
            pair.stalled = True
            self.stalled_pairs.append(pair)
        return len(pairs)

    def cut_mid_publish(self, topic_suffix: str) -> asyncio.Future[Cut]:
        """Arm a cut half-way through the next PUBLISH to ``*topic_suffix``."""
        self._plan = _CutPlan(topic_suffix, 0)
        return self._plan.done

    def cut_after(self, n: int) -> asyncio.Future[Cut]:
        """Arm a cut after the next ``n`` bytes from the client."""
        self._plan = _CutPlan(None, n)
        return self._plan.done

    # relaying ----------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        self.accepted += 1
        self.changed.set()
        upward = asyncio.create_task(self._client_to_broker(pair, reader))
        downward = asyncio.create_task(self._broker_to_client(pair, up_reader))
        try:
            await asyncio.wait({upward, downward}, return_when=asyncio.FIRST_COMPLETED)
            if pair.stalled and not upward.done():
                # a black hole sends no FIN: the client must find out by itself
                await upward
        finally:
            for task in (upward, downward):
                task.cancel()
            await asyncio.gather(upward, downward, return_exceptions=True)
            pair.reset()
            self._pairs.discard(pair)
            self.changed.set()

    async def _client_to_broker(self, pair: _Pair, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                packet, header_size = await _read_packet(reader)
                if pair.stalled:
                    continue  # swallowed by the black hole
                cut = self._cut_point(packet, header_size)
                if cut is not None:
                    pair.upstream.write(packet[: cut.forwarded])
                    with contextlib.suppress(ConnectionError):
                        await pair.upstream.drain()
                    pair.reset()
                    plan, self._plan = self._plan, None
                    if plan is not None and not plan.done.done():
                        plan.done.set_result(cut)
                    return
                pair.upstream.write(packet)
                await pair.upstream.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pair.closed_by_client = True

    def _cut_point(self, packet: bytes, header_size: int) -> Cut | None:
        plan = self._plan
        if plan is None:
            return None
        if plan.topic_suffix is None:
            if plan.budget >= len(packet):
                plan.budget -= len(packet)
                return None
            return Cut(None, len(packet), plan.budget)
        if packet[0] >> 4 != PUBLISH:
            return None
        topic, payload = _publish_parts(packet, header_size)
        if not topic.endswith(plan.topic_suffix):
            return None
        record = None
        with contextlib.suppress(ValueError):
            record = json.loads(payload)
        return Cut(topic, len(packet), len(packet) // 2, record)

    async def _broker_to_client(self, pair: _Pair, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if pair.stalled:
                    continue
                pair.client.write(data)
                await pair.client.drain()


async def _read_packet(reader: asyncio.StreamReader) -> tuple[bytes, int]:
    """One MQTT control packet, and the size of its fixed header."""
    header = bytearray(await reader.readexactly(1))
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        header.append(byte)
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = await reader.readexactly(length)
    return bytes(header) + body, len(header)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _publish_parts(packet: bytes, header_size: int) -> tuple[str, bytes]:
    """Topic and payload of an MQTT 5 PUBLISH."""
    qos = (packet[0] >> 1) & 0x03
    at = header_size
    topic_len = int.from_bytes(packet[at : at + 2], "big")
    topic = packet[at + 2 : at + 2 + topic_len].decode(errors="replace")
    at += 2 + topic_len
    if qos:
        at += 2  # packet identifier
    props_len, at = _varint(packet, at)
    return topic, packet[at + props_len :]
