"""Generic Modbus driver: everything instrument-specific lives in its register map.

The driver reads the map's points in the planned blocks (``RegisterMap.plan``: adjacent
registers in one request), decodes them with the map's types, orders and scaling, and
hands up a ``ModbusReading`` of unit-suffixed values. Named commands (``start_test``,
``lift_down``, ``zero``...) write the map's coil or holding register; ``write`` sets a
read/write point in engineering units.

A value outside its point's plausibility range rejects the whole read with
``ImplausibleValue`` (counted in ``rejected`` and by the bus observer): a corrupted or
nonsensical register never reaches a record. Modbus exception responses are
``DeviceRefused`` with the exception code; silence is ``ResponseTimeout``.

Protocol names (see docs/protocols/modbus.md):

- ``modbus-brake``, ``modbus-headlamp``, ``modbus-speedometer``: the built-in maps
  ``brake_tester``, ``headlamp_tester``, ``speedometer_tester`` by default;
  ``options.map`` may name another map of the same device class.
- ``modbus-weigher``, ``modbus-gas``, ``modbus-opacimeter``: no built-in map yet,
  ``options.map`` is required.
- There is deliberately no class-less ``modbus`` protocol: the protocol name fixes the
  device class, so a config can be checked before any map is read.

``poll()`` reads every point and starts nothing on the instrument.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from drivers.devices.base import DeviceClass, DriverContext, DriverSpec, Reading
from drivers.errors import LocalProtocolError
from drivers.modbus.bus import ModbusBus
from drivers.modbus.decode import Value
from drivers.modbus.maps import load_map
from drivers.modbus.planner import ReadBlock, Table
from drivers.modbus.registers import ImplausibleValue, RegisterMap


class ModbusOptions(BaseModel):
    """Options of a Modbus device: which register map it speaks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: device class the map must declare (None: any)
    expected_class: ClassVar[DeviceClass | None] = None
    #: built-in map used when ``map`` is not given (None: ``map`` is required)
    default_map: ClassVar[str | None] = None

    map: str | None = Field(default=None, description="built-in map name or YAML file path")

    _map: RegisterMap | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load(self) -> ModbusOptions:
        # loading here validates the map when the gateway config is loaded
        name = self.map or self.default_map
        if name is None:
            raise ValueError("options.map is required (a built-in map name or a YAML path)")
        regmap = load_map(name)
        if self.expected_class is not None and regmap.device_class != self.expected_class:
            raise ValueError(
                f"map {regmap.name!r} is for a {regmap.device_class.value}, "
                f"not a {self.expected_class.value}"
            )
        self._map = regmap
        return self

    @property
    def register_map(self) -> RegisterMap:
        """The validated map."""
        assert self._map is not None
        return self._map


def map_device_class(options: dict[str, Any]) -> DeviceClass:
    """The device class of the map named in generic ``modbus`` options."""
    return ModbusOptions.model_validate(options).register_map.device_class


@dataclass(frozen=True, slots=True)
class ModbusReading(Reading):
    """Point values by name, in map order (names carry their units)."""

    values: tuple[tuple[str, float | int | bool], ...]

    def as_dict(self) -> dict[str, Any]:
        """The point values by name."""
        return dict(self.values)

    def __getitem__(self, name: str) -> float | int | bool:
        return dict(self.values)[name]


class ModbusDevice:
    """One instrument on a Modbus link, driven by its register map."""

    device_class: ClassVar[DeviceClass]

    def __init__(self, device_id: str, bus: ModbusBus, regmap: RegisterMap, unit: int = 1) -> None:
        if not 0 <= unit <= 255:
            raise LocalProtocolError(f"Modbus unit id must be 0..255, got {unit}")
        self.device_id = device_id
        self.regmap = regmap
        self.unit = unit
        self._bus = bus
        self._plan = regmap.plan()
        #: map order of the points, and the plan's decoders (made once, not per poll)
        self._order = {p.name: i for i, p in enumerate(regmap.bound_points)}
        self._decoders = {block: regmap.block_decoder(block) for block in self._plan}
        #: reads rejected because a value was implausible
        self.rejected = 0

    @property
    def plan(self) -> tuple[ReadBlock, ...]:
        """The requests one ``poll`` sends."""
        return self._plan

    async def poll(self) -> ModbusReading:
        """Read every point of the map (starts nothing on the instrument)."""
        return await self._read(self._plan)

    async def read(self, *names: str) -> ModbusReading:
        """Read the named points only (all of them when none are named)."""
        if not names:
            return await self.poll()
        try:
            blocks = self.regmap.plan(names)
        except KeyError as exc:
            raise LocalProtocolError(str(exc)) from None
        return await self._read(blocks)

    async def read_value(self, name: str) -> float | int | bool:
        """One point's value."""
        return (await self.read(name))[name]

    async def _read(self, blocks: tuple[ReadBlock, ...]) -> ModbusReading:
        order = self._order
        decoders = [self._decoders.get(b) or self.regmap.block_decoder(b) for b in blocks]

        def decode(data: list[list[int]]) -> ModbusReading:
            values: dict[str, Value] = {}
            for decode_block, words in zip(decoders, data, strict=True):
                values.update(decode_block(words))
            return ModbusReading(tuple(sorted(values.items(), key=lambda kv: order[kv[0]])))

        try:
            return await self._bus.read_blocks(self.device_id, self.unit, blocks, decode)
        except ImplausibleValue:
            self.rejected += 1
            raise

    async def command(self, name: str) -> None:
        """Run a named command of the map (``start_test``, ``lift_down``, ``zero``...)."""
        try:
            command = self.regmap.command(name)
        except KeyError as exc:
            raise LocalProtocolError(str(exc)) from None
        await self._bus.write(
            self.device_id, self.unit, command.table, command.address, [int(command.value)]
        )

    async def write(self, name: str, value: float | int | bool) -> None:
        """Set a read/write point, in its engineering unit."""
        try:
            point = self.regmap.point(name)
        except KeyError as exc:
            raise LocalProtocolError(str(exc)) from None
        if not point.writable:
            raise LocalProtocolError(f"{name} is read-only")
        try:
            point.check(value)
            words = [int(bool(value))] if point.table is Table.COIL else point.codec.encode(value)
        except (ImplausibleValue, ValueError) as exc:
            raise LocalProtocolError(f"{name}={value!r} cannot be written: {exc}") from None
        await self._bus.write(self.device_id, self.unit, point.table, point.address, words)


@cache
def device_type(device_class: DeviceClass) -> type[ModbusDevice]:
    """The ``ModbusDevice`` subclass that reports ``device_class``."""
    name = "Modbus" + "".join(part.title() for part in device_class.value.split("_"))
    return type(name, (ModbusDevice,), {"device_class": device_class})


def modbus_device(
    device_id: str, bus: ModbusBus, regmap: RegisterMap, unit: int = 1
) -> ModbusDevice:
    """A driver for ``regmap``'s instrument at ``unit`` on ``bus``."""
    return device_type(regmap.device_class)(device_id, bus, regmap, unit)


def _factory(ctx: DriverContext) -> ModbusDevice:
    if not isinstance(ctx.bus, ModbusBus):
        raise TypeError(f"{ctx.device_id}: a Modbus device needs a Modbus bus")
    if not isinstance(ctx.options, ModbusOptions):
        raise TypeError(f"{ctx.device_id}: expected ModbusOptions, got {type(ctx.options)}")
    unit = 1 if ctx.address is None else ctx.address
    return modbus_device(ctx.device_id, ctx.bus, ctx.options.register_map, unit)


def _options(device_class: DeviceClass | None, default: str | None) -> type[ModbusOptions]:
    title = f"ModbusOptions[{device_class or 'any'}]"

    class Options(ModbusOptions):
        model_config = ConfigDict(extra="forbid", frozen=True, title=title)
        expected_class: ClassVar[DeviceClass | None] = device_class
        default_map: ClassVar[str | None] = default

    Options.__name__ = Options.__qualname__ = title
    return Options


def _spec(
    protocol: str, device_class: DeviceClass, default: str | None, summary: str
) -> DriverSpec:
    return DriverSpec(
        protocol=protocol,
        device_class=device_class,
        bus_kind="modbus",
        summary=summary,
        factory=_factory,
        options=_options(device_class, default),
    )


SPECS: tuple[DriverSpec, ...] = (
    _spec("modbus-brake", DeviceClass.BRAKE_TESTER, "brake_tester", "Modbus roller brake tester"),
    _spec(
        "modbus-headlamp", DeviceClass.HEADLAMP_TESTER, "headlamp_tester", "Modbus headlamp tester"
    ),
    _spec(
        "modbus-speedometer",
        DeviceClass.SPEEDOMETER_TESTER,
        "speedometer_tester",
        "Modbus speedometer tester",
    ),
    _spec("modbus-weigher", DeviceClass.AXLE_WEIGHER, None, "Modbus axle weigher (map required)"),
    _spec("modbus-gas", DeviceClass.GAS_ANALYSER, None, "Modbus gas analyser (map required)"),
    _spec("modbus-opacimeter", DeviceClass.OPACIMETER, None, "Modbus opacimeter (map required)"),
)
