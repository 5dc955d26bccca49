"""Passing the environmental platform's locks on to the lanes: every ``lock_interval_s``
(and whenever a check upload ends), what ``locks.regulator_locks`` decides is sent to
each online lane's gateway as the ``regulator_lock`` command, until the gateway confirms
it; again after the gateway restarts (a new session). Answers come on the uploader's
MQTT connection (``answer``)."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import structlog

from gateway.mqtt import publish_bounded
from station.config import StationConfig
from station.store import RecordStore, StoreUnavailable
from station.upload.alarms import lock_alarm, resolve
from station.upload.locks import regulator_locks
from station.upload.store import UploadStore

log = structlog.get_logger("lanegw.upload")

SOURCE = "environmental"
ANSWER_TIMEOUT_S = 10.0


class LockCourier:
    """One MQTT connection's lock passing (the uploader makes one per connection)."""

    def __init__(
        self,
        config: StationConfig,
        store: UploadStore,
        records: RecordStore,
        client: aiomqtt.Client,
        changed: asyncio.Event,
    ) -> None:
        self._cfg, self._store, self._records = config, store, records
        self._client, self._changed = client, changed
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def topic(self, lane: str, leaf: str) -> str:
        """``{root}/{station}/{lane}/{leaf}``."""
        return f"{self._cfg.mqtt.topic_root}/{self._cfg.station}/{lane}/{leaf}"

    @property
    def responses(self) -> str:
        """Where the gateways answer (subscribed by the uploader)."""
        return self.topic("+", f"response/regulator_lock/{self._cfg.client_id}")

    async def run(self) -> None:
        """Pass the locks on until cancelled."""
        env = self._cfg.upload.environmental
        while True:
            try:
                lanes = await self._store.gateway_devices()
                checks = await self._store.checks()
                wanted = regulator_locks([(lane, devices) for lane, _, devices in lanes],
                                         checks, env.daily_checks, env.check_validity_h,
                                         datetime.now(UTC))  # fmt: skip
                for lane, session, _ in lanes:
                    await self._pass_on(lane, session, wanted[lane])
            except StoreUnavailable as exc:
                log.error("upload_store_unavailable", loop="lock", error=str(exc))
            self._changed.clear()
            try:
                async with asyncio.timeout(self._cfg.upload.lock_interval_s):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def _pass_on(self, lane: str, session: str | None, locks: dict[str, list[str]]) -> None:
        sent, sent_session = await self._store.sent_locks(lane)
        if sent == locks and sent_session == session:
            return
        try:
            answer = await self._command(lane, {"source": SOURCE, "locks": locks})
        except aiomqtt.MqttError as exc:  # the uploader reconnects; the lock goes again then
            log.warning("upload_lock_not_sent", lane=lane, error=str(exc))
            return
        if answer is None or not answer.get("ok"):
            log.warning("upload_lock_not_taken", lane=lane, answer=answer)
            return
        await self._store.save_locks(lane, locks, session)
        log.warning("upload_lane_locks", lane=lane, locks=locks)
        for device in set(locks) | set(sent or {}):
            alarm = lock_alarm(lane, device, locks.get(device, []))
            if device in locks:
                await self._records.raise_alarms([alarm])
            else:
                await resolve(self._records, alarm, "the platform's condition holds again")

    async def _command(self, lane: str, args: dict[str, Any]) -> dict[str, Any] | None:
        correlation = f"lock-{random.getrandbits(48):012x}"
        reply_topic = self.topic(lane, f"response/regulator_lock/{self._cfg.client_id}")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[correlation] = future
        body = {"args": args, "correlation_id": correlation, "response_topic": reply_topic}
        try:
            await publish_bounded(self._client, self.topic(lane, "cmd/regulator_lock"),
                                  json.dumps(body).encode(), qos=1)  # fmt: skip
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                return await future
        except TimeoutError:
            return None
        finally:
            self._answers.pop(correlation, None)

    def answer(self, payload: bytes) -> None:
        """A gateway's response to a ``regulator_lock`` command."""
        try:
            answer = json.loads(payload)
            future = self._answers.get(str(answer.get("correlation_id")))
        except (ValueError, AttributeError):
            return
        if future is not None and not future.done():
            future.set_result(answer)
