"""What every device driver offers the gateway, whatever its protocol.

A driver is built from a ``DriverContext`` (its bus handle, address and validated
options) by the factory in its ``DriverSpec``. The gateway's supervisor calls ``poll()``
every poll period; the returned ``Reading`` is a frozen dataclass whose field names carry
their units (``force_left_dan``, ``co_pct_vol``, ``speed_kmh``). Domain methods
(``read_forces()``, ``zero()``...) are the driver's own and are used by procedures and
the technician CLI.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from drivers.bus import BusOwner
from drivers.transport import LineSettings

Scalar = float | int | bool | str | None


class DeviceClass(enum.StrEnum):
    """The tester classes of an inspection lane."""

    BRAKE_TESTER = "brake_tester"
    AXLE_WEIGHER = "axle_weigher"
    HEADLAMP_TESTER = "headlamp_tester"
    GAS_ANALYSER = "gas_analyser"
    OPACIMETER = "opacimeter"
    SPEEDOMETER_TESTER = "speedometer_tester"
    CHASSIS_DYNAMOMETER = "chassis_dynamometer"
    FLOWMETER = "flowmeter"
    OBD_READER = "obd_reader"


@dataclass(frozen=True, slots=True)
class Reading:
    """Base of every poll snapshot; subclasses add unit-suffixed fields."""

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for telemetry and records)."""
        return dataclasses.asdict(self)


class Device(Protocol):
    """The part of a driver the gateway's supervisor relies on."""

    device_id: str
    device_class: ClassVar[DeviceClass]

    async def poll(self) -> Reading:
        """Take one snapshot of the device's live values and state."""


class NoOptions(BaseModel):
    """Options model for protocols that have none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class DriverContext:
    """Everything a driver factory gets: identity, bus handle, address, options."""

    device_id: str
    bus: BusOwner[Any]
    address: int | None
    options: BaseModel


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """How the gateway finds, configures and builds the driver of one protocol."""

    protocol: str
    device_class: DeviceClass
    bus_kind: Literal["stream", "modbus"]
    summary: str
    factory: Callable[[DriverContext], Device]
    options: type[BaseModel] = NoOptions
    default_line: LineSettings = field(default_factory=LineSettings)
