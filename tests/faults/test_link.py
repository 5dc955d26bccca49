"""Faults on the link between the daemon and the broker, made by a TCP proxy between them
(tests/faults/proxy.py): connections reset, cut half-way through a publish, stalled."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.faults.proxy import LinkProxy
from tests.faults.rig import (
    Lane,
    Station,
    Totals,
    check_delivered,
    depth,
    running_lane,
    station_running,
    submit,
    until,
)
from tests.mosquitto import Mosquitto

KEEPALIVE_S = 5  # the smallest the config allows


@pytest.fixture
async def proxy(mosquitto: Mosquitto) -> AsyncIterator[LinkProxy]:
    link = LinkProxy(mosquitto.port)
    await link.start()
    yield link
    await link.close()


async def reconnected(lane: Lane, before: int) -> None:
    """Wait until the daemon has connected again after ``before`` connects and has sent
    its outbox again (a fault armed earlier would hit the replay, not the next order)."""
    await until(lambda: len(lane.events("mqtt_connected")) > before, 20, "the daemon's reconnect")
    await until(lambda: depth(lane.outbox) == 0, 20, "the replay of the outbox")


async def test_link_reset_and_cut_half_way_through_a_publish(
    tmp_path: Path, mosquitto: Mosquitto, proxy: LinkProxy, totals: Totals
) -> None:
    """Faults: (1) the link cut half-way through the PUBLISH of a result record (half its
    bytes reach the broker, then both sides are reset), 3 times; (2) every connection
    reset while records flow, 3 times; (3) the link cut after a random number of bytes,
    wherever that falls, 3 times.

    Must hold: the daemon reconnects after each cut; the record whose publish was cut
    reaches the station in full (sent again from the outbox; the broker dropped the half
    packet); every produced record arrives, first arrivals in seq order, and the stream
    verifies; all inspections pass.
    """
    rng = random.Random(11)
    station = Station(mosquitto.port)
    async with (
        station_running(station),
        running_lane(tmp_path / "lane", "L1", proxy.port, station) as lane,
    ):
        number = 0
        cut_records: list[int] = []
        for _ in range(3):
            connects = len(lane.events("mqtt_connected"))
            cut = proxy.cut_mid_publish("/results")
            number += 1
            await submit(mosquitto.port, "L1", [number])
            where = await asyncio.wait_for(cut, 20)
            totals.fault("link_cut_mid_publish")
            assert where.record is not None and 0 < where.forwarded < where.packet_bytes
            cut_records.append(int(where.record["seq"]))
            await reconnected(lane, connects)

        for _ in range(3):
            connects = len(lane.events("mqtt_connected"))
            produced = len(lane.events("record_produced"))
            await submit(mosquitto.port, "L1", [number + 1, number + 2])
            number += 2
            await until(
                lambda p=produced: len(lane.events("record_produced")) > p, 10, "a new record"
            )
            assert proxy.drop_all() >= 1
            totals.fault("link_reset")
            await reconnected(lane, connects)

        for _ in range(3):
            connects = len(lane.events("mqtt_connected"))
            number += 1
            await submit(mosquitto.port, "L1", [number])  # its answer is not cut
            cut = proxy.cut_after(rng.randrange(50, 3000))
            await asyncio.wait_for(cut, 20)  # progress, telemetry and records flow meanwhile
            totals.fault("link_cut_after_n_bytes")
            await reconnected(lane, connects)

        await station.wait_for(
            lambda: len(station.unique("L1")) >= 2 * number, 30, f"{2 * number} records"
        )
        assert len(lane.events("mqtt_connected")) == 1 + 9  # one reconnect per fault
        assert set(cut_records) <= station.seqs("L1")
        records = station.unique("L1")
        assert all(r["verdict"] == "pass" for r in records), [r["reason"] for r in records]
        check_delivered(station, lane, totals)


async def test_stalled_link_noticed_by_keepalive(
    tmp_path: Path, mosquitto: Mosquitto, proxy: LinkProxy, totals: Totals
) -> None:
    """Fault: the link stalls: nothing passes in either direction, yet no side sees the
    connection close (the proxy keeps the daemon's socket open even after the broker
    drops its end). Inspections go on producing records meanwhile.

    Must hold: the daemon notices the dead link by its MQTT keepalive
    (``keepalive_s`` = 5, the minimum) and has a new connection within about two
    keepalive periods of the stall; it closed the stalled socket itself; the records
    produced during the stall are delivered afterwards; nothing lost, stream verifies.
    """
    station = Station(mosquitto.port)
    mqtt = {"keepalive_s": KEEPALIVE_S}
    async with (
        station_running(station),
        running_lane(
            tmp_path / "lane", "L1", proxy.port, station, time_scale=0.3, mqtt=mqtt
        ) as lane,
    ):
        await submit(mosquitto.port, "L1", [1])
        await station.wait_for(lambda: len(station.unique("L1")) >= 2, 30, "first inspection")
        connects = len(lane.events("mqtt_connected"))
        produced = len(lane.events("record_produced"))
        await submit(mosquitto.port, "L1", [2, 3, 4])

        stalled_at = time.monotonic()
        assert proxy.stall_all() == 1
        totals.fault("link_stall")
        await until(lambda: proxy.live >= 1, 4 * KEEPALIVE_S, "a new connection")
        noticed_after = time.monotonic() - stalled_at
        # paho checks the keepalive once a second: a PINGREQ once nothing came in for a
        # period, the close once its PINGRESP is a period late; so between one and two
        # periods after the last message in (plus twice the 1 s granularity of the check
        # and the reconnect backoff of at most 0.2 s)
        assert KEEPALIVE_S - 1 <= noticed_after <= 2 * KEEPALIVE_S + 3, noticed_after
        await reconnected(lane, connects)
        (stalled,) = proxy.stalled_pairs
        await until(lambda: stalled.closed_by_client, 5, "the daemon closing the stalled socket")
        disconnects = lane.events("mqtt_disconnected")
        assert disconnects, "the daemon did not log the lost link"

        await station.wait_for(lambda: len(station.unique("L1")) >= 8, 30, "8 records")
        produced_in_stall = [e for e in lane.events("record_produced")[produced:] if e["seq"] <= 8]
        assert produced_in_stall  # records were produced while the link was dead
        records = station.unique("L1")
        assert all(r["verdict"] == "pass" for r in records), [r["reason"] for r in records]
        check_delivered(station, lane, totals)
