"""The MQTT link: delivers the outbox in order, publishes live data, takes acks and commands.

``MqttLink.run`` connects, announces the gateway (retained birth on ``state``, with an
offline will), subscribes to ``ack`` and ``cmd/+``, then runs one TaskGroup: the outbox
delivery, the live publisher (status, telemetry, progress) and the command answers as its
tasks, the inbound dispatcher as its body. The dispatcher never waits on a command: it
hands each one to the command router (which runs it as a task with its own timeout) and
reads the next message, so acks, aborts and pings are never queued behind a 3-minute
daily check; answers come back through ``respond``.

Any MQTT error ends the session; the link waits with exponential backoff plus jitter and
reconnects on a fresh client, and delivery resumes from the oldest record still in the
outbox (at-least-once, in order; record ids let the server drop duplicates). A dead
link is noticed by the keepalive within about 1.5 periods.

Stopping: the link stops when its task is cancelled (SIGTERM). Once connected, also while
still announcing itself, it first publishes the retained offline state (the broker sends
the will only when a client vanishes, not on a clean disconnect). Python 3.11 can hide
the cancellation in two ways; a link that missed it ran on or reconnected, and SIGTERM
did not stop the daemon:

- ``asyncio.wait_for``, which aiomqtt uses to bound its waits, returns normally when the
  broker's reply and the cancellation arrive together (CPython gh-86296). Publishes and
  subscribes therefore wait without aiomqtt's timeout and are bounded here with
  ``asyncio.timeout``, which does not drop cancellations.
- A TaskGroup whose tasks fail while it is being cancelled raises their errors, not
  ``CancelledError``.

The task still counts the cancel request in both cases, so the link asks
``Task.cancelling()`` after connecting and after a failed session. That count is only
trustworthy because the session's TaskGroup body never ends by itself: a 3.11 TaskGroup
whose task fails once its body has ended leaves a stray cancel request on the task
(CPython gh-116720), which would read as a shutdown after the first failed session.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from drivers.backoff import Backoff
from gateway.config import LaneConfig
from gateway.integrity import message_signed_by, public_key_from_text
from gateway.metrics import Metrics
from gateway.outbox import Outbox
from gateway.records import Ack, GatewayState
from gateway.topics import Topics

log = structlog.get_logger("lanegw.mqtt")

#: live messages (telemetry, progress) kept while the publisher catches up; older dropped
LIVE_QUEUE_SIZE = 1000
#: live messages handed to the client together when they queued up
LIVE_BATCH = 32
#: seconds to wait for the broker's answer to one request (CONNACK, SUBACK, PUBACK)
REPLY_TIMEOUT_S = 10.0
#: seconds the offline state may take to publish at shutdown
GOODBYE_TIMEOUT_S = 2.0
#: command answers kept while the link is down (the oldest is dropped past this)
RESPONSE_QUEUE_SIZE = 256
#: the largest packet the broker may send us (MQTT 5; acks and commands are a few kB)
MAX_INCOMING_PACKET_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Incoming:
    """A command message as the dispatcher hands it to the command router."""

    command: str
    payload: bytes
    response_topic: str | None
    correlation_data: bytes | None


#: takes a command and returns at once (the answer comes later through ``respond``)
CommandHandler = Callable[[Incoming], None]


@dataclass(frozen=True, slots=True)
class Response:
    """A command's answer waiting to be published."""

    topic: str
    payload: bytes
    correlation_data: bytes | None


@dataclass(frozen=True, slots=True)
class SentBatch:
    """Records ``first_seq..last_seq`` published together, awaiting the server's ack."""

    first_seq: int
    last_seq: int
    sent_at: float  # time.monotonic()


class MqttLink:
    """The gateway's one MQTT connection (re-created after every failure)."""

    def __init__(
        self,
        config: LaneConfig,
        outbox: Outbox,
        metrics: Metrics,
        birth: Callable[[], GatewayState],
        offline: Callable[[], GatewayState],
        on_command: CommandHandler,
        password: str | None = None,
    ) -> None:
        self._cfg = config.mqtt
        self._client_id = config.client_id
        self.topics = Topics(config.mqtt.topic_root, config.station, config.lane)
        self._outbox = outbox
        outbox.on_acked = metrics.delivered.inc
        outbox.on_unsent_acked = metrics.bad_messages.labels("ack_unsent").inc
        self._ack_keys = [public_key_from_text(text) for text in config.mqtt.ack_keys]
        self._metrics = metrics
        self._birth = birth
        self._offline = offline
        self._on_command = on_command
        self._password = password
        self._retained: dict[str, bytes] = {}
        self._live: asyncio.Queue[tuple[str, bytes, int, bool, int | None]] = asyncio.Queue(
            LIVE_QUEUE_SIZE
        )
        self._responses: deque[Response] = deque()
        self._response_waiting = asyncio.Event()
        self.connected = False
        self.connected_event = asyncio.Event()
        self.reconnects = 0
        self._client: aiomqtt.Client | None = None

    # API for producers -------------------------------------------------------------------
    def publish_retained(self, topic: str, payload: bytes) -> None:
        """Publish now if connected, and again after every reconnect (device status)."""
        self._retained[topic] = payload
        self._enqueue(topic, payload, 1, True, None)

    def publish_live(self, topic: str, payload: bytes, expiry_s: int | None = None) -> None:
        """Best-effort QoS 0 publish; dropped while offline (telemetry, progress)."""
        if self.connected:
            self._enqueue(topic, payload, 0, False, expiry_s)

    def respond(self, topic: str, payload: bytes, correlation_data: bytes | None) -> None:
        """Publish a command's answer (QoS 1), now or once connected again."""
        if len(self._responses) >= RESPONSE_QUEUE_SIZE:
            self._responses.popleft()
            self._metrics.bad_messages.labels("response_dropped").inc()
        self._responses.append(Response(topic, payload, correlation_data))
        self._response_waiting.set()

    def _enqueue(self, topic: str, payload: bytes, qos: int, retain: bool, exp: int | None) -> None:
        if self._live.full():
            self._live.get_nowait()  # newest wins for live data
        self._live.put_nowait((topic, payload, qos, retain, exp))

    # connection loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """Stay connected until cancelled; MQTT errors end a session, never the link."""
        # jitter: fifty lanes that lost the same broker do not come back in step
        backoff = Backoff(self._cfg.reconnect_min_s, self._cfg.reconnect_max_s, jitter=0.5)
        while True:
            try:
                await self._session()
            except* (aiomqtt.MqttError, OSError, TimeoutError) as group:
                cause = _first(group)
                if _stop_requested():
                    log.warning("mqtt_failed_while_stopping", error=str(cause))
                elif self.connected:
                    log.warning("mqtt_disconnected", error=str(cause))
                    backoff.reset()
                else:
                    retry = round(backoff.current, 2)
                    log.warning("mqtt_connect_failed", error=str(cause), retry_in_s=retry)
            finally:
                self._set_connected(False)
            if _stop_requested():
                raise asyncio.CancelledError  # the session failed as the daemon stopped
            await asyncio.sleep(backoff.next())
            self.reconnects += 1
            self._metrics.reconnects.inc()

    def _client_for_session(self) -> aiomqtt.Client:
        v5 = self._cfg.protocol == "5"
        offline = self._offline().model_dump_json().encode()
        connect_properties = None
        if v5:  # the broker must not forward anything bigger (a 10 MB "command"): dropped there
            connect_properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect_properties.MaximumPacketSize = MAX_INCOMING_PACKET_BYTES
        client = aiomqtt.Client(
            self._cfg.host,
            self._cfg.port,
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            will=aiomqtt.Will(self.topics.state, offline, qos=1, retain=True),
            keepalive=self._cfg.keepalive_s,
            username=self._cfg.username,
            password=self._password,
            clean_session=None if v5 else True,
            tls_context=self._tls_context(),
            timeout=REPLY_TIMEOUT_S,  # connect and disconnect only: see request_bounded
            max_inflight_messages=self._cfg.inflight,
            # no Nagle: a small packet (a PUBACK, a batch's last record) must not wait for
            # the broker's delayed ACK (40 ms stalls per batch in server_ack delivery)
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            properties=connect_properties,
        )
        # records in flight and a batch of live messages are pending at once by design:
        # past the threshold aiomqtt logs a warning for every further publish
        client.pending_calls_threshold = self._cfg.inflight + LIVE_BATCH + 16
        return client

    def _tls_context(self) -> ssl.SSLContext | None:
        tls = self._cfg.tls
        if not tls.enabled:
            return None
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.insecure:
            context.check_hostname = False
        return context

    async def _session(self) -> None:
        async with self._client_for_session() as client:
            self._client = client
            try:
                await self._announce(client)
                if _stop_requested():  # cancelled while connecting, and the error was lost
                    raise asyncio.CancelledError
                self._set_connected(True)
                log.info("mqtt_connected", host=self._cfg.host, port=self._cfg.port)
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._deliver(client))
                    group.create_task(self._publish_live(client))
                    group.create_task(self._publish_responses(client))
                    # the dispatcher is the group's body, so the body never ends before the
                    # group does (it raises when the connection drops): see the module doc
                    await self._dispatch(client)
            except BaseException:
                # a shutdown, whatever the TaskGroup raised: say goodbye while connected
                # (the birth may be out even if set-up was cut short)
                if _stop_requested():
                    await self._goodbye(client)
                raise

    async def _announce(self, client: aiomqtt.Client) -> None:
        """Subscribe, then publish the birth and the retained topics."""
        # subscribe first: the birth message tells the station commands are heard
        await request_bounded(client.subscribe(self.topics.ack, qos=1, timeout=math.inf))
        await request_bounded(client.subscribe(self.topics.commands, qos=1, timeout=math.inf))
        birth = self._birth().model_dump_json().encode()
        await publish_bounded(client, self.topics.state, birth, qos=1, retain=True)
        for topic, payload in list(self._retained.items()):
            await publish_bounded(client, topic, payload, qos=1, retain=True)
        self._drain_stale_live()

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """Publish the retained offline state; best effort, bounded."""
        payload = self._offline().model_dump_json().encode()
        try:
            await publish_bounded(
                client, self.topics.state, payload, qos=1, retain=True, seconds=GOODBYE_TIMEOUT_S
            )
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("mqtt_goodbye_failed", error=str(exc))
        else:
            log.info("mqtt_goodbye_sent")
        self._set_connected(False)

    async def close(self) -> None:
        """Say goodbye if the session is still up (it normally did so when cancelled)."""
        client = self._client
        if client is not None and self.connected:
            await self._goodbye(client)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._metrics.mqtt_connected.set(1 if connected else 0)
        if connected:
            self.connected_event.set()
        else:
            self.connected_event.clear()
            self._client = None

    def _drain_stale_live(self) -> None:
        """Live data queued before the (re)connect is stale; retained topics are resent."""
        while not self._live.empty():
            self._live.get_nowait()

    # the three session tasks -------------------------------------------------------------
    async def _deliver(self, client: aiomqtt.Client) -> None:
        """Publish outbox records in sequence order, a window of ``inflight`` at a time.

        With ``server_ack`` a record stays in the outbox until the server acknowledges it;
        when the oldest one is still unacknowledged ``ack_timeout_s`` after it was sent
        (the server was not subscribed then, e.g. a broker restarted without its
        sessions), delivery starts again from it, in order.
        """
        last_seq = 0
        server_ack = self._cfg.delivery == "server_ack"
        # server_ack: the batches sent and not yet all acknowledged, in order; one entry
        # per batch, not per record (a backlog of 100,000 records is sent in minutes)
        awaiting: deque[SentBatch] = deque()
        outbox = self._outbox
        while True:
            if server_ack and await self._ack_overdue(awaiting):
                resend_from = max(awaiting[0].first_seq, await outbox.oldest_seq() or 0)
                log.warning("records_unacknowledged_resending", from_seq=resend_from)
                awaiting.clear()
                last_seq = resend_from - 1
            batch = await outbox.pending(last_seq, self._cfg.inflight)
            if not batch:
                outbox.changed.clear()
                batch = await outbox.pending(last_seq, self._cfg.inflight)
                if not batch:
                    await self._wait_for_records(awaiting)
                    continue
            started = time.perf_counter()
            # from here the broker may hand them to the station, and its ack may come back
            # before the whole batch is out: acks up to here are for records really sent
            outbox.sent_through = max(outbox.sent_through, batch[-1].seq)
            async with asyncio.TaskGroup() as group:
                for record in batch:
                    group.create_task(
                        publish_bounded(client, self.topics.results, record.wire_payload(), qos=1)
                    )
            self._metrics.publish_latency.observe(time.perf_counter() - started)
            seqs = [record.seq for record in batch]
            if server_ack:
                await outbox.mark_sent(seqs)
                awaiting.append(SentBatch(seqs[0], seqs[-1], time.monotonic()))
            else:
                await outbox.remove(seqs)
                self._metrics.delivered.inc(len(seqs))
            last_seq = seqs[-1]

    async def _ack_overdue(self, awaiting: deque[SentBatch]) -> bool:
        """Forget acknowledged batches; True when the oldest one left waits too long."""
        oldest = await self._outbox.oldest_seq()
        while awaiting and (oldest is None or awaiting[0].last_seq < oldest):
            awaiting.popleft()  # every record below the oldest in the outbox was acked
        return bool(awaiting) and time.monotonic() - awaiting[0].sent_at >= self._cfg.ack_timeout_s

    async def _wait_for_records(self, awaiting: deque[SentBatch]) -> None:
        """Wait for a new record, or (server_ack) until the oldest unacked one is due."""
        timeout = None
        if awaiting:
            timeout = max(0.0, awaiting[0].sent_at + self._cfg.ack_timeout_s - time.monotonic())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # not wait_for: see the module doc
                await self._outbox.changed.wait()

    async def _publish_live(self, client: aiomqtt.Client) -> None:
        """Publish live messages; what queued up meanwhile goes out together.

        A publish returns only once its packet is written, a loop iteration later: one at
        a time, the publisher falls behind when many devices report (32 at 50 Hz), so
        the messages waiting are handed to the client at once (still in queue order).
        """
        v5 = self._cfg.protocol == "5"
        live = self._live
        while True:
            batch = [await live.get()]
            while not live.empty() and len(batch) < LIVE_BATCH:
                batch.append(live.get_nowait())
            if len(batch) == 1:
                await self._publish_one(client, v5, *batch[0])
                continue
            async with asyncio.TaskGroup() as group:
                for item in batch:
                    group.create_task(self._publish_one(client, v5, *item))

    @staticmethod
    async def _publish_one(
        client: aiomqtt.Client,
        v5: bool,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        expiry: int | None,
    ) -> None:
        properties = None
        if expiry is not None and v5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = expiry
        await publish_bounded(client, topic, payload, qos=qos, retain=retain, properties=properties)

    async def _publish_responses(self, client: aiomqtt.Client) -> None:
        """Publish command answers in order; one whose publish fails is kept for the next
        session (the first in the queue leaves it only once the broker has it)."""
        v5 = self._cfg.protocol == "5"
        while True:
            while not self._responses:
                self._response_waiting.clear()
                await self._response_waiting.wait()
            answer = self._responses[0]
            properties = None
            if answer.correlation_data is not None and v5:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.CorrelationData = answer.correlation_data
            await publish_bounded(client, answer.topic, answer.payload, 1, properties=properties)
            if self._responses and self._responses[0] is answer:
                self._responses.popleft()

    async def _dispatch(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic == self.topics.ack:
                self._handle_ack(payload)
                continue
            command = self.topics.command_name(topic)
            if command is None:
                continue
            props = message.properties
            self._on_command(
                Incoming(
                    command,
                    payload,
                    getattr(props, "ResponseTopic", None),
                    getattr(props, "CorrelationData", None),
                )
            )

    def _handle_ack(self, payload: bytes) -> None:
        try:
            ack = Ack.model_validate_json(payload)
        except ValidationError as exc:
            self._metrics.bad_messages.labels("ack").inc()
            log.warning("bad_ack", error=exc.errors(include_url=False)[0]["msg"], size=len(payload))
            return
        if self._ack_keys and not message_signed_by(ack.model_dump(), self._ack_keys):
            self._metrics.bad_messages.labels("ack_unverified").inc()
            log.warning("ack_not_signed_by_the_station", records=len(ack.record_ids))
            return
        self._outbox.forget_acked(ack.record_ids)  # deleted on the outbox's thread


def _stop_requested() -> bool:
    """Whether this task was cancelled, even if the CancelledError never reached it."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def request_bounded(call: Awaitable[object], seconds: float = REPLY_TIMEOUT_S) -> None:
    """Await an aiomqtt call made with ``timeout=math.inf``, bounded by ``asyncio.timeout``
    instead of aiomqtt's ``wait_for``, which can drop a cancellation (see the module doc)."""
    try:
        async with asyncio.timeout(seconds):
            await call
    except TimeoutError:
        raise aiomqtt.MqttError(f"no answer from the broker within {seconds:g} s") from None


async def publish_bounded(
    client: aiomqtt.Client,
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool = False,
    properties: Properties | None = None,
    seconds: float = REPLY_TIMEOUT_S,
) -> None:
    """Publish; QoS 1 returns on the PUBACK, QoS 0 once the packet is written."""
    call = client.publish(
        topic, payload, qos=qos, retain=retain, properties=properties, timeout=math.inf
    )
    await request_bounded(call, seconds)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf exception of a (nested) exception group."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
