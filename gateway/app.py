"""The composition root: build buses, drivers, supervisors, outbox, MQTT link and runner
from a validated config, and run them all in one TaskGroup until cancelled.

Ownership: each bus has exactly one owner task (``BusOwner.run``); each device one
supervisor task; the MQTT link one task (with its own session TaskGroup); the inspection
runner one task. Nothing here is fire-and-forget.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import uuid6

from drivers.bus import BusOwner, StreamBus
from drivers.devices.base import DriverContext, Reading
from drivers.registry import get_spec
from gateway import __version__
from gateway.commands import CommandRouter
from gateway.config import BusConfig, LaneConfig
from gateway.control import ControlServer, Monitors
from gateway.evidence import EvidenceStore
from gateway.frames import FrameRecorder
from gateway.inspection.runner import InspectionRunner
from gateway.integrity import Sealer, load_or_create_key
from gateway.maintenance.calibration import CalibrationBook
from gateway.maintenance.lockouts import CheckLog, RegulatorLocks, lockout_reasons
from gateway.metrics import BusMetrics, LockoutCollector, Metrics, serve_metrics
from gateway.mqtt import MqttLink
from gateway.outbox import Outbox
from gateway.plausibility import FingerprintBook, PlausibilityChecker
from gateway.portlock import PortBusy, PortLock
from gateway.producer import RecordProducer
from gateway.records import (
    DeviceInventoryItem,
    DeviceStatus,
    GatewayState,
    Telemetry,
    utc_now,
)
from gateway.sdnotify import feed_watchdog, notify
from gateway.secrets import read_mqtt_password
from gateway.signals import until_signalled
from gateway.state import (
    KEY_FILE,
    OUTBOX_FILE,
    StateInconsistent,
    StateLock,
    assess,
    outbox_present,
)
from gateway.supervisor import DeviceSupervisor

log = structlog.get_logger("lanegw")


def config_hash(config: LaneConfig) -> str:
    """A short hash of the effective config (secrets are file paths, never their contents)."""
    text = config.model_dump_json(exclude={"mqtt": {"password_file"}})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_bus(bus: BusConfig, metrics: Metrics, frames: FrameRecorder) -> BusOwner[Any]:
    """The owner of one configured bus."""
    observer = BusMetrics(metrics, bus.id, _log_port, frames.frame)
    if bus.kind == "serial":
        return StreamBus(
            bus.id,
            bus.url,
            bus.line,
            response_timeout=bus.response_timeout_s,
            inter_request_delay=bus.inter_request_delay_s,
            observer=observer,
        )
    from drivers.modbus.bus import ModbusBus  # only lanes with Modbus testers need pymodbus

    return ModbusBus(
        bus.id,
        bus.url if bus.kind == "modbus_rtu" else f"tcp://{bus.url.removeprefix('tcp://')}",
        bus.line,
        response_timeout=bus.response_timeout_s,
        inter_request_delay=bus.inter_request_delay_s,
        observer=observer,
    )


def _log_port(bus: str, is_open: bool, reason: str) -> None:
    if is_open:
        log.info("port_open", bus=bus)
    else:
        log.warning("port_unavailable", bus=bus, reason=reason)


@dataclass
class Gateway:
    """A running gateway's parts (exposed for status, the CLI and tests)."""

    config: LaneConfig
    metrics: Metrics = field(default_factory=Metrics)
    session_id: str = field(default_factory=lambda: str(uuid6.uuid7()))
    started_at: Any = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        cfg = self.config
        self.state_lock = StateLock(cfg.state_dir, f"lanegw daemon {cfg.client_id}")
        self.state_lock.acquire()
        self.outbox = self._open_state()
        self.evidence = EvidenceStore(cfg.state_dir / "evidence")
        self.frames = FrameRecorder()
        self.buses = {b.id: build_bus(b, self.metrics, self.frames) for b in cfg.buses}
        self.supervisors: dict[str, DeviceSupervisor] = {}
        for dev in cfg.devices:
            spec = get_spec(dev.protocol)
            context = DriverContext(
                dev.id, self.buses[dev.bus], dev.address, spec.options.model_validate(dev.options)
            )
            self.supervisors[dev.id] = DeviceSupervisor(
                spec.factory(context),
                dev.poll_period_s,
                self.metrics,
                self._publish_status,
                self._publish_reading,
            )
        self.commands = CommandRouter(self)
        self.link = MqttLink(
            cfg,
            self.outbox,
            self.metrics,
            self.birth,
            self.offline_state,
            self.commands.accept,
            read_mqtt_password(cfg.mqtt),
        )
        self.plausibility = PlausibilityChecker(
            cfg.plausibility,
            cfg.devices,
            FingerprintBook(
                cfg.state_dir / "plausibility.sqlite3", cfg.plausibility.remembered_curves
            ),
            self.evidence.get,
        )
        self.producer = RecordProducer(self)
        self.checks = CheckLog(cfg.state_dir / "maintenance" / "checks.jsonl")
        self.regulator_locks = RegulatorLocks(
            cfg.state_dir / "maintenance" / "regulator-locks.json"
        )
        self.calibrations = CalibrationBook(cfg.state_dir / "maintenance" / "calibration")
        self.runner = InspectionRunner(self)
        self.monitors = Monitors()
        self.control = ControlServer(self)
        self.metrics.info.labels(cfg.station, cfg.lane, self.gateway_id, __version__).set(1)
        self.metrics.registry.register(
            LockoutCollector(lambda: [d.id for d in cfg.devices], self.lockouts)
        )
        self._telemetry_slot: dict[str, float] = {}  # per device: next telemetry slot
        self._telemetry_interval = 1.0 / cfg.mqtt.telemetry_max_hz

    def _open_state(self) -> Outbox:
        """Open the outbox and the key, refusing a state that is not consistent
        (``gateway.state``: a missing, damaged or rolled-back outbox, a lost or foreign
        key); never creates an outbox or a key where records were made before."""
        cfg = self.config
        if not outbox_present(cfg.state_dir / OUTBOX_FILE):  # judge before creating one
            early = assess(cfg.state_dir, open_outbox=False)
            if not early.ok:
                raise StateInconsistent(early.problems)
        outbox = Outbox(
            cfg.state_dir / OUTBOX_FILE, cfg.outbox.max_bytes, cfg.outbox.alarm_fraction
        )
        report = assess(cfg.state_dir, outbox.store)
        if not report.ok:
            outbox.store.close()
            raise StateInconsistent(report.problems)
        created = not report.key_present
        if created:  # first start: say "nothing produced yet" before the key exists
            outbox.store.record_high_water()
        self.sealer = Sealer(load_or_create_key(cfg.state_dir / KEY_FILE))
        recorded = report.high_water
        outbox.store.bind_key(self.sealer.public_key)
        if created:
            log.info("gateway_key_created", public_key=self.sealer.public_key)
        last_seq = outbox.store.last_seq
        if (recorded is None and last_seq) or (recorded and recorded.last_seq != last_seq):
            log.warning(  # behind the outbox (a crash between commit and write), or new
                "sequence_record_updated",
                recorded_last_seq=None if recorded is None else recorded.last_seq,
                last_seq=last_seq,
            )
        return outbox

    @property
    def gateway_id(self) -> str:
        """Stable identity of this gateway (its MQTT client id)."""
        return self.config.client_id

    def _signed(self, state: GatewayState) -> GatewayState:
        """The state signed by this gateway's key (the station believes no other)."""
        return GatewayState.model_validate_json(self.sealer.sign_json(state.model_dump_json()))

    def birth(self) -> GatewayState:
        """The retained birth message, signed."""
        cfg = self.config
        return self._signed(
            GatewayState(
                online=True,
                gateway_id=self.gateway_id,
                station=cfg.station,
                lane=cfg.lane,
                session_id=self.session_id,
                version=__version__,
                config_hash=config_hash(cfg),
                started_at=self.started_at,
                devices=self.inventory(),
                outbox_alarm=self.outbox.alarm,
                public_key=self.sealer.public_key,
                ts=utc_now(),
            )
        )

    def offline_state(self) -> GatewayState:
        """The will (and the goodbye): the gateway is gone; signed, so it cannot be forged."""
        cfg = self.config
        return self._signed(
            GatewayState(
                online=False,
                gateway_id=self.gateway_id,
                station=cfg.station,
                lane=cfg.lane,
                session_id=self.session_id,
                ts=utc_now(),
            )
        )

    def inventory(self) -> list[DeviceInventoryItem]:
        """The configured devices, for the birth message and status."""
        return [
            DeviceInventoryItem(
                id=d.id,
                device_class=d.device_class.value,
                protocol=d.protocol,
                bus=d.bus,
                vendor=d.identity.vendor,
                model=d.identity.model,
                serial=d.identity.serial,
                certificate=d.identity.certificate.number if d.identity.certificate else None,
            )
            for d in self.config.devices
        ]

    def lockouts(self) -> dict[str, list[str]]:
        """Locked devices and why (recomputed on each call: locks clear with their cause)."""
        return lockout_reasons(self.config, self.checks, regulator=self.regulator_locks.reasons())

    def health(self) -> tuple[bool, dict[str, Any]]:
        """``/healthz``: unhealthy while new inspections would be refused (outbox alarm)."""
        offline = [
            s.device_id for s in self.supervisors.values() if s.availability.value == "offline"
        ]
        detail = {
            "station": self.config.station,
            "lane": self.config.lane,
            "mqtt_connected": self.link.connected,
            "outbox_alarm": self.outbox.alarm,
            "offline_devices": offline,
            "locked_devices": sorted(self.lockouts()),
        }
        return not self.outbox.alarm, detail

    def _publish_status(self, status: DeviceStatus) -> None:
        topic = self.link.topics.device_status(status.device)
        self.link.publish_retained(topic, status.model_dump_json().encode())

    def _publish_reading(self, device: str, reading: Reading) -> None:
        now = asyncio.get_running_loop().time()
        # at most telemetry_max_hz on average; one reading early is let through, so a late
        # poll followed by an on-time one does not lose the second (a token bucket of 2)
        slot = max(self._telemetry_slot.get(device, now), now)
        telemetry_due = slot - now < self._telemetry_interval
        watched = self.monitors.watched(device)
        if not (telemetry_due or watched):
            return  # rate limit: live values are for display, not evidence
        values = self.calibrations.correct(device, reading.as_dict())
        if watched:
            self.monitors.publish(device, values, time.time())
        if not telemetry_due:
            return
        self._telemetry_slot[device] = slot + self._telemetry_interval
        if self.link.connected:
            message = Telemetry(device=device, ts=utc_now(), values=values)
            self.link.publish_live(
                self.link.topics.telemetry(device), message.model_dump_json().encode()
            )

    async def _watch_outbox(self) -> None:
        """Keep the outbox gauges current and log alarm transitions once."""
        alarm = False
        while True:
            stats = self.outbox.stats()
            self.metrics.outbox_depth.set(stats.depth)
            self.metrics.outbox_bytes.set(stats.bytes)
            self.metrics.outbox_oldest.set(stats.oldest_age_s)
            self.metrics.outbox_alarm.set(1 if stats.alarm else 0)
            if stats.alarm != alarm:
                alarm = stats.alarm
                (log.error if alarm else log.info)(
                    "outbox_alarm" if alarm else "outbox_alarm_cleared",
                    depth=stats.depth,
                    bytes=stats.bytes,
                    bound=self.outbox.max_bytes,
                )
            await asyncio.sleep(1.0)

    def _lock_ports(self) -> list[PortLock]:
        """Lock every port this gateway drives (``PortBusy`` if another process has one)."""
        locks: list[PortLock] = []
        try:
            for bus in self.config.buses:
                if bus.kind != "modbus_tcp":
                    lock = PortLock(bus.url, f"lanegw daemon {self.gateway_id}")
                    lock.acquire()
                    locks.append(lock)
        except PortBusy:
            for lock in locks:
                lock.release()
            raise
        return locks

    async def run(self) -> None:
        """Run every part until cancelled."""
        structlog.contextvars.bind_contextvars(station=self.config.station, lane=self.config.lane)
        log.info(
            "gateway_starting",
            version=__version__,
            session_id=self.session_id,
            outbox_depth=self.outbox.stats().depth,
            last_seq=self.outbox.last_seq,
        )
        locks = self._lock_ports()
        try:
            async with asyncio.TaskGroup() as group:
                for bus in self.buses.values():
                    group.create_task(bus.run(), name=f"bus:{bus.name}")
                for supervisor in self.supervisors.values():
                    group.create_task(supervisor.run(), name=f"device:{supervisor.device_id}")
                group.create_task(self.link.run(), name="mqtt")
                group.create_task(self.commands.serve(), name="commands")
                group.create_task(self.runner.run(), name="inspections")
                group.create_task(self.control.serve(), name="control")
                group.create_task(self._watch_outbox(), name="outbox-gauges")
                group.create_task(self.outbox.apply_acks(), name="outbox-acks")
                metrics_cfg = self.config.metrics
                if metrics_cfg.enabled:
                    group.create_task(
                        serve_metrics(
                            self.metrics, metrics_cfg.address, metrics_cfg.port, self.health
                        ),
                        name="metrics",
                    )
                group.create_task(feed_watchdog(), name="watchdog")
                notify("READY=1")
        finally:
            await self.link.close()
            await self.outbox.aclose()
            for lock in locks:
                lock.release()
            self.state_lock.release()
            log.info("gateway_stopped")


async def run_gateway(config: LaneConfig) -> None:
    """Run a gateway until SIGINT/SIGTERM, then stop cleanly."""
    await until_signalled(Gateway(config).run())


def state_path(config: LaneConfig, name: str) -> Path:
    """A file in the gateway's state directory."""
    return config.state_dir / name
