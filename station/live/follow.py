"""Feed a live board from the station's MQTT broker."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Final

import aiomqtt
import structlog

from gateway.mqtt import request_bounded
from station.live.board import LiveBoard

log = structlog.get_logger("lanegw.station.live")
RECONNECT_S: Final = 2.0


def lane_filters(topic_root: str, station: str, telemetry: bool = True) -> list[str]:
    """The subscriptions of the live board: every lane's state, steps, records and devices."""
    lanes = f"{topic_root}/{station}/+"
    filters = [
        f"{lanes}/state",
        f"{lanes}/progress",
        f"{lanes}/results",
        f"{lanes}/devices/+/status",
    ]
    if telemetry:
        filters.append(f"{lanes}/telemetry/+")
    return filters


async def follow(
    client: aiomqtt.Client,
    board: LiveBoard,
    topic_root: str,
    station: str,
    telemetry: bool = True,
) -> None:
    """Subscribe ``client`` (connected) to the station's lanes and feed ``board`` until
    cancelled. The subscriptions are not shared: every receiver's page sees every lane.

    aiomqtt hands each message of a client to a single ``messages`` iterator, so give
    ``follow`` a client of its own. A lost connection raises ``aiomqtt.MqttError``: the
    caller reconnects and calls ``follow`` again (retained state and device status come
    back with the new subscription).
    """
    filters = lane_filters(topic_root, station, telemetry)
    subscriptions = [(topic, 1) for topic in filters]
    await request_bounded(client.subscribe(subscriptions, timeout=math.inf))  # see gateway.mqtt
    async for message in client.messages:
        if any(message.topic.matches(topic) for topic in filters):
            board.feed(str(message.topic), message.payload)


async def follow_forever(
    board: LiveBoard,
    connect: Callable[[], aiomqtt.Client],
    topic_root: str,
    station: str,
    telemetry: bool = True,
) -> None:
    """Follow the broker; after a lost connection, connect again and resubscribe."""
    while True:
        try:
            async with connect() as client:
                log.info("live_mqtt_connected")
                await follow(client, board, topic_root, station, telemetry)
        except aiomqtt.MqttError as exc:
            log.warning("live_mqtt_lost", error=str(exc), retry_in_s=RECONNECT_S)
            await asyncio.sleep(RECONNECT_S)
