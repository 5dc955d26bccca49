"""What the emission procedures may call on a dyno, a VMAS flowmeter and an OBD reader.

The loaded emission methods (ASM, VMAS, lug-down, the daily dyno checks and the OBD
check) are written against these contracts, never against one vendor's driver: the
XinCheng and NHC-03 dynos, the FLV-1000 flowmeter and the ELM327 reader each satisfy one
``Protocol`` here and return the frozen readings defined here (units in the field
names, as everywhere in ``drivers``). A function a model lacks raises ``NotSupported``
(a ``DriverError``); link failures, silence and refusals raise the usual ``DriverError``
subclasses (``drivers.errors``), so a procedure aborts an item with the error's text.

Dyno: tractive force and power are the PAU's, measured at the roller surface (what the
vehicle delivers against the load); ``power_kw = force_n · speed_kmh / 3600`` when the
controller does not report power itself. ``control_mode`` is the load control now in
force ("road_load": the driver keeps the PAU force at ``A + B·v + C·v² + (I − base)·a``
by constant-force updates, see ``RoadLoad``). ``lifted`` and ``motor_on`` come from the
controller's status where it has one (NHC-03), else from what the driver last commanded
(XinCheng: the protocol has no read-back; the state before the first command is the
driver's ``assume_lifted`` option).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, Protocol

from drivers.devices.base import DeviceClass, Reading

ControlMode = Literal["off", "speed", "force", "power", "road_load"]
CONTROL_MODES: Final[tuple[ControlMode, ...]] = ("off", "speed", "force", "power", "road_load")


# --- chassis dynamometer ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DynoReading(Reading):
    """One snapshot (or one streamed frame) of the dyno; scalar fields only (telemetry)."""

    speed_kmh: float
    force_n: float
    power_kw: float
    lifted: bool
    motor_on: bool
    control_mode: ControlMode
    #: set-point of the running control mode in its unit (km/h, N, kW); None when off
    target: float | None = None
    #: PWM duty of the PAU, % (XinCheng reports it; None where the model does not)
    duty_pct: float | None = None
    #: remote-control key latched by the controller (1-12), None = none or not reported
    remote_key: int | None = None
    #: live photocells 1, 2, 3 (XinCheng key byte D0-D2), None where not reported
    photocell_1: bool | None = None
    photocell_2: bool | None = None
    photocell_3: bool | None = None
    #: ``time.monotonic()`` when the frame was decoded (streams: spacing of frames)
    received_s: float | None = None


@dataclass(frozen=True, slots=True)
class Ambient(Reading):
    """Ambient conditions from the dyno controller's sensors (XinCheng ``RT``)."""

    temperature_c: float
    humidity_pct: float
    pressure_kpa: float


@dataclass(frozen=True, slots=True)
class RoadLoad:
    """Road-load setting: PAU force ``A + B·v + C·v²`` (v km/h) plus simulated inertia.

    ``inertia_kg`` is the equivalent mass to simulate (the vehicle's reference mass for
    VMAS); the dyno's own base inertia is subtracted, the rest is applied as
    ``(inertia_kg − base_inertia_kg) · dv/dt`` (only as braking: a PAU cannot drive).
    ``time_scale`` is the lane's time scale (the gateway's ``procedure_time_scale``, 1 on
    a real lane): on a simulated lane running faster than real time, dv/dt and the
    update period are taken in the lane's seconds, not the wall clock's.
    """

    a_n: float
    b_n_per_kmh: float = 0.0
    c_n_per_kmh2: float = 0.0
    inertia_kg: float | None = None
    time_scale: float = 1.0

    def force_n(self, speed_kmh: float) -> float:
        """The road-load force at ``speed_kmh`` (without the inertia term)."""
        v = speed_kmh
        return self.a_n + self.b_n_per_kmh * v + self.c_n_per_kmh2 * v * v


class Dynamometer(Protocol):
    """A chassis dynamometer with a power absorption unit (PAU), lift and motor."""

    device_id: str
    device_class: ClassVar[DeviceClass]

    @property
    def model(self) -> str:
        """Controller model, e.g. ``xincheng-v8`` or ``nhc03``."""

    @property
    def base_inertia_kg(self) -> float:
        """Equivalent mass of the rollers and flywheel (from the installation's options)."""

    async def poll(self) -> DynoReading:
        """Snapshot for the supervisor (same as ``read_state``)."""

    async def read_state(self) -> DynoReading:
        """Speed, force, power, lift, motor and control mode now."""

    async def set_constant_power(self, kw: float) -> None:
        """Hold the PAU's absorbed power at ``kw`` (ASM)."""

    async def set_constant_force(self, n: float) -> None:
        """Hold the PAU's force at ``n``."""

    async def set_constant_speed(self, kmh: float) -> None:
        """Brake the rollers so they do not exceed ``kmh`` (lug-down power scan)."""

    async def set_road_load(self, road_load: RoadLoad) -> None:
        """Simulate the road load and inertia (VMAS); kept up while readings are taken."""

    async def control_off(self) -> None:
        """End any load control (PAU force 0)."""

    async def lift(self, up: bool) -> None:
        """Raise (vehicle drives on/off) or lower (wheels on the rollers) the lift."""

    async def motor(self, on: bool) -> None:
        """Start or stop the roller drive motor (coast-down checks)."""

    async def read_ambient(self) -> Ambient:
        """Ambient temperature, humidity, pressure; ``NotSupported`` where absent."""

    def stream(self, rate_hz: float = 10.0) -> AsyncIterator[DynoReading]:
        """Readings at the device's rate while it pushes frames, else polled at ``rate_hz``.

        Use ``async with contextlib.aclosing(dyno.stream()) as frames: async for r in
        frames: ...`` and break out when done. Commands may be sent meanwhile: the bus
        interleaves them between the stream's short listening transactions.
        """


# --- VMAS flowmeter ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlowReading(Reading):
    """The flowmeter's four measured values (actual and standard flow)."""

    o2_diluted_pct_vol: float
    pressure_kpa: float
    temperature_c: float
    flow_actual_l_s: float
    flow_standard_l_s: float


@dataclass(frozen=True, slots=True)
class FlowStatus(Reading):
    """The flowmeter's status flags (FLV-1000 0x88), the three bytes kept as hex."""

    flow_out_of_range: bool
    pressure_abnormal: bool
    temperature_abnormal: bool
    o2_warming: bool
    status_hex: str = "00 00 00"

    @property
    def ready(self) -> bool:
        """No flag raised: the flowmeter can measure."""
        return not (
            self.flow_out_of_range
            or self.pressure_abnormal
            or self.temperature_abnormal
            or self.o2_warming
        )


class Flowmeter(Protocol):
    """A VMAS dilution flowmeter."""

    device_id: str
    device_class: ClassVar[DeviceClass]

    async def poll(self) -> FlowReading:
        """Snapshot for the supervisor (same as ``read_all``)."""

    async def read_all(self) -> FlowReading:
        """Diluted O2, pressure, temperature, actual and standard flow."""

    async def read_status(self) -> FlowStatus:
        """Status flags."""


# --- OBD reader -------------------------------------------------------------------------

Readiness = Literal["complete", "incomplete", "not_supported"]

#: readiness monitor names of SAE J1979 PID 01 01, spark ignition (bytes C/D)
SPARK_MONITORS: Final = (
    "catalyst",
    "heated_catalyst",
    "evaporative_system",
    "secondary_air_system",
    "ac_refrigerant",
    "oxygen_sensor",
    "oxygen_sensor_heater",
    "egr_system",
)
#: readiness monitor names of PID 01 01, compression ignition (bytes C/D)
COMPRESSION_MONITORS: Final = (
    "nmhc_catalyst",
    "nox_scr_monitor",
    "reserved_2",
    "boost_pressure",
    "reserved_4",
    "exhaust_gas_sensor",
    "pm_filter",
    "egr_vvt_system",
)
#: continuous monitors of PID 01 01 byte B, both engine types
CONTINUOUS_MONITORS: Final = ("misfire", "fuel_system", "components")


@dataclass(frozen=True, slots=True)
class MilStatus(Reading):
    """Malfunction indicator lamp and the number of stored emission DTCs (PID 01 01)."""

    mil_on: bool
    dtc_count: int
    compression_ignition: bool = False


@dataclass(frozen=True, slots=True)
class ObdLive(Reading):
    """Live data (Mode 01); None where the vehicle does not support the PID."""

    engine_speed_rpm: float | None
    vehicle_speed_kmh: float | None
    coolant_temp_c: float | None
    engine_load_pct: float | None = None
    throttle_pct: float | None = None
    intake_air_temp_c: float | None = None
    maf_g_s: float | None = None
    map_kpa: float | None = None


@dataclass(frozen=True, slots=True)
class ObdAdapterState(Reading):
    """``poll()`` snapshot of an OBD reader: adapter voltage and the vehicle protocol."""

    battery_v: float | None
    protocol: str | None


class ObdReader(Protocol):
    """An OBD-II scan tool (ELM327 or compatible) on the lane's diagnostic cable."""

    device_id: str
    device_class: ClassVar[DeviceClass]

    @property
    def protocol(self) -> str | None:
        """The vehicle protocol found by ``connect`` (e.g. ``ISO 15765-4 (CAN 11/500)``)."""

    async def poll(self) -> ObdAdapterState:
        """Adapter voltage and protocol (does not talk to the vehicle)."""

    async def connect(self) -> str:
        """Reset and set up the adapter, find the vehicle's protocol; returns its name."""

    async def read_vin(self) -> str | None:
        """VIN (Mode 09 PID 02), None when the vehicle does not report it."""

    async def read_mil(self) -> MilStatus:
        """MIL and stored DTC count (Mode 01 PID 01)."""

    async def read_dtcs(self) -> list[str]:
        """Stored emission-related DTCs (Mode 03), e.g. ``["P0301"]``."""

    async def read_readiness(self) -> dict[str, Readiness]:
        """Readiness of every monitor (Mode 01 PID 01), by the names above."""

    async def read_calibration_ids(self) -> list[str]:
        """Calibration identifications (Mode 09 PID 04)."""

    async def read_cvns(self) -> list[str]:
        """Calibration verification numbers (Mode 09 PID 06), 8 hex digits each."""

    async def read_live(self) -> ObdLive:
        """Engine speed, vehicle speed, coolant temperature and friends (Mode 01)."""
