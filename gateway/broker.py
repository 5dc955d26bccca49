"""An embedded MQTT 3.1.1 broker (amqtt) on loopback, for the demo and a bench."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator

from amqtt.broker import Broker


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_broker(port: int) -> AsyncIterator[int]:
    """Run an anonymous amqtt broker on ``127.0.0.1:port`` for the duration of the block."""
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    try:
        yield port
    finally:
        await broker.shutdown()
