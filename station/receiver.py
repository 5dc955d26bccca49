"""The receiver: takes every lane's results and states from the broker, has them judged
and stored, and acknowledges what was committed.

Results come through an MQTT 5 shared subscription (``$share/{group}/...``), so several
receivers split the load; states (with the gateways' keys) come to every receiver. What
queued up while a batch was stored is taken as the next batch: one transaction and one
ack per lane for many records. A record is acknowledged only after its commit; a
receiver killed before that leaves it unacknowledged, and its gateway sends it again
(``mqtt.ack_timeout_s``), to whichever receiver is alive: none lost, and the record id
makes the second copy a duplicate, not a second record. A burst waits in the broker: the
receiver stops reading while it holds ``mqtt.max_held`` records not yet stored
(station/readgate.py), and publishes its acks on a second connection.

The same code is the regional tier (docs/scale.md): ``station: "+"`` takes every
station's lanes from the regional broker, and ``mqtt.acknowledge: false`` stores without
acknowledging, so that only the configured tier (region or station) lets a gateway's
outbox go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import ssl
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import aiomqtt
import structlog
from pydantic import ValidationError
from pydantic_core import from_json

from drivers.backoff import Backoff
from gateway.integrity import load_or_create_key, sign_message
from gateway.mqtt import publish_bounded, request_bounded
from gateway.records import GatewayState
from station.checks import Alarm, AlarmKind, Arrival, Decision, parse_arrival
from station.config import StationConfig
from station.metrics import StationMetrics
from station.readgate import ReadGate
from station.store import RecordStore, StoreUnavailable

log = structlog.get_logger("lanegw.station")

OUTCOME_LABEL = {
    Decision.STORE: "stored",
    Decision.STORE_SUSPECT: "suspect",
    Decision.DUPLICATE: "duplicate",
    Decision.REJECT: "rejected",
}


@dataclass(frozen=True, slots=True)
class LaneMessage:
    """A message of one lane: ``{root}/{station}/{lane}/{leaf}``."""

    lane: str
    leaf: str
    payload: bytes
    station: str = ""

    @property
    def where(self) -> str:
        """The lane as metrics and logs name it: ``L1``, or ``4401001/L1`` in a region."""
        return f"{self.station}/{self.lane}" if self.station else self.lane


class Receiver:
    """One receiver's MQTT connection (re-created after every failure)."""

    def __init__(
        self,
        config: StationConfig,
        store: RecordStore,
        metrics: StationMetrics,
        password: str | None = None,
    ) -> None:
        self._cfg = config
        self._store = store
        self._metrics = metrics
        self._password = password
        self._root = f"{config.mqtt.topic_root}/"
        self._prefix = f"{self._root}{config.station}/"
        key_file = config.trust.ack_key_file
        self._ack_key = load_or_create_key(key_file) if key_file is not None else None
        self.connected = asyncio.Event()
        self.gate: ReadGate | None = None  # the current connection's (tests read its peak)

    @property
    def filters(self) -> list[str]:
        """The subscriptions: results shared within the group, states to everyone."""
        lanes = f"{self._prefix}+"
        results = f"{lanes}/results"
        group = self._cfg.mqtt.share_group
        return [f"$share/{group}/{results}" if group else results, f"{lanes}/state"]

    async def run(self) -> None:
        """Stay connected; never returns, never raises MQTT or database errors."""
        mqtt = self._cfg.mqtt
        # jittered: the receivers of a station that lost its broker do not return in step
        backoff = Backoff(mqtt.reconnect_min_s, mqtt.reconnect_max_s, jitter=0.5)
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    backoff.reset()
                log.warning(
                    "station_mqtt_lost", error=str(exc), retry_in_s=round(backoff.current, 2)
                )
            finally:
                self.connected.clear()
                self._metrics.mqtt_connected.set(0)
            await asyncio.sleep(backoff.next())

    def client(self, identifier: str | None = None) -> aiomqtt.Client:
        """A client for this receiver's config (the live page uses one of its own)."""
        return mqtt_client(self._cfg, self._password, identifier or self._cfg.client_id)

    async def _session(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(self.client())
            # the acks go out on a connection of their own: on this one, while its reads
            # are paused (station/readgate.py), a PUBACK would wait behind every record
            # mosquitto has lined up for the receiver
            acker = client
            if self._cfg.mqtt.acknowledge:
                acker = await stack.enter_async_context(self.client(f"{client.identifier}-acks"))
            # bounded here, not by aiomqtt's wait_for, which can lose a SIGTERM's cancellation
            acker.pending_calls_threshold = self._cfg.checks.batch + 16  # a batch's acks
            self.gate = ReadGate(client, self._cfg.mqtt.max_held)
            subscriptions = [(topic, 1) for topic in self.filters]
            await request_bounded(client.subscribe(subscriptions, timeout=math.inf))
            self.connected.set()
            self._metrics.mqtt_connected.set(1)
            log.info("station_mqtt_connected", filters=self.filters)
            batch_size = self._cfg.checks.batch
            async for first in client.messages:
                batch = [first]
                self.gate.take(1)
                try:
                    while len(client.messages) and len(batch) < batch_size:
                        batch.append(await anext(client.messages))
                        self.gate.take(1)
                    self._metrics.held_peak.set(self.gate.peak)
                    await self._handle(acker, [m for m in map(self._lane_message, batch) if m])
                finally:
                    self.gate.release(len(batch))

    def _lane_message(self, message: aiomqtt.Message) -> LaneMessage | None:
        topic = str(message.topic)
        station = ""
        if self._cfg.regional:  # {root}/{station}/{lane}/{leaf}
            station, _, topic = topic.removeprefix(self._root).partition("/")
        else:
            topic = topic.removeprefix(self._prefix)
        lane, _, leaf = topic.partition("/")
        payload = message.payload if isinstance(message.payload, bytes) else b""
        return LaneMessage(lane, leaf, payload, station) if leaf in ("results", "state") else None

    def _station_of(self, message: LaneMessage) -> str:
        return message.station or self._cfg.station

    async def _handle(self, client: aiomqtt.Client, batch: Sequence[LaneMessage]) -> None:
        """States first (a birth brings the key its records need), then the results."""
        try:
            for message in batch:
                if message.leaf == "state":
                    await self._take_state(message)
            results = [m for m in batch if m.leaf == "results"]
            if results:
                await self._take_results(client, results)
        except StoreUnavailable as exc:
            # nothing of the batch was acknowledged: the gateways send it again
            self._metrics.store_errors.inc()
            log.error("station_store_unavailable", error=str(exc), dropped=len(batch))
            await self._reconnect_store()

    async def _take_state(self, message: LaneMessage) -> None:
        if not message.payload:  # a retained state cleared by an operator
            return
        try:
            state = GatewayState.model_validate_json(message.payload)
        except ValidationError as exc:
            self._bad_message("state", message, exc.errors(include_url=False)[0]["msg"])
            return
        if (state.station, state.lane) != (self._station_of(message), message.lane):
            where = f"state of {state.station}/{state.lane} on lane {message.where}"
            self._bad_message("state", message, where)
            return
        first_use = self._cfg.trust.mode == "tofu"
        data = from_json(message.payload)  # validated above: a JSON object of bounded depth
        alarm = await self._store.register_state(message.lane, data, message.payload, first_use)
        if alarm is not None:
            report_alarms(self._metrics, [alarm])
            if alarm.kind in (AlarmKind.FORGED_STATE, AlarmKind.LANE_CLAIMED):
                self._bad_message("state", message, alarm.detail)
                return
        log.info("gateway_state", gateway=state.gateway_id, lane=message.where, online=state.online)

    async def _take_results(self, client: aiomqtt.Client, messages: list[LaneMessage]) -> None:
        arrivals: list[Arrival] = []
        malformed: list[Alarm] = []
        for message in messages:
            parsed = parse_arrival(message.lane, self._station_of(message), message.payload)
            if isinstance(parsed, Arrival):
                arrivals.append(parsed)
            else:
                malformed.append(parsed)
                self._metrics.records.labels(message.where, "rejected").inc()
        if malformed:
            await self._store.raise_alarms(malformed)
            report_alarms(self._metrics, malformed)
        if not arrivals:
            return
        started = time.perf_counter()
        outcomes = await self._store.ingest(arrivals)
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        acked: dict[tuple[str, str], list[str]] = defaultdict(list)
        for outcome in outcomes:
            # parse_arrival checked the record's station and lane against its topic
            where = (str(outcome.arrival.record["station"]), outcome.arrival.lane)
            label = self._label(*where)
            self._metrics.records.labels(label, OUTCOME_LABEL[outcome.decision]).inc()
            report_alarms(self._metrics, outcome.alarms)
            if outcome.acknowledged:
                acked[where].append(outcome.arrival.record_id)
        if not self._cfg.mqtt.acknowledge:  # the other tier acknowledges (docs/scale.md)
            return
        # one ack per lane, all handed to the client at once: a regional batch holds many
        # lanes, and one PUBACK round trip after another would hold up the next batch
        try:
            async with asyncio.TaskGroup() as group:
                for (station, lane), record_ids in acked.items():
                    ack: dict[str, object] = {"record_ids": list(dict.fromkeys(record_ids))}
                    if self._ack_key is not None:  # lanes that pin the station's key check it
                        ack = sign_message(ack, self._ack_key)
                    topic = f"{self._root}{station}/{lane}/ack"
                    payload = json.dumps(ack).encode()
                    group.create_task(publish_bounded(client, topic, payload, qos=1))
                    self._metrics.acks.labels(self._label(station, lane)).inc()
        except ExceptionGroup as failed:  # the connection is lost: as a lone publish says it
            raise failed.exceptions[0] from None

    def _label(self, station: str, lane: str) -> str:
        return f"{station}/{lane}" if self._cfg.regional else lane

    def _bad_message(self, topic: str, message: LaneMessage, error: str) -> None:
        self._metrics.bad_messages.labels(topic).inc()
        log.warning("station_bad_message", topic=topic, lane=message.lane, error=error)

    async def _reconnect_store(self) -> None:
        """Reconnect the database, with backoff, before taking the next batch."""
        backoff = Backoff(self._cfg.mqtt.reconnect_min_s, self._cfg.mqtt.reconnect_max_s)
        while True:
            await asyncio.sleep(backoff.next())
            try:
                await self._store.reconnect()
            except StoreUnavailable as exc:
                log.error("station_store_unavailable", error=str(exc), retry_in_s=backoff.current)
            else:
                log.info("station_store_reconnected")
                return


def report_alarms(metrics: StationMetrics, alarms: Sequence[Alarm]) -> None:
    """Count and log alarms (they are already in the database)."""
    for alarm in alarms:
        metrics.alarms.labels(alarm.kind.value).inc()
        log.warning(
            "station_alarm",
            kind=alarm.kind.value,
            gateway=alarm.gateway_id,
            lane=alarm.lane,
            seq=alarm.seq,
            record_id=alarm.record_id,
            detail=alarm.detail,
        )


def mqtt_client(config: StationConfig, password: str | None, identifier: str) -> aiomqtt.Client:
    """An MQTT client for a station config (TLS and credentials as configured)."""
    mqtt = config.mqtt
    tls = None
    if mqtt.tls.enabled:
        ca = str(mqtt.tls.ca_file) if mqtt.tls.ca_file else None
        tls = ssl.create_default_context(cafile=ca)
        if mqtt.tls.cert_file:
            tls.load_cert_chain(mqtt.tls.cert_file, mqtt.tls.key_file)
        tls.check_hostname = not mqtt.tls.insecure
    return aiomqtt.Client(
        mqtt.host,
        mqtt.port,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V5
        if mqtt.protocol == "5"
        else aiomqtt.ProtocolVersion.V311,
        username=mqtt.username,
        password=password,
        keepalive=mqtt.keepalive_s,
        tls_context=tls,
        timeout=10,
    )
