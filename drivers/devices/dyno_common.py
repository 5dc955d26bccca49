"""What the XinCheng and NHC-03 dyno drivers share: options, state, road load, streams.

``DynoBase`` keeps the state the procedures see in every ``DynoReading`` (control mode
and set-point, and the lift and motor as last commanded where the controller cannot say)
and implements the parts of ``Dynamometer`` that do not depend on the wire:

- ``set_road_load``: neither controller documents a road-load mode, so the driver keeps
  the PAU at ``A + B·v + C·v² + (I − base)·a`` itself (``RoadLoadFollower``), by
  constant-force updates after each reading (at most every ``road_load_period_s``), as
  lane software does for VMAS;
- ``stream``: readings at the device's rate while it pushes frames (``_chunk``), else
  one ``read_state`` per ``1 / rate_hz`` (up to ``stream_retries`` failed reads in a row
  are ridden out: one corrupted reply does not end an ASM mode; more raise); each chunk
  is one bus transaction, so commands queued meanwhile go out between chunks.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field

from drivers.devices.base import DeviceClass
from drivers.devices.dyno_api import Ambient, ControlMode, DynoReading, RoadLoad
from drivers.errors import LocalProtocolError, ProtocolError, ResponseTimeout

#: base inertia of a light-duty ASM/VMAS dyno: 2000 lb (907.2 kg), the usual flywheel
DEFAULT_BASE_INERTIA_KG: Final = 907.2
KMH_PER_MS: Final = 3.6


class DynoOptions(BaseModel):
    """Installation settings every dyno driver takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_inertia_kg: float = Field(
        default=DEFAULT_BASE_INERTIA_KG, gt=0, description="rollers + flywheel, equivalent mass"
    )
    assume_lifted: bool = Field(default=True, description="lift state before the first command")
    max_speed_kmh: float = Field(default=150.0, gt=0, description="highest speed set-point")
    max_force_n: float = Field(default=12_000.0, gt=0, description="highest force set-point")
    max_power_kw: float = Field(default=150.0, gt=0, description="highest power set-point")
    road_load_period_s: float = Field(
        default=0.1, gt=0, description="fastest constant-force update while simulating road load"
    )
    road_load_deadband_n: float = Field(default=5.0, ge=0, description="smaller changes wait")
    stream_silence_s: float = Field(
        default=1.0, gt=0, description="a pushed stream silent this long: the dyno dropped out"
    )
    stream_chunk_frames: int = Field(default=5, ge=1, le=100, description="frames per chunk")
    stream_retries: int = Field(
        default=2, ge=0, description="polled stream: failed reads in a row it rides out"
    )


class RoadLoadFollower:
    """Sans-I/O: readings in, the constant-force target that simulates the road load out."""

    #: smoothing of the acceleration estimate (first-order, this time constant)
    ACCEL_TAU_S: Final = 0.3

    def __init__(self, road_load: RoadLoad, base_inertia_kg: float) -> None:
        self.road_load = road_load
        inertia = road_load.inertia_kg
        self.extra_mass_kg = max(0.0, (inertia if inertia is not None else 0.0) - base_inertia_kg)
        self._last: tuple[float, float] | None = None  # (t, speed km/h)
        self.accel_ms2 = 0.0

    def target(self, t: float, speed_kmh: float) -> float:
        """The PAU force wanted at ``t`` (clock seconds) for ``speed_kmh`` (never negative)."""
        if self._last is not None and t > self._last[0]:
            dt = (t - self._last[0]) / self.road_load.time_scale  # the lane's seconds
            raw = (speed_kmh - self._last[1]) / KMH_PER_MS / dt
            weight = dt / (self.ACCEL_TAU_S + dt)
            self.accel_ms2 += (raw - self.accel_ms2) * weight
        self._last = (t, speed_kmh)
        force = self.road_load.force_n(speed_kmh) + self.extra_mass_kg * self.accel_ms2
        return max(0.0, force)


class DynoBase(ABC):
    """State and wire-independent behaviour of a dyno driver (see the module docstring)."""

    device_class: ClassVar[DeviceClass] = DeviceClass.CHASSIS_DYNAMOMETER

    def __init__(self, device_id: str, options: DynoOptions) -> None:
        self.device_id = device_id
        self._options = options
        self.lifted = options.assume_lifted
        self.motor_on = False
        self.control_mode: ControlMode = "off"
        self.target: float | None = None
        self._follower: RoadLoadFollower | None = None
        self._last_update = float("-inf")
        self._last_force: float | None = None

    @property
    def base_inertia_kg(self) -> float:
        """Equivalent mass of rollers and flywheel."""
        return self._options.base_inertia_kg

    # --- wire-specific parts ----------------------------------------------------------

    @abstractmethod
    async def _read(self) -> DynoReading:
        """One reading from the controller (state fields as the driver knows them)."""

    @abstractmethod
    async def _chunk(self) -> list[DynoReading] | None:
        """Frames pushed by the controller now, or None when it does not push."""

    @abstractmethod
    async def _begin(self, mode: ControlMode, value: float) -> None:
        """Set the target and start constant speed/force/power (or end control: off)."""

    @abstractmethod
    async def read_ambient(self) -> Ambient:
        """Ambient sensors."""

    # --- the Dynamometer contract -----------------------------------------------------

    async def read_state(self) -> DynoReading:
        """Speed, force, power, lift, motor and control mode now."""
        reading = await self._read()
        await self._follow(reading)
        return self._stamp(reading)  # with the set-point the follower may just have sent

    async def poll(self) -> DynoReading:
        """Snapshot for the supervisor."""
        return await self.read_state()

    async def set_constant_power(self, kw: float) -> None:
        """Hold the absorbed power at ``kw``."""
        await self._control("power", kw, self._options.max_power_kw)

    async def set_constant_force(self, n: float) -> None:
        """Hold the PAU force at ``n``."""
        await self._control("force", n, self._options.max_force_n)

    async def set_constant_speed(self, kmh: float) -> None:
        """Hold the rollers at ``kmh`` (the vehicle drives, the PAU brakes)."""
        await self._control("speed", kmh, self._options.max_speed_kmh)

    async def control_off(self) -> None:
        """End load control."""
        await self._begin("off", 0.0)
        self._set_mode("off", None)

    async def set_road_load(self, road_load: RoadLoad) -> None:
        """Simulate the road load and inertia by constant-force updates (VMAS)."""
        if road_load.time_scale <= 0:
            raise LocalProtocolError(
                f"road-load time scale {road_load.time_scale} must be positive"
            )
        start = max(0.0, road_load.force_n(0.0))
        await self._control("force", start, self._options.max_force_n)
        self._follower = RoadLoadFollower(road_load, self._options.base_inertia_kg)
        self.control_mode, self._last_force = "road_load", start
        self._last_update = time.monotonic()

    async def stream(self, rate_hz: float = 10.0) -> AsyncIterator[DynoReading]:
        """Readings at the device's rate while it pushes frames, else polled at ``rate_hz``."""
        if rate_hz <= 0:
            raise LocalProtocolError(f"stream rate {rate_hz} Hz must be positive")
        period = 1.0 / rate_hz
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            started = loop.time()
            chunk = await self._chunk()
            if chunk is None:
                try:
                    reading = await self.read_state()
                except (ProtocolError, ResponseTimeout):
                    failures += 1
                    if failures > self._options.stream_retries:
                        raise
                    continue
                failures = 0
                yield reading
                await asyncio.sleep(max(0.0, started + period - loop.time()))
                continue
            for reading in chunk:
                yield reading
                await self._follow(reading)

    # --- helpers ----------------------------------------------------------------------

    async def _control(self, mode: ControlMode, value: float, limit: float) -> None:
        if not 0.0 <= value <= limit:
            raise LocalProtocolError(
                f"{self.device_id}: {mode} set-point {value} not in 0..{limit}"
            )
        await self._begin(mode, value)
        self._set_mode(mode, value)

    def _set_mode(self, mode: ControlMode, target: float | None) -> None:
        self.control_mode, self.target = mode, target
        self._follower = None

    def _stamp(self, reading: DynoReading) -> DynoReading:
        """``reading`` with the state this driver keeps (mode, target, lift, motor)."""
        return replace(
            reading,
            control_mode=self.control_mode,
            target=self.target,
            received_s=reading.received_s if reading.received_s is not None else time.monotonic(),
        )

    async def _follow(self, reading: DynoReading) -> None:
        """In road-load mode, update the constant force for ``reading`` when due."""
        follower = self._follower
        if follower is None:
            return
        now = reading.received_s if reading.received_s is not None else time.monotonic()
        force = min(follower.target(now, reading.speed_kmh), self._options.max_force_n)
        period = self._options.road_load_period_s * follower.road_load.time_scale
        due = now - self._last_update >= period
        moved = (
            self._last_force is None
            or abs(force - self._last_force) > self._options.road_load_deadband_n
        )
        if due and moved:
            await self._begin("force", force)
            self._last_force, self._last_update, self.target = force, now, force
