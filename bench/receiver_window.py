"""Does the broker bound what a slow QoS 1 subscriber holds unacknowledged? (issue 18)

Starts mosquitto with the given options, queues ``--messages`` QoS 1 messages for a
persistent session (or publishes them while the subscriber is connected, ``--live``),
then connects that session with paho's manual acknowledgement and acknowledges the way
the station receiver would after its commits: it takes up to ``--batch`` of what it holds,
"stores" them for ``--commit-ms`` (reading on meanwhile), then PUBACKs them in order.
``--pause N`` stops reading the socket while N or more are held (TCP backpressure).

Prints one JSON line: the most messages received and not yet acknowledged at one time
(``max_held``), how many arrived (``received``, duplicates apart), the drain time, and
mosquitto's peak resident memory. Single-threaded: both clients run in this loop.

    python -m bench.receiver_window --max-inflight 10 --receive-maximum 0 --messages 200
"""

from __future__ import annotations

import argparse
import json
import select
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.broker import Broker
from bench.proc import memory_mb

TOPIC = "lanegw/4401001/L1/results"


class Subscriber:
    """The slow receiver: what it holds, unacknowledged, and the most it ever held."""

    def __init__(self, args: argparse.Namespace, port: int) -> None:
        self.args = args
        v5 = args.protocol == "5"
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="receiver",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else False,
        )
        self.client.manual_ack_set(True)
        self.client.on_message = self._on_message
        self.port = port
        self.held: list[int] = []  # mids received, not yet acknowledged, in order
        self.seen: set[bytes] = set()
        self.max_held = 0
        self.duplicates = 0

    def connect(self) -> None:
        props: Properties | None = None
        if self.args.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
            if self.args.receive_maximum:
                props.ReceiveMaximum = self.args.receive_maximum
        self.client.connect(
            "127.0.0.1",
            self.port,
            clean_start=False if self.args.protocol == "5" else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        key = bytes(msg.payload[:16])
        if key in self.seen:
            self.duplicates += 1
        self.seen.add(key)
        self.held.append(msg.mid)
        self.max_held = max(self.max_held, len(self.held))

    def reading(self) -> bool:
        return not self.args.pause or len(self.held) < self.args.pause


def pump(clients: list[paho.Client], read: list[bool], timeout: float) -> None:
    """One select over the clients' sockets: read where allowed, write what is pending."""
    socks = [c.socket() for c in clients]
    rlist = [s for s, r in zip(socks, read, strict=True) if r and s is not None]
    wlist = [s for c, s in zip(clients, socks, strict=True) if s is not None and c.want_write()]
    readable, writable, _ = select.select(rlist, wlist, [], timeout)
    for client, sock in zip(clients, socks, strict=True):
        if sock in readable:
            client.loop_read()
        if sock in writable:
            client.loop_write()
        client.loop_misc()


def publish_all(pub: paho.Client, count: int, size: int, sub: Subscriber | None) -> None:
    """Publish every message and wait for the broker's PUBACKs; ``sub`` (``--live``) is
    connected meanwhile and reads (as far as ``--pause`` lets it) but stores nothing."""
    pending: set[int] = set()
    clients, read = ([pub], [True]) if sub is None else ([pub, sub.client], [True, True])
    pub.on_publish = lambda c, u, mid, rc, p: pending.discard(mid)
    for i in range(count):
        payload = f"{i:016d}".encode() + b"x" * (size - 16)
        pending.add(pub.publish(TOPIC, payload, qos=1).mid)
        if i % 100 == 0:
            read[-1] = sub is None or sub.reading()
            pump(clients, read, 0)
    while pending:
        read[-1] = sub is None or sub.reading()
        pump(clients, read, 0.01)


def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        extra = f"max_inflight_messages {args.max_inflight}\n"
        broker = Broker(Path(tmp), extra=extra)
        # Broker writes max_inflight_messages 0 and max_queued_messages 200000 first:
        # mosquitto takes the last value of an option
        broker.conf.write_text(broker.conf.read_text() + f"max_queued_messages {args.max_queued}\n")
        broker.start()
        assert broker.proc is not None
        try:
            return drain(args, broker)
        finally:
            broker.stop()


def drain(args: argparse.Namespace, broker: Broker) -> dict[str, object]:
    sub = Subscriber(args, broker.port)
    sub.connect()
    sub.client.subscribe(TOPIC, qos=1)
    for _ in range(50):
        pump([sub.client], [True], 0.01)
    if not args.live:
        sub.client.disconnect()
        pump([sub.client], [True], 0.05)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="gateway", protocol=paho.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", broker.port)
    while not pub.is_connected():
        pump([pub], [True], 0.01)
    started = time.monotonic()
    publish_all(pub, args.messages, args.payload, sub if args.live else None)
    if not args.live:
        sub.connect()
        started = time.monotonic()
    commit_until = 0.0
    batch: list[int] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 2.0:
        before = len(sub.seen)
        pump([sub.client, pub], [sub.reading(), True], 0.001)
        now = time.monotonic()
        if len(sub.seen) != before:
            idle_since = now
        if batch and now >= commit_until:  # the batch is "committed": PUBACK it, in order
            for mid in batch:
                sub.client.ack(mid, 1)
            del sub.held[: len(batch)]
            batch = []
            idle_since = now
        if not batch and sub.held:
            batch = sub.held[: args.batch]
            commit_until = now + args.commit_ms / 1000
    elapsed = time.monotonic() - started - 2.0
    assert broker.proc is not None
    _, broker_peak = memory_mb(broker.proc.pid)
    return {
        "protocol": args.protocol,
        "receive_maximum": args.receive_maximum,
        "max_inflight_messages": args.max_inflight,
        "max_queued_messages": args.max_queued,
        "pause": args.pause,
        "live": args.live,
        "messages": args.messages,
        "received": len(sub.seen),
        "duplicates": sub.duplicates,
        "max_held": sub.max_held,
        "drain_s": round(elapsed, 2),
        "broker_peak_mb": round(broker_peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--payload", type=int, default=1000, help="bytes per message")
    parser.add_argument("--protocol", choices=("5", "311"), default="5")
    parser.add_argument("--receive-maximum", type=int, default=0, help="0: not sent")
    parser.add_argument("--max-inflight", type=int, default=20, help="broker option")
    parser.add_argument("--max-queued", type=int, default=200000, help="broker option")
    parser.add_argument("--batch", type=int, default=1, help="messages acknowledged at once")
    parser.add_argument("--commit-ms", type=float, default=5.0, help="one batch's store")
    parser.add_argument("--pause", type=int, default=0, help="stop reading at N held")
    parser.add_argument("--live", action="store_true", help="publish while connected")
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
