"""One supervisor per device: polls it, tracks availability, never lets the loop die.

Availability is a small state machine (ONLINE -> DEGRADED after a failure -> OFFLINE
after ``OFFLINE_AFTER`` consecutive failures -> ONLINE on the next good reading); each
transition is logged once and published retained. While offline the poll interval backs
off exponentially up to ``BACKOFF_MAX_S`` so a dead device costs its bus little and does
not slow the other devices on it. A procedure that needs the device to itself takes
``hold()``; polling pauses meanwhile.

This is the one place with a broad ``except``: a bug in a driver, or in what the gateway
does with a reading (telemetry, live monitors), must be logged with its traceback and
counted, and polling must go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Final

import structlog

from drivers.backoff import Backoff
from drivers.devices.base import Device, Reading
from drivers.errors import DriverError
from gateway.metrics import Metrics
from gateway.records import Availability, DeviceStatus, utc_now

log = structlog.get_logger("lanegw.device")

#: consecutive failures before a device counts as offline
OFFLINE_AFTER: Final = 3
#: longest wait between polls of an offline device, seconds
BACKOFF_MAX_S: Final = 30.0


class DeviceSupervisor:
    """Polls one device and owns its availability."""

    def __init__(
        self,
        device: Device,
        poll_period_s: float,
        metrics: Metrics,
        on_status: Callable[[DeviceStatus], None],
        on_reading: Callable[[str, Reading], None],
    ) -> None:
        self.device = device
        self.device_id = device.device_id
        self.poll_period_s = poll_period_s
        self._metrics = metrics
        self._on_status = on_status
        self._on_reading = on_reading
        self.availability = Availability.STARTING
        self.since: datetime = utc_now()
        self.failures = 0
        self.last_error: str | None = None
        self.last_reading: Reading | None = None
        self.last_reading_at: float | None = None
        self.polls = 0
        self._hold = asyncio.Lock()
        # offline: asked after 1, 2, 4... poll periods, up to BACKOFF_MAX_S (and at most
        # 256 periods); no jitter, the schedule is what keeps a dead device cheap
        longest = min(poll_period_s * 2**8, max(BACKOFF_MAX_S, poll_period_s))
        self._offline_backoff = Backoff(poll_period_s, longest)
        #: what holds the device now (a procedure, a check, a calibration), None when free
        self.held_for: str | None = None
        self._log = log.bind(device=self.device_id)

    @contextlib.asynccontextmanager
    async def hold(self, purpose: str = "a procedure") -> AsyncIterator[Device]:
        """Pause polling while a procedure drives the device (``purpose`` says which)."""
        async with self._hold:
            self.held_for = purpose
            try:
                yield self.device
            finally:
                self.held_for = None

    async def run(self) -> None:
        """Poll forever, a poll every ``poll_period_s`` counted from start to start.

        The schedule is absolute, so the time a poll takes does not stretch the period
        (a 20 ms period with 2 ms polls is 50 polls/s, not 45). A poll that overruns its
        slot is followed at once by the next and the schedule restarts from there: polls
        are never bunched to catch up. Offline devices back off from the failed poll.
        """
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            await self._poll_once()  # waits while a procedure holds the device
            now = loop.time()
            if self.availability is Availability.OFFLINE:
                due = now + self._next_delay()
            else:
                due = max(due + self.poll_period_s, now)
            await asyncio.sleep(due - now)

    async def _poll_once(self) -> None:
        self.polls += 1
        try:
            async with self._hold:
                reading = await self.device.poll()
        except DriverError as exc:
            self._failed(exc)
        except Exception as exc:  # noqa: BLE001 (the supervisor: a driver bug must not end polling)
            self._metrics.task_restarts.labels(f"poll:{self.device_id}").inc()
            self._log.exception("driver_bug", error=repr(exc))
            self._failed(exc)
        else:
            self._succeeded(reading)

    def _next_delay(self) -> float:
        if self.availability is not Availability.OFFLINE:
            return self.poll_period_s
        return self._offline_backoff.next()

    def _succeeded(self, reading: Reading) -> None:
        self.failures = 0
        self._offline_backoff.reset()
        self.last_reading = reading
        self.last_reading_at = time.monotonic()
        self._set(Availability.ONLINE, None)
        try:
            self._on_reading(self.device_id, reading)
        except Exception as exc:  # noqa: BLE001 (publishing a reading is not the device failing)
            self._metrics.task_restarts.labels(f"reading:{self.device_id}").inc()
            self._log.exception("reading_not_published", error=repr(exc))

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        text = f"{type(exc).__name__}: {exc}"
        state = Availability.OFFLINE if self.failures >= OFFLINE_AFTER else Availability.DEGRADED
        if self.availability is Availability.OFFLINE:
            state = Availability.OFFLINE  # stays offline until a good reading
        self._set(state, text)

    def _set(self, state: Availability, error: str | None) -> None:
        self.last_error = error
        if state is self.availability:
            return
        previous, self.availability = self.availability, state
        self.since = utc_now()
        self._metrics.available.labels(self.device_id).set(1 if state is Availability.ONLINE else 0)
        log_method = self._log.info if state is Availability.ONLINE else self._log.warning
        log_method("device_" + state.value, previous=previous.value, error=error)
        self._on_status(self.status())

    def status(self) -> DeviceStatus:
        """The retained status message of this device now."""
        return DeviceStatus(
            device=self.device_id,
            device_class=self.device.device_class.value,
            availability=self.availability,
            since=self.since,
            last_error=self.last_error,
            consecutive_failures=self.failures,
            ts=utc_now(),
        )
