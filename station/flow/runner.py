"""The flow inside ``lanegw station run``: its own database connection (the station
database), its own MQTT clients (one follows the lanes' states and steps, one sends the
orders), the manual-record signer and the web server, until cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiomqtt
import structlog

from station.config import StationConfig
from station.flow.dispatch import Dispatcher
from station.flow.manual import ManualSigner
from station.flow.service import Flow
from station.flow.store import FlowStore
from station.flow.web import FlowServer
from station.live import LiveBoard
from station.live.follow import follow_forever
from station.store import RecordStore

log = structlog.get_logger("lanegw.station.flow")


async def open_flow_store(config: StationConfig, name: str) -> FlowStore:
    """The flow's tables in the station database, created when missing."""
    records = await RecordStore.open(config.database.url, name)
    store = FlowStore(records)
    try:
        await store.setup()
    except BaseException:
        await records.close()
        raise
    return store


class FlowRunner:
    """Runs the flow; ``started`` is set once its pages listen (``port`` then known)."""

    def __init__(self, config: StationConfig, client: Callable[[str], aiomqtt.Client]) -> None:
        self.config = config
        self._client = client
        self.started = asyncio.Event()
        self.port: int | None = None
        self.flow: Flow | None = None  # once started

    async def run(self) -> None:
        """Until cancelled."""
        config, flow_config = self.config, self.config.flow
        store = await open_flow_store(config, f"{config.client_id}-flow")
        try:
            signer = ManualSigner(store.records, config.station, flow_config.key_file)
            await signer.start()
            root = config.mqtt.topic_root
            board = LiveBoard(root, config.station)
            timeout = flow_config.dispatch_timeout_s
            dispatcher = Dispatcher(lambda: self._client(f"{config.client_id}-flow-cmd"),
                                    root, config.station, timeout)  # fmt: skip
            flow = Flow(flow_config, config.station, store, signer, board, dispatcher,
                        config.timezone)  # fmt: skip
            server = FlowServer(flow)
            async with asyncio.TaskGroup() as group:
                group.create_task(dispatcher.run())
                group.create_task(follow_forever(
                    board, lambda: self._client(f"{config.client_id}-flow-board"), root,
                    config.station, telemetry=False))  # fmt: skip
                group.create_task(server.run())
                await server.started.wait()
                await dispatcher.connected.wait()
                self.port, self.flow = server.port, flow
                self.started.set()
                log.info("flow_started", port=server.port, gateway_id=signer.gateway_id)
        finally:
            await store.records.close()
