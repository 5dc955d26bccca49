"""The live board: the state of every lane of a station, fed by the lanes' MQTT messages,
with a snapshot for a new page client and per-lane change notices for the live stream."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from gateway.records import DeviceStatus, GatewayState, Progress, ResultRecord, Telemetry
from station.live.curves import Curve, curve_of
from station.live.lane import LaneState

log = structlog.get_logger("lanegw.station.live")

MAX_LANES: Final = 64
MAX_PAYLOAD: Final = 1 << 20  # a record with its curves is about 15 kB
M = TypeVar("M", bound=BaseModel)
_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")  # a lane or device id in a topic


class Watch:
    """The lanes one page client has not been sent yet, coalesced: a slow client gets
    each changed lane once, as it is when it is sent."""

    def __init__(self) -> None:
        self._lanes: set[str] = set()
        self._curves: set[str] = set()
        self._ready = asyncio.Event()
        self.closed = False

    def mark(self, lane: str, curves: bool) -> None:
        """The lane changed (and its record curves, when ``curves``)."""
        self._lanes.add(lane)
        if curves:
            self._curves.add(lane)
        self._ready.set()

    def close(self) -> None:
        """End the client's stream (the server shuts down)."""
        self.closed = True
        self._ready.set()

    async def changes(self) -> tuple[set[str], set[str]] | None:
        """Wait for changed lanes; (lanes, lanes whose curves changed), or None once closed."""
        await self._ready.wait()
        self._ready.clear()
        if self.closed:
            return None
        lanes, curves = self._lanes, self._curves
        self._lanes, self._curves = set(), set()
        return lanes, curves


class LiveBoard:
    """Every lane of one station. ``feed`` takes any message and never raises: a payload
    that is malformed, too large, or on an unexpected topic is logged, counted in
    ``bad_messages`` (by topic kind) and ignored."""

    def __init__(self, topic_root: str, station: str, *, full_vin: bool = False) -> None:
        """``full_vin``: show the whole VIN (by default its middle is masked)."""
        self.station = station
        self.full_vin = full_vin
        self.bad_messages: Counter[str] = Counter()
        self._prefix = f"{topic_root}/{station}/"
        self._lanes: dict[str, LaneState] = {}
        self._watches: set[Watch] = set()

    # --- input --------------------------------------------------------------------------
    def feed(self, topic: str, payload: bytes) -> None:
        """Take one message of a lane topic (see docs/mqtt-api.md)."""
        parts = topic[len(self._prefix) :].split("/") if topic.startswith(self._prefix) else []
        kind = _kind(parts)
        if kind is None or not all(_NAME.match(part) for part in parts[:1] + parts[2:3]):
            self._reject("topic", topic, "not a lane topic of this station")
            return
        if len(payload) > MAX_PAYLOAD:
            self._reject(kind, topic, f"payload of {len(payload)} bytes is too large")
            return
        lane = self._lanes.get(parts[0])
        if lane is None:
            if len(self._lanes) >= MAX_LANES:
                self._reject("topic", topic, f"more than {MAX_LANES} lanes")
                return
            lane = LaneState(parts[0])  # kept once a message of it is accepted
        changed, curves = self._apply(kind, lane, parts, topic, payload)
        if changed:
            self._lanes[lane.lane] = lane
            for watch in self._watches:
                watch.mark(lane.lane, curves)

    def _apply(
        self, kind: str, lane: LaneState, parts: list[str], topic: str, payload: bytes
    ) -> tuple[bool, bool]:
        """(the lane changed, its curves changed)."""
        if kind == "results":
            return self._apply_record(lane, topic, payload)
        if kind == "progress":
            event = self._parse(Progress, kind, topic, payload)
            return event is not None and lane.apply_progress(event), False
        if kind == "state":
            return self._apply_state(lane, topic, payload), False
        device = parts[2]
        if kind == "telemetry":
            values = self._parse(Telemetry, kind, topic, payload)
            ok = values is not None and self._same_device(values.device, device, kind, topic)
            return ok and values is not None and lane.set_telemetry(device, values), False
        if not payload:  # the retained status was cleared: the device is gone
            return lane.set_device(device, None), False
        status = self._parse(DeviceStatus, kind, topic, payload)
        ok = status is not None and self._same_device(status.device, device, kind, topic)
        return ok and lane.set_device(device, status), False

    def _apply_state(self, lane: LaneState, topic: str, payload: bytes) -> bool:
        if not payload:  # the retained birth was cleared: the gateway is gone
            lane.gateway = None
            return True
        state = self._parse(GatewayState, "state", topic, payload)
        if state is None or not self._same_lane(state, lane, "state", topic):
            return False
        lane.gateway = state
        return True

    def _apply_record(self, lane: LaneState, topic: str, payload: bytes) -> tuple[bool, bool]:
        record = self._parse(ResultRecord, "results", topic, payload)
        if record is None or not self._same_lane(record, lane, "results", topic):
            return False, False
        curves: list[Curve] = []
        for evidence in record.evidence:
            try:
                curve = curve_of(evidence)
            except ValueError as exc:
                self._reject("curve", topic, f"{record.item_code}: {exc}")
                continue
            if curve is not None:
                curves.append(curve)
        version = lane.curves_version
        changed = lane.apply_record(record, curves)
        return changed, lane.curves_version != version

    def _parse(self, model: type[M], kind: str, topic: str, payload: bytes) -> M | None:
        try:
            return model.model_validate_json(payload)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in error["loc"])
            self._reject(kind, topic, f"{where}: {error['msg']}" if where else error["msg"])
            return None

    def _same_lane(
        self, message: GatewayState | ResultRecord, lane: LaneState, kind: str, topic: str
    ) -> bool:
        if (message.station, message.lane) == (self.station, lane.lane):
            return True
        self._reject(kind, topic, f"names lane {message.station}/{message.lane}")
        return False

    def _same_device(self, named: str, device: str, kind: str, topic: str) -> bool:
        if named == device:
            return True
        self._reject(kind, topic, f"names device {named!r}")
        return False

    def _reject(self, kind: str, topic: str, reason: str) -> None:
        self.bad_messages[kind] += 1
        log.warning("live_bad_message", topic=topic[:200], reason=reason[:200])

    # --- output -------------------------------------------------------------------------
    @property
    def lanes(self) -> list[str]:
        """The lanes seen so far, sorted."""
        return sorted(self._lanes)

    def lane_json(self, lane: str) -> dict[str, Any]:
        """One lane for the page, without its record curves."""
        return self._lanes[lane].to_json(self.full_vin)

    def curves_json(self, lane: str) -> dict[str, Any]:
        """The record curves of a lane's current inspection."""
        return self._lanes[lane].curves_json()

    def snapshot(self) -> dict[str, Any]:
        """Everything, for a page client that (re)connects."""
        return {
            "station": self.station,
            "lanes": [self.lane_json(lane) for lane in self.lanes],
            "curves": [self.curves_json(lane) for lane in self.lanes],
            "bad_messages": dict(self.bad_messages),
        }

    @contextmanager
    def watch(self) -> Iterator[Watch]:
        """Change notices for one page client, for the duration of the block."""
        watch = Watch()
        self._watches.add(watch)
        try:
            yield watch
        finally:
            self._watches.discard(watch)


def _kind(parts: list[str]) -> str | None:
    """The message kind of a topic below ``{root}/{station}/``, split at '/'."""
    match parts:
        case [_, "state"]:
            return "state"
        case [_, "progress"]:
            return "progress"
        case [_, "results"]:
            return "results"
        case [_, "devices", _, "status"]:
            return "device_status"
        case [_, "telemetry", _]:
            return "telemetry"
    return None
