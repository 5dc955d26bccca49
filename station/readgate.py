"""The receiver's flow control: stop reading the broker's socket while it holds enough.

paho acknowledges a QoS 1 message as soon as it reads it, and Debian 12's mosquitto
2.0.11 does not hold a client's window (Receive Maximum, ``max_inflight_messages``) once
the acknowledgements flow: every PUBACK of the oldest message in flight sends it a whole
window more (docs/performance.md, bench/receiver_window.py). So the bound is kept here,
at the TCP level: while the receiver holds ``limit`` messages (aiomqtt's queue and the
batch being stored), the client's socket is taken out of the event loop; the kernel's
buffers fill, then the broker keeps the rest in its session queue (which its
``max_queued_messages`` must allow for: config/mosquitto/lanegw.conf).

Whatever the broker sends this client while its reads are paused waits behind the records
it has lined up, so the receiver publishes its acks on a second connection; on this one
paho only sends PUBACKs and pings (a ping's answer may come late, but the records before
it are read after every batch, which keeps paho's keepalive content).

This reaches into aiomqtt 2.x and paho 2.x (``Client._client``, ``_disconnected``): the
reader installed on resume does what aiomqtt's own reader does.
"""

from __future__ import annotations

import asyncio

import aiomqtt
import paho.mqtt.client as paho


class ReadGate:
    """Counts what the receiver holds and pauses the socket's reads at ``limit``.

    ``limit`` 0: never pauses (only counts)."""

    def __init__(self, client: aiomqtt.Client, limit: int) -> None:
        self._client = client
        self._paho: paho.Client = client._client
        self._loop = asyncio.get_running_loop()
        self._limit = limit
        self._fd: int | None = None
        self.in_hand = 0  # messages taken from the queue and not yet stored
        self.peak = 0  # the most held at once (queue + in hand)
        on_message = self._paho.on_message

        def counted(c: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
            if on_message is not None:
                on_message(c, userdata, message)
            self.check()

        self._paho.on_message = counted

    @property
    def held(self) -> int:
        """Messages received and not yet stored."""
        return len(self._client.messages) + self.in_hand

    @property
    def paused(self) -> bool:
        return self._fd is not None

    def take(self, count: int) -> None:
        """A batch of ``count`` messages is being stored."""
        self.in_hand += count
        self.check()

    def release(self, count: int) -> None:
        """Stored (or given up): read on if below the limit."""
        self.in_hand -= count
        self.check()

    def check(self) -> None:
        held = self.held
        self.peak = max(self.peak, held)
        if not self._limit:
            return
        if held >= self._limit and self._fd is None:
            sock = self._paho.socket()
            if sock is not None:
                self._fd = sock.fileno()
                self._loop.remove_reader(self._fd)
        elif held < self._limit and self._fd is not None:
            fd, self._fd = self._fd, None
            sock = self._paho.socket()
            if sock is not None and sock.fileno() == fd:  # not closed meanwhile
                self._loop.add_reader(fd, self._read)

    def _read(self) -> None:
        """aiomqtt's reader: read what paho can; a broken socket ends the connection."""
        try:
            while True:
                self._paho.loop_read()
                sock = self._paho.socket()
                pending = getattr(sock, "pending", None)  # TLS: decoded bytes left over
                if pending is None or pending() <= 0:
                    break
        except OSError as exc:
            disconnected = self._client._disconnected
            if not disconnected.done():
                disconnected.set_exception(exc)
