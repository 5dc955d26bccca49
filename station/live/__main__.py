"""``python -m station.live``: the live page on its own, following a station's broker.

``lanegw station run`` serves the same page next to the receiver; this entry point is for
a display PC or a try-out without the receiver (docs/live-page.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import aiomqtt
import structlog
import typer

from gateway.logs import configure_logging
from station.live.board import LiveBoard
from station.live.follow import follow_forever
from station.live.server import LiveServer

log = structlog.get_logger("lanegw.station.live")
app = typer.Typer(add_completion=False)


async def _serve(
    server: LiveServer, connect: Callable[[], aiomqtt.Client], root: str, station: str
) -> None:
    """Serve until SIGINT / SIGTERM, then close the open streams and exit 0."""
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.TaskGroup() as group:
            group.create_task(server.run())
            group.create_task(follow_forever(server.board, connect, root, station))


@app.command()
def main(
    station: Annotated[str, typer.Option(help="station code, as in the lanes' topics")],
    mqtt_host: Annotated[str, typer.Option()] = "127.0.0.1",
    mqtt_port: Annotated[int, typer.Option()] = 1883,
    topic_root: Annotated[str, typer.Option()] = "lanegw",
    username: Annotated[str | None, typer.Option(help="password from LANEGW_MQTT_PASSWORD")] = None,
    ca_file: Annotated[Path | None, typer.Option(help="broker CA: connect with TLS")] = None,
    host: Annotated[str, typer.Option(help="address the page listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="0: any free port")] = 8080,
    full_vin: Annotated[bool, typer.Option(help="show whole VINs (default: masked)")] = False,
) -> None:
    """Serve the live lane page of STATION on http://HOST:PORT/."""
    configure_logging()
    tls = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    password = os.environ.get("LANEGW_MQTT_PASSWORD") if username else None

    def connect() -> aiomqtt.Client:
        return aiomqtt.Client(
            mqtt_host, mqtt_port, username=username, password=password, tls_context=tls
        )

    server = LiveServer(LiveBoard(topic_root, station, full_vin=full_vin), host, port)
    asyncio.run(_serve(server, connect, topic_root, station))


if __name__ == "__main__":
    app()
