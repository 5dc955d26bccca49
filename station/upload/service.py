"""The uploader: stored records and live samples in, regulator calls out, durably.

Four loops in one TaskGroup, none of which a platform or the database can end:

- **plan**: every ``poll_interval_s``, the stored records not yet planned become rows
  (``station.upload.plan``), in the same transaction that marks them planned;
- **follow**: the lanes' ``progress`` (its own MQTT client): an inspection's start gives
  its vehicle (plate, VIN: result records carry none); each live sample of an emission
  item becomes its per-second row at once (real time);
- **send**: the head of every chain that is due, concurrently across chains; each row
  claimed, written, posted, its answer recorded (``station.upload.store``); refusals
  alarmed with the request and the answer; retries with backoff;
- **lock**: which devices the environmental platform would lock (``locks``), passed on to
  each lane's gateway with the ``regulator_lock`` command until it confirms (``courier``).

Plus the time sync with each platform at start and every ``time_sync_interval_h``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import aiomqtt
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from drivers.backoff import Backoff
from gateway.mqtt import request_bounded
from gateway.records import Progress, ResultRecord
from station.config import StationConfig
from station.store import RecordStore, StoreUnavailable
from station.store.store import now_text
from station.upload import plan as planning
from station.upload.alarms import resolve, upload_alarm, vehicle_alarm
from station.upload.courier import LockCourier
from station.upload.env import EnvClient, request_body
from station.upload.psb import PsbClient
from station.upload.render import (
    Inputs,
    Pending,
    RenderError,
    ext_values,
    render,
    vehicle_view,
)
from station.upload.store import Upload, UploadStore
from station.upload.tables import ENV_FILE, PSB_FILE, load_tables
from station.upload.wire import Exchange, Outcome

log = structlog.get_logger("lanegw.upload")

LIVE_STEPS = ("tsi_live", "fa_live", "asm_live", "vmas_live", "lug_live")
SENDERS = 8  # chains sent at once
MAX_CLOCK_OFFSET_S = 5.0


class UploadMetrics:
    """The uploader's metrics, in the receiver's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.exchanges = Counter(
            "lanegw_station_uploads",
            "Exchanges with the regulators' platforms, by platform, call and outcome",
            ["platform", "call", "outcome"],
            registry=registry,
        )
        self.clock_offset = Gauge(
            "lanegw_station_platform_clock_offset_seconds",
            "The platform's clock minus ours at the last time sync",
            ["platform"],
            registry=registry,
        )


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


class Uploader:
    """One station's uploads (several receivers may each run one on a shared database)."""

    def __init__(
        self,
        config: StationConfig,
        store: RecordStore,
        connect: Callable[[], aiomqtt.Client],
        registry: CollectorRegistry | None = None,
        own_store: bool = False,
    ) -> None:
        self._cfg = config
        self._up = config.upload
        self.records = store
        self.store = UploadStore(store, f"{config.client_id}-upload")
        self._connect = connect
        self._own_store = own_store
        self._zone = ZoneInfo(config.timezone)
        self.tables = {
            planning.PSB: load_tables(self._up.psb.fields_file, PSB_FILE),
            planning.ENV: load_tables(self._up.environmental.fields_file, ENV_FILE),
        }
        self.platforms = planning.Platforms(
            psb=self._up.psb.enabled,
            env=self._up.environmental.enabled,
            psb_items=self._up.psb.items,
            emission_results=self._up.psb.emission_results,
        )
        self.metrics = UploadMetrics(registry or CollectorRegistry())
        self._wake = asyncio.Event()
        self._locks_changed = asyncio.Event()
        self._attempts: dict[str, int] = {}  # inspection -> attempt, from its start message
        self._origins: dict[tuple[str, str, int], float] = {}  # per-second rows count from
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Upload until cancelled."""
        await self._until_set_up()
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout) as session, asyncio.TaskGroup() as group:
            self._clients(session)
            group.create_task(self._forever("plan", self._plan_once, self._up.poll_interval_s))
            group.create_task(self._send_forever())
            group.create_task(self._follow_forever())
            group.create_task(self._clock_forever())
            self.ready.set()
            log.info("upload_started", psb=self.platforms.psb, environmental=self.platforms.env)

    def _clients(self, session: aiohttp.ClientSession) -> None:
        psb, env = self._up.psb, self._up.environmental
        self.psb = PsbClient(session, psb.url or "", self.tables[planning.PSB], psb.jkxlh,
                             psb.timeout_s)  # fmt: skip
        self.env = EnvClient(session, env.url or "", self.tables[planning.ENV], env.jksqm,
                             env.timeout_s)  # fmt: skip

    async def _until_set_up(self) -> None:
        backoff = Backoff(self._up.retry_min_s, self._up.retry_max_s)
        while True:
            try:
                await self.store.setup()
                return
            except StoreUnavailable as exc:
                delay = backoff.next()
                log.error("upload_store_unavailable", error=str(exc), retry_in_s=delay)
                await self._store_trouble(delay)

    async def _store_trouble(self, delay: float) -> None:
        """Wait; reconnect when this uploader owns its store (otherwise the receiver does)."""
        await asyncio.sleep(delay)
        if self._own_store:
            try:
                await self.records.reconnect()
            except StoreUnavailable as exc:
                log.error("upload_store_unavailable", error=str(exc))

    async def _forever(self, name: str, once: Callable[[], Any], every: float) -> None:
        while True:
            try:
                await once()
            except StoreUnavailable as exc:
                log.error("upload_store_unavailable", loop=name, error=str(exc))
                await self._store_trouble(self._up.retry_min_s)
            await asyncio.sleep(every)

    # planning --------------------------------------------------------------------------
    async def _plan_once(self) -> None:
        since = await self.store.since()
        pending = await self.store.unplanned(since)
        by_inspection: dict[str, set[str]] = {}
        for record_id, inspection_id, _kind in pending:
            if inspection_id is None:
                await self._plan_device(record_id)
            else:
                by_inspection.setdefault(inspection_id, set()).add(record_id)
        for inspection_id, record_ids in by_inspection.items():
            records = await self.store.records_of(inspection_id)
            try:
                found = planning.plan_inspection(records, record_ids, self.platforms)
            except ValidationError as exc:  # stored, but not a record this version reads
                log.error("upload_plan_failed", inspection=inspection_id, error=str(exc))
                await self.store.add([], sorted(record_ids))
                continue
            if await self.store.add(found.steps, found.planned):
                self._wake.set()

    async def _plan_device(self, record_id: str) -> None:
        record = await self.store.record(record_id)
        if record is None:
            return
        try:
            found = planning.plan_device_record(record, self.platforms)
        except ValidationError as exc:  # stored, but not a record this version reads
            log.error("upload_plan_failed", record=record_id, error=str(exc))
            await self.store.add([], [record_id])
            return
        if await self.store.add(found.steps, found.planned):
            self._locks_changed.set()
            self._wake.set()

    # following the lanes ---------------------------------------------------------------
    async def _follow_forever(self) -> None:
        mqtt = self._cfg.mqtt
        backoff = Backoff(mqtt.reconnect_min_s, mqtt.reconnect_max_s, jitter=0.5)
        while True:
            try:
                async with self._connect() as client:
                    backoff.reset()
                    await self._follow(client)
            except aiomqtt.MqttError as exc:
                retry = round(backoff.current, 2)
                log.warning("upload_mqtt_lost", error=str(exc), retry_in_s=retry)
            except StoreUnavailable as exc:
                log.error("upload_store_unavailable", loop="follow", error=str(exc))
                await self._store_trouble(self._up.retry_min_s)
            await asyncio.sleep(backoff.next())

    async def _follow(self, client: aiomqtt.Client) -> None:
        courier = LockCourier(self._cfg, self.store, self.records, client, self._locks_changed)
        progress = courier.topic("+", "progress")
        await request_bounded(
            client.subscribe([(progress, 0), (courier.responses, 1)], timeout=1e9)
        )
        log.info("upload_following", topics=[progress, courier.responses])
        locking = None
        if self.platforms.env and self._up.environmental.lock_lanes:
            locking = asyncio.create_task(courier.run())
        try:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                topic = str(message.topic)
                if "/response/regulator_lock/" in topic:
                    courier.answer(payload)
                else:
                    await self._progress(topic, payload)
        finally:  # the lock loop lives as long as this connection
            if locking is not None:
                locking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await locking

    async def _progress(self, topic: str, payload: bytes) -> None:
        try:
            event = Progress.model_validate_json(payload)
        except ValidationError:
            return  # the receiver's business: it counts bad messages on its own topics
        if event.inspection_id is None:
            return
        lane = topic.split("/")[-2]
        try:
            if event.step == "inspection_started":
                attempt = int(event.values.get("attempt") or 1)
                values = dict(event.values) | {"attempt": attempt}
                await self.store.save_vehicle(event.inspection_id, lane, values)
                self._attempts[event.inspection_id] = attempt
            elif event.step in LIVE_STEPS and event.item_code and self.platforms.env:
                known = self._attempts.get(event.inspection_id)
                if known is None:
                    vehicle = await self.store.vehicle(event.inspection_id)
                    known = int((vehicle or {}).get("attempt") or 1)
                    self._attempts[event.inspection_id] = known
                origin = await self._origin(event.inspection_id, event.item_code, known,
                                            event.values)  # fmt: skip
                steps = planning.sample_steps(event.inspection_id, lane, event.item_code,
                                              known, event.ts, event.values, origin)  # fmt: skip
                if await self.store.add(steps):
                    self._wake.set()
        except (ValueError, TypeError) as exc:  # a progress value that is not what it says
            log.warning("upload_bad_progress", lane=lane, step=event.step, error=str(exc))

    async def _origin(
        self, inspection_id: str, item: str, attempt: int, values: dict[str, Any]
    ) -> float:
        """The ``t_s`` an item's per-second rows count from: its first live sample's (kept
        with its first row, so a restart goes on with the same seconds)."""
        key = (inspection_id, item, attempt)
        if key not in self._origins:
            found = await self.store.sample_origin(f"env/{inspection_id}", item, attempt)
            self._origins[key] = float(values.get("t_s") or 0) if found is None else found
        return self._origins[key]

    # sending ---------------------------------------------------------------------------
    async def _send_forever(self) -> None:
        sem = asyncio.Semaphore(SENDERS)

        async def one(upload: Upload) -> None:
            async with sem:
                try:
                    await self._send(upload)
                except StoreUnavailable as exc:  # the row stays as it was: taken again
                    log.error("upload_store_unavailable", loop="send", error=str(exc))

        while True:
            self._wake.clear()
            try:
                due = await self.store.due(now_text())
                if due:
                    async with asyncio.TaskGroup() as group:
                        for upload in due:
                            group.create_task(one(upload))
                    continue  # the next rows of those chains may be due now
            except StoreUnavailable as exc:
                log.error("upload_store_unavailable", loop="send", error=str(exc))
                await self._store_trouble(self._up.retry_min_s)
            try:
                async with asyncio.timeout(self._up.poll_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _backoff(self, tries: int) -> float:
        """The wait before an upload's next try: its tries are counted in the database
        (they survive restarts), so the schedule is computed from the count."""
        schedule = Backoff(self._up.retry_min_s, self._up.retry_max_s, jitter=0.25)
        for _ in range(max(0, tries - 1)):
            schedule.next()
        return schedule.next()

    async def _send(self, upload: Upload) -> None:
        platform = upload.platform
        try:
            values = await self._values(upload)
            kind = self.tables[platform].call(upload.call).kind
            name = self._call_name(upload)
            if platform == planning.PSB:
                request = self.psb.request(upload.call, kind, values).decode()
            else:
                request = request_body(name, self._up.environmental.jksqm, values).decode()
        except Pending as exc:  # tried again, less often the longer it waits
            waited = (datetime.now(UTC) - _utc(upload.created_at)).total_seconds()
            delay = min(self._up.retry_max_s, max(self._up.retry_min_s, waited / 4))
            await self.store.hold(upload, "held", str(exc), _later(delay))
            log.info("upload_held", upload=upload.upload_id, call=upload.call, reason=str(exc))
            return
        except (RenderError, ValidationError, KeyError, ValueError) as exc:
            # a record our tables cannot write, or a call the (province's) table lacks
            await self.store.hold(upload, "invalid", str(exc), now_text())
            await self._alarm(upload, f"cannot be written: {exc}", None)
            return
        n = await self.store.claim(upload, request, _later(self._up.lease_s))
        if n is None:
            return  # another uploader took it
        if platform == planning.PSB:
            exchange = await self.psb.call(upload.call, kind, values)
        else:
            exchange = await self.env.call(name, values)
        exchange, captured = self._captures(upload, exchange)
        retry_at = _later(self._backoff(n)) if exchange.outcome is Outcome.RETRY else now_text()
        await self.store.finish(upload, n, exchange, retry_at, captured)
        self.metrics.exchanges.labels(platform, upload.call, exchange.outcome.value).inc()
        log.info("upload_sent", upload=upload.upload_id, call=name, attempt=n,
                 inspection=upload.inspection_id, item=upload.item_code,
                 outcome=exchange.outcome.value, detail=exchange.detail)  # fmt: skip
        await self._after(upload, exchange)

    def _call_name(self, upload: Upload) -> str:
        tables = self.tables[upload.platform]
        return tables.call_name(upload.call, upload.item_code or "")

    def _captures(self, upload: Upload, exchange: Exchange) -> tuple[Exchange, dict[str, str]]:
        """The answer's values for later calls; an accepted answer without a required one
        is a refusal (nothing after it could be sent)."""
        reply = exchange.reply
        if exchange.outcome is not Outcome.ACCEPTED or reply is None:
            return exchange, {}
        captured: dict[str, str] = {}
        for spec in self.tables[upload.platform].call(upload.call).reply:
            value = reply.fields.get(spec.field, "")
            if spec.required and not value:
                reason = f"the answer has no {spec.field}"
                return Exchange(exchange.request, Outcome.REFUSED, exchange.response,
                                reply, reason), {}  # fmt: skip
            if spec.capture and value:
                captured[spec.field] = value
        return exchange, captured

    async def _after(self, upload: Upload, exchange: Exchange) -> None:
        if exchange.outcome is Outcome.REFUSED:
            await self._alarm(upload, f"refused: {exchange.detail}", exchange)
        elif exchange.outcome is Outcome.ACCEPTED:
            await resolve(self.records, upload_alarm(upload, ""), "accepted after a retry")
            reply = exchange.reply
            if upload.call in planning.CLOCK_CALLS.values() and reply is not None:
                self._clock(upload.platform, reply.fields)
            epdesc = reply.fields.get("epdesc", "") if reply else ""
            if upload.call == planning.REG_CALL and epdesc not in ("", "ALLOW"):
                await self.records.raise_alarms([vehicle_alarm(upload, epdesc)])
        if upload.call == planning.CHECK_CALL:
            self._locks_changed.set()

    def _clock(self, platform: str, fields: dict[str, str]) -> None:
        service = self.tables[platform].service
        text = fields.get("sj") or fields.get("synctime") or ""
        try:
            theirs = datetime.strptime(text, service.clock_format).replace(tzinfo=self._zone)
        except ValueError:
            log.warning("upload_clock_unreadable", platform=platform, value=text)
            return
        offset = (theirs - datetime.now(UTC)).total_seconds()
        self.metrics.clock_offset.labels(platform).set(offset)
        # kssj / jssj are our clock and the video system cuts clips by them; one platform
        # refuses an offset over 5 s (standards.md §5.2): the station's clock needs NTP
        level = log.warning if abs(offset) > MAX_CLOCK_OFFSET_S else log.info
        level("upload_clock", platform=platform, offset_s=round(offset, 3))

    async def _values(self, upload: Upload) -> list[tuple[str, str]]:
        tables = self.tables[upload.platform]
        record = None
        record_id = upload.inputs.get("record_id")
        if record_id:
            stored = await self.store.record(str(record_id))
            if stored is None:
                raise RenderError(f"record {record_id} is not stored")
            record = ResultRecord.model_validate(stored)
        vehicle = await self.store.vehicle(upload.inspection_id) if upload.inspection_id else None
        vehicle = vehicle_view(vehicle, tables.codes)
        sample = None
        if "sample" in upload.inputs:
            sample = dict(upload.inputs["sample"])
            sample |= {"serial": upload.inputs["serial"], "id": upload.inputs["id"],
                       "ts": _utc(upload.inputs["ts"])}  # fmt: skip
        check = None
        if "kind" in upload.inputs:
            check = {"kind": upload.inputs["kind"], "device": upload.inputs["device"]}
        inputs = Inputs(
            now=datetime.now(UTC),
            zone=self._zone,
            config=self._config_values(upload, record),
            record=record,
            vehicle=vehicle,
            sample=sample,
            context=await self.store.context(upload.chain),
            check=check,
        )
        fields = tables.fields_for(upload.call, upload.item_code)
        rendered = render(fields, inputs, tables)
        if rendered.notes:
            log.warning("upload_value_clamped", upload=upload.upload_id, notes=rendered.notes)
        slots = tables.call(upload.call).ext_slots
        return rendered.values + (ext_values(record, slots) if slots else [])

    def _config_values(self, upload: Upload, record: ResultRecord | None) -> dict[str, str | None]:
        platform = self._up.psb if upload.platform == planning.PSB else self._up.environmental
        lane = upload.lane or (record.lane if record else "")
        device = upload.inputs.get("device") or (record.devices[0].id if record and
                                                 record.devices else None)  # fmt: skip
        device_code = None
        if device:
            codes = platform.device_codes
            device_code = codes.get(f"{lane}/{device}") or codes.get(str(device)) or str(device)
        return {
            "station_code": platform.station_code or self._cfg.station,
            "lane_code": platform.lane_codes.get(lane, lane),
            "device_code": device_code,
            "software_id": self._up.psb.software_id,
            "station_name": self._up.psb.station_name,
        }

    # alarms ----------------------------------------------------------------------------
    async def _alarm(self, upload: Upload, detail: str, exchange: Exchange | None) -> None:
        alarm = upload_alarm(upload, detail, exchange)
        await self.records.raise_alarms([alarm])
        log.warning("station_alarm", kind=alarm.kind.value, lane=upload.lane, detail=alarm.detail)

    # time sync -------------------------------------------------------------------------
    async def _clock_forever(self) -> None:
        intervals = {planning.PSB: self._up.psb.time_sync_interval_h,
                     planning.ENV: self._up.environmental.time_sync_interval_h}  # fmt: skip
        enabled = [p for p in intervals if getattr(self.platforms, p)]
        every = min((intervals[p] for p in enabled), default=12.0) * 3600
        while True:
            try:
                steps = [planning.clock_step(p, datetime.now(UTC)) for p in enabled]
                if await self.store.add(steps):
                    self._wake.set()
            except StoreUnavailable as exc:
                log.error("upload_store_unavailable", loop="clock", error=str(exc))
                await self._store_trouble(self._up.retry_min_s)
                continue
            await asyncio.sleep(every)
