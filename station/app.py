"""The composition root of ``lanegw station run``: the store, the receiver, the gap
sweep, the metrics endpoint, the live page and (when enabled) the uploader, in one
TaskGroup until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiomqtt
import structlog

from gateway.metrics import serve_metrics
from gateway.sdnotify import feed_watchdog, notify
from gateway.secrets import read_password
from gateway.signals import until_signalled
from station.checks import AlarmKind
from station.config import StationConfig
from station.live import LiveBoard, LiveServer
from station.live.follow import follow_forever
from station.metrics import StationMetrics
from station.receiver import Receiver, report_alarms
from station.store import RecordStore, StoreUnavailable
from station.upload.service import Uploader

if TYPE_CHECKING:
    from station.flow.runner import FlowRunner

log = structlog.get_logger("lanegw.station")


async def run_station(config: StationConfig) -> None:
    """Run a receiver until SIGINT/SIGTERM, then stop cleanly (exit code 0)."""
    await until_signalled(serve(config, read_password(config.mqtt.password_file)))


async def serve(
    config: StationConfig, password: str | None = None, started: asyncio.Event | None = None
) -> None:
    """Open the store and run every part until cancelled (the demo runs this too);
    ``started`` is set once the receiver is subscribed."""
    database = config.database
    store = await RecordStore.open(
        database.url, config.client_id, database.partitions, database.transactions
    )
    try:
        if config.trust.keys:
            await store.pin_keys(config.trust.keys)
        await _run_parts(config, store, password, started or asyncio.Event())
    finally:
        await store.close()
        log.info("station_stopped")


async def _run_parts(
    config: StationConfig, store: RecordStore, password: str | None, started: asyncio.Event
) -> None:
    metrics = StationMetrics()
    receiver = Receiver(config, store, metrics, password)
    async with asyncio.TaskGroup() as group:
        group.create_task(receiver.run())
        group.create_task(_sweep_forever(config, store, metrics))
        if config.metrics.enabled:
            group.create_task(serve_metrics(metrics, config.metrics.address, config.metrics.port))
        page = _start_live_page(group, config, receiver) if config.web.enabled else None
        flow = _start_flow(group, config, receiver) if config.flow.enabled else None
        group.create_task(feed_watchdog())
        if config.upload.enabled:  # the regulator hand-off (docs/regulator.md)
            name = f"{config.client_id}-upload"
            uploader = Uploader(config, store, lambda: receiver.client(name), metrics.registry)
            group.create_task(uploader.run())
        await receiver.connected.wait()
        if page is not None:
            await page.started.wait()
        if flow is not None:  # the one-window pages (docs/station-flow.md)
            await flow.started.wait()
        notify("READY=1")
        started.set()
        log.info("station_started", station=config.station, receiver=config.client_id)


def _start_live_page(
    group: asyncio.TaskGroup, config: StationConfig, receiver: Receiver
) -> LiveServer:
    """The page follows the broker on a client of its own (aiomqtt gives each message of
    a client to one iterator) and never shares the results' subscription."""
    web, root = config.web, config.mqtt.topic_root
    board = LiveBoard(root, config.station, full_vin=web.full_vin)

    def connect() -> aiomqtt.Client:
        return receiver.client(f"{config.client_id}-live")

    server = LiveServer(board, web.host, web.port)
    group.create_task(server.run())
    group.create_task(follow_forever(board, connect, root, config.station))
    return server


def _start_flow(group: asyncio.TaskGroup, config: StationConfig, receiver: Receiver) -> FlowRunner:
    from station.flow.runner import FlowRunner

    runner = FlowRunner(config, receiver.client)
    group.create_task(runner.run())
    return runner


async def _sweep_forever(
    config: StationConfig, store: RecordStore, metrics: StationMetrics
) -> None:
    """Look for sequence gaps and refresh the open-alarm gauges, every few seconds."""
    checks = config.checks
    while True:
        await asyncio.sleep(checks.sweep_interval_s)
        try:
            await store.maintain()  # the regional database's next months
            report_alarms(metrics, await store.sweep_gaps(checks.gap_grace_s))
            counts = await store.open_alarm_counts()
        except StoreUnavailable as exc:  # the receiver reconnects the database
            log.error("station_sweep_failed", error=str(exc))
            continue
        for kind in AlarmKind:
            metrics.open_alarms.labels(kind.value).set(counts.get(kind.value, 0))
