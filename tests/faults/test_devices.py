"""Faults of a tester as the daemon meets them: line noise, silence, slowness, corrupted
frames, its endpoint gone and back, a fault in the middle of an item, and jumps of the
wall clock. Seen from the station: device status on ``devices/{id}/status`` (retained)
and the records.

The simulated TLCH-10 speedometer tester (real sockets, real codec) misbehaves through
its fault plan: each pending fault spoils one reply. The lane polls it every
``POLL_S`` and waits ``TIMEOUT_S`` for a reply.
"""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

from simulators.faults import Fault
from tests.faults.rig import (
    SPEED_RANGE,
    Lane,
    Station,
    Totals,
    check_delivered,
    running_lane,
    station_running,
    submit,
    until,
)
from tests.harness import order
from tests.mosquitto import Mosquitto

POLL_S = 0.2
TIMEOUT_S = 0.5
STATUS = "devices/speedometer/status"
FAST = {"bus": {"response_timeout_s": TIMEOUT_S}, "device": {"poll_period_s": POLL_S}}


def statuses_since(station: Station, start: int) -> list[dict[str, object]]:
    return station.of("L1", STATUS)[start:]


async def wait_status(station: Station, start: int, availability: str, timeout: float = 15) -> dict:
    """The first status ``availability`` published after the first ``start`` ones."""
    await station.wait_for(
        lambda: any(s["availability"] == availability for s in statuses_since(station, start)),
        timeout,
        f"device status {availability}",
    )
    return next(s for s in statuses_since(station, start) if s["availability"] == availability)


async def back_online(station: Station, start: int, timeout: float = 20) -> list[str]:
    """Wait until, after the first ``start`` statuses, the device went degraded or offline
    and then online again; returns the availabilities published meanwhile."""

    def recovered() -> bool:
        since = [s["availability"] for s in statuses_since(station, start)]
        return len(since) >= 2 and since[-1] == "online"

    await station.wait_for(recovered, timeout, "the device failing and back online")
    return [str(s["availability"]) for s in statuses_since(station, start)]


async def consumed(lane: Lane, total: int, timeout: float = 15) -> None:
    """Wait until the simulator has applied ``total`` faults in all."""
    await until(lambda: sum(lane.faults.injected.values()) >= total, timeout, "faults applied")


def assert_items_pass(station: Station) -> None:
    items = [r for r in station.unique("L1") if r["kind"] == "item"]
    assert items
    for item in items:
        assert item["verdict"] == "pass", item["reason"]
        assert SPEED_RANGE[0] < float(item["measurements"][0]["value"]) < SPEED_RANGE[1]


async def test_line_noise_within_the_timeouts_is_absorbed(
    tmp_path: Path, mosquitto: Mosquitto, totals: Totals
) -> None:
    """Faults: garbage bytes before replies, replies split in two writes, replies late
    but within the response timeout (0.3 s of 0.5 s); 5 of each, while the daemon polls
    and while an S1 item runs.

    Must hold: every fault was applied, yet no request failed: the device stays
    ``online`` (no other status is published), both inspections pass with the scenario's
    speed, and the records verify.
    """
    station = Station(mosquitto.port)
    async with (
        station_running(station),
        running_lane(tmp_path / "lane", "L1", mosquitto.port, station, **FAST) as lane,
    ):
        await wait_status(station, 0, "online")
        seen = len(station.of("L1", STATUS))
        for fault in (Fault.GARBAGE, Fault.SPLIT, Fault.SLOW_REPLY):
            lane.faults.inject(fault, count=5, delay_s=0.3)
        await submit(mosquitto.port, "L1", [1, 2])
        await consumed(lane, 15)
        await station.wait_for(lambda: len(station.unique("L1")) >= 4, 30, "two inspections")
        totals.device_faults(lane.faults)

        assert lane.faults.injected == {Fault.GARBAGE: 5, Fault.SPLIT: 5, Fault.SLOW_REPLY: 5}
        assert [s["availability"] for s in statuses_since(station, seen)] == []
        assert not lane.events("device_degraded")
        assert_items_pass(station)
        check_delivered(station, lane, totals)


async def test_faults_beyond_the_timeouts_degrade_then_recover(
    tmp_path: Path, mosquitto: Mosquitto, totals: Totals
) -> None:
    """Faults: one reply missing, one with a bad checksum, one later than the response
    timeout (0.8 s of 0.5 s); then the tester silent for four polls in a row.

    Must hold: each single failure publishes ``degraded`` with the error that caused it
    (timeout or checksum) and ``online`` again on the next good reply; four failures in
    a row publish ``offline``, then ``online`` once it answers; the daemon stays up and
    an inspection afterwards passes with correct values.
    """
    station = Station(mosquitto.port)
    async with (
        station_running(station),
        running_lane(tmp_path / "lane", "L1", mosquitto.port, station, **FAST) as lane,
    ):
        await wait_status(station, 0, "online")
        expected = [
            (Fault.NO_REPLY, 1, "ResponseTimeout"),
            (Fault.BAD_CHECKSUM, 1, "Checksum"),
            (Fault.SLOW_REPLY, 1, "ResponseTimeout"),
        ]
        applied = 0
        for fault, count, error in expected:
            seen = len(station.of("L1", STATUS))
            lane.faults.inject(fault, count=count, delay_s=0.8)
            applied += count
            degraded = await wait_status(station, seen, "degraded")
            assert error in str(degraded["last_error"]), degraded
            assert degraded["consecutive_failures"] == 1
            await wait_status(station, seen, "online")
            await consumed(lane, applied)
            assert "offline" not in [s["availability"] for s in statuses_since(station, seen)]

        seen = len(station.of("L1", STATUS))
        lane.faults.inject(Fault.NO_REPLY, count=4)
        applied += 4
        offline = await wait_status(station, seen, "offline")
        assert "ResponseTimeout" in str(offline["last_error"])
        assert int(offline["consecutive_failures"]) >= 3  # type: ignore[call-overload]
        await wait_status(station, seen, "online")
        assert [s["availability"] for s in statuses_since(station, seen)] == [
            "degraded",
            "offline",
            "online",
        ]
        await consumed(lane, applied)
        totals.device_faults(lane.faults)

        await submit(mosquitto.port, "L1", [1])
        await station.wait_for(lambda: len(station.unique("L1")) >= 2, 30, "an inspection")
        assert_items_pass(station)
        assert lane.daemon.proc is not None and lane.daemon.proc.returncode is None
        check_delivered(station, lane, totals)


async def test_endpoint_gone_and_back(tmp_path: Path, mosquitto: Mosquitto, totals: Totals) -> None:
    """Faults: the tester's endpoint (its serial device server) closes the connection and
    refuses new ones, first for 0.1 s (less than a poll period: within the timeouts),
    then for 4 s (many poll periods and response timeouts: beyond them).

    Must hold: the short outage costs at most a failed poll or two: ``degraded`` at
    worst, never ``offline``, then ``online``; the long one publishes ``offline`` with
    the port error, and the bus reopens by itself once the endpoint is back: ``online``
    within the reopen backoff; an inspection afterwards passes, the records verify.
    """
    station = Station(mosquitto.port)
    fast = {"bus": {"response_timeout_s": TIMEOUT_S}, "device": {"poll_period_s": 0.5}}
    async with (
        station_running(station),
        running_lane(tmp_path / "lane", "L1", mosquitto.port, station, **fast) as lane,
    ):
        await wait_status(station, 0, "online")
        seen = len(station.of("L1", STATUS))
        lane.faults.inject(Fault.DISCONNECT, delay_s=0.1)  # the poll it spoils fails
        assert await back_online(station, seen) == ["degraded", "online"]
        assert len(lane.events("port_open")) == 2  # reopened once

        seen = len(station.of("L1", STATUS))
        lane.faults.inject(Fault.DISCONNECT, delay_s=4.0)
        offline = await wait_status(station, seen, "offline", timeout=10)
        long = await back_online(station, seen, timeout=30)
        assert long[-2:] == ["offline", "online"], long
        assert "PortUnavailable" in str(offline["last_error"]), offline
        assert lane.faults.injected == {Fault.DISCONNECT: 2}
        totals.device_faults(lane.faults)

        await submit(mosquitto.port, "L1", [1])
        await station.wait_for(lambda: len(station.unique("L1")) >= 2, 30, "an inspection")
        assert_items_pass(station)
        check_delivered(station, lane, totals)


async def test_device_fault_mid_item_aborts_that_item_only(
    tmp_path: Path, mosquitto: Mosquitto, totals: Totals
) -> None:
    """Faults, each while S1 waits for the latched speed: (1) the tester stops
    answering; (2) its endpoint drops and stays away for 2 s.

    Must hold: each item ends ``aborted`` (never ``fail``) with a reason naming what
    went wrong, and so does its inspection's summary; the records are still produced,
    signed and delivered; the daemon stays up; the next order passes.
    """
    station = Station(mosquitto.port)
    async with (
        station_running(station),
        running_lane(
            tmp_path / "lane", "L1", mosquitto.port, station, time_scale=0.3, **FAST
        ) as lane,
    ):
        applied = 0
        for number, fault, count in ((1, Fault.NO_REPLY, 3), (2, Fault.DISCONNECT, 1)):
            inspection = order(number)["inspection_id"]
            await submit(mosquitto.port, "L1", [number])
            await station.wait_for(
                lambda i=inspection: any(
                    p["inspection_id"] == i and p["step"] == "speedometer_spinning"
                    for p in station.of("L1", "progress")
                ),
                20,
                "S1 waiting for the latch",
            )
            seen = len(station.of("L1", STATUS))
            lane.faults.inject(fault, count=count, delay_s=2.0)
            await station.wait_for(
                lambda i=inspection: (
                    sum(r["inspection_id"] == i for r in station.unique("L1")) >= 2
                ),
                30,
                f"the records of inspection {number}",
            )
            applied += count
            await consumed(lane, applied)
            assert await back_online(station, seen)  # the supervisor saw it too
        totals.device_faults(lane.faults)
        assert lane.daemon.proc is not None and lane.daemon.proc.returncode is None

        await submit(mosquitto.port, "L1", [3])
        await station.wait_for(lambda: len(station.unique("L1")) >= 6, 30, "the next inspection")
        records = station.unique("L1")
        verdicts = [(r["inspection_id"][-1], r["kind"], r["verdict"]) for r in records]
        assert verdicts == [
            ("1", "item", "aborted"),
            ("1", "summary", "aborted"),
            ("2", "item", "aborted"),
            ("2", "summary", "aborted"),
            ("3", "item", "pass"),
            ("3", "summary", "pass"),
        ]
        assert "ResponseTimeout" in records[0]["reason"], records[0]["reason"]
        assert records[2]["reason"], "an aborted item must say why"
        speed = float(records[4]["measurements"][0]["value"])
        assert SPEED_RANGE[0] < speed < SPEED_RANGE[1]
        check_delivered(station, lane, totals)


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail(
            "libfaketime is not installed (Debian package libfaketime): scripts/test "
            "installs it; the clock-jump test shifts the daemon's wall clock with it"
        )
    return found[0]


async def test_wall_clock_jumps_disturb_no_timeout(
    tmp_path: Path, mosquitto: Mosquitto, totals: Totals
) -> None:
    """Fault: the daemon's wall clock jumps an hour forward in the middle of an S1 item,
    then two hours back in the middle of the next, as an NTP step or a technician
    setting the date would. The system clock of this machine cannot be changed, so the
    daemon runs under libfaketime with its wall clock (CLOCK_REALTIME: ``time.time``,
    ``datetime.now``) read from a file the test rewrites, and its monotonic clock left
    real (``DONT_FAKE_MONOTONIC``): exactly what a real clock step changes.

    Must hold: nothing the daemon times (item and latch timeouts, device response
    timeouts and poll periods, MQTT keepalive, reconnect backoff) reacts: both items
    pass, the device is never reported degraded, the MQTT link is never re-established;
    the jumps do show in the records' wall-clock times (proof the daemon saw them), and
    the records keep their seq order and chain. Why this is sufficient: the daemon's
    timeouts all run on the event loop's monotonic clock, which a clock step does not
    move; this checks it end to end on the real daemon rather than by reading code.
    """
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    env = {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(clock),
        "FAKETIME_NO_CACHE": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }
    station = Station(mosquitto.port)
    async with (
        station_running(station),
        running_lane(
            tmp_path / "lane", "L1", mosquitto.port, station, time_scale=0.3, env=env, **FAST
        ) as lane,
    ):
        await wait_status(station, 0, "online")
        seen = len(station.of("L1", STATUS))
        for number, offset in ((1, "+3600"), (2, "-3600")):
            inspection = order(number)["inspection_id"]
            await submit(mosquitto.port, "L1", [number])
            await station.wait_for(
                lambda i=inspection: any(
                    p["inspection_id"] == i and p["step"] == "speedometer_spinning"
                    for p in station.of("L1", "progress")
                ),
                20,
                "S1 waiting for the latch",
            )
            clock.write_text(f"{offset}\n")
            totals.fault("wall_clock_jump")
            await station.wait_for(
                lambda i=inspection: (
                    sum(r["inspection_id"] == i for r in station.unique("L1")) >= 2
                ),
                30,
                f"the records of inspection {number}",
            )
        await submit(mosquitto.port, "L1", [3])  # keeps going on the shifted clock
        await station.wait_for(lambda: len(station.unique("L1")) >= 6, 30, "a third inspection")

        assert_items_pass(station)
        assert not lane.events("device_degraded") and not lane.events("device_offline")
        assert [s["availability"] for s in statuses_since(station, seen)] == []
        assert len(lane.events("mqtt_connected")) == 1, "the MQTT link was re-established"
        first, second = (
            next(r for r in station.unique("L1") if r["inspection_id"] == order(n)["inspection_id"])
            for n in (1, 2)
        )
        assert _span_s(first) > 3500  # started before the jump forward, finished after
        assert _span_s(second) < -7100  # and the jump two hours back
        check_delivered(station, lane, totals)


def _span_s(record: dict[str, object]) -> float:
    from datetime import datetime

    started = datetime.fromisoformat(str(record["started_at"]))
    finished = datetime.fromisoformat(str(record["finished_at"]))
    return (finished - started).total_seconds()
