"""Fault: the broker is down while inspections run, and comes back with its state wiped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.faults.rig import (
    SPEED_RANGE,
    Station,
    Totals,
    check_delivered,
    depth,
    query,
    running_lane,
    station_running,
    submit,
    until,
)
from tests.mosquitto import Mosquitto

OUTAGE_S = 20.0
ACK_TIMEOUT_S = 2.0


async def test_broker_down_then_back_without_state(
    tmp_path: Path, mosquitto: Mosquitto, totals: Totals
) -> None:
    """Fault: mosquitto stops for ``OUTAGE_S`` seconds while the lane keeps inspecting,
    and restarts with its persistence file deleted: its sessions, the station server's
    subscription, retained messages and queued messages are all gone. The daemon
    reconnects and replays its outbox before the station server is back, i.e. to nobody.

    Must hold (``server_ack`` delivery, the station acks only what it stored): inspections
    go on during the outage (records produced offline, flagged ``replayed``); the station
    resubscribes on the empty broker; every record reaches it although the first replay
    went to nobody, because records unacknowledged for ``ack_timeout_s`` are sent again;
    the outbox empties only through acks; the retained birth and device status are back
    on the wiped broker; seqs 1..last without gaps, and the archive verifies.
    """
    station = Station(mosquitto.port, ack=True)
    mqtt = {"delivery": "server_ack", "ack_timeout_s": ACK_TIMEOUT_S}
    async with (
        station_running(station),
        running_lane(
            tmp_path / "lane", "L1", mosquitto.port, station, time_scale=0.3, mqtt=mqtt
        ) as lane,
    ):
        await submit(mosquitto.port, "L1", [1])
        await station.wait_for(lambda: len(station.unique("L1")) >= 2, 30, "first inspection")
        await until(lambda: depth(lane.outbox) == 0, 10, "acks of the first inspection")
        await submit(mosquitto.port, "L1", range(2, 7))  # one running, four queued

        produced_before = len(lane.events("record_produced"))
        connects_before = len(lane.events("mqtt_connected"))
        mosquitto.stop()
        outage_started = time.monotonic()
        totals.fault("broker_outage")
        persistence = tmp_path / "mosquitto.db"
        assert persistence.exists(), "the broker saved no state: nothing would be wiped"
        persistence.unlink()
        totals.fault("broker_state_wiped")
        await until(
            lambda: len(lane.events("record_produced")) >= produced_before + 4,
            OUTAGE_S + 20,
            "records produced during the outage",
        )
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_started)))
        produced_offline = len(lane.events("record_produced")) - produced_before

        # the station server is still away when the broker returns: the daemon's replay
        # after its reconnect reaches no subscriber
        await station.stop()
        statuses_before = len(station.of("L1", "devices/speedometer/status"))
        states_before = len(station.of("L1", "state"))
        mosquitto.start()
        await until(
            lambda: len(lane.events("mqtt_connected")) > connects_before,
            15,
            "the daemon's reconnect",
        )
        await until(
            lambda: query(lane.outbox, "SELECT COUNT(*) FROM records WHERE attempts = 0") == [(0,)],
            10,
            "the replay into the empty broker",
        )
        assert depth(lane.outbox) >= produced_offline > 0
        await station.start()

        # the station resubscribes; the records it missed come again until acknowledged
        await station.wait_for(
            lambda: len(station.unique("L1")) >= 12, 60, "all 12 records of 6 inspections"
        )
        await until(lambda: depth(lane.outbox) == 0, 20, "the outbox emptied by acks")

        assert station.connects >= 2, "the station never had to resubscribe"
        assert lane.events("records_unacknowledged_resending"), "no resend after the ack timeout"
        records = station.unique("L1")
        assert {r["inspection_id"][-3:] for r in records} == {f"{n:03d}" for n in range(1, 7)}
        assert sum(r["replayed"] for r in records) >= produced_offline
        items = [r for r in records if r["kind"] == "item"]
        assert all(r["verdict"] == "pass" for r in records), [r["reason"] for r in records]
        for item in items:
            assert SPEED_RANGE[0] < float(item["measurements"][0]["value"]) < SPEED_RANGE[1]
        births = [m for m in station.of("L1", "state") if m["online"]]
        assert len({b["session_id"] for b in births}) == 1  # the daemon never restarted
        # retained messages went with the broker's state; the daemon published them again
        statuses = station.of("L1", "devices/speedometer/status")
        assert len(statuses) > statuses_before and statuses[-1]["availability"] == "online"
        states = station.of("L1", "state")
        assert len(states) > states_before and states[-1]["online"] is True
        check_delivered(station, lane, totals, arrival_order=False)
