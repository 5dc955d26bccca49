"""The code tables and rules of the flow, as data (``station/flow/data/*.yaml``): plate
types, vehicle kinds, the manual items and photos per kind, the lane items per vehicle.
Loaded once and validated; ``derive`` turns a registration's vehicle into its items."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PlateTypes(_Data):
    """号牌种类 code -> name."""

    source: str
    codes: dict[str, str]


class Kind(_Data):
    """A vehicle kind of the window (外检车型)."""

    name: str
    category: str


class Kinds(_Data):
    """The vehicle kinds."""

    kinds: dict[str, Kind]


class _Applies(_Data):
    kinds: list[str] | None = None
    plate_types: list[str] | None = None

    def applies(self, kind: str, plate_type: str) -> bool:
        """Whether this entry applies to a vehicle of ``kind`` with ``plate_type``."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        return self.plate_types is None or plate_type in self.plate_types


class ManualItem(_Applies):
    """One GB 38900 manual item."""

    n: int = Field(ge=1, le=99, description="item number (序号)")
    group: Literal["NQ", "UC", "F1", "DC", "C1"]
    tag: str
    name: str


class Photo(_Applies):
    """One appearance photo type (zpzl)."""

    code: str = Field(pattern=r"^[0-9A-Z]{4}$")
    name: str


class ManualTable(_Data):
    """Manual items, their groups, the photos."""

    source: str
    groups: dict[str, str]
    items: list[ManualItem]
    photos: list[Photo]

    @model_validator(mode="after")
    def _unique(self) -> ManualTable:
        numbers = [i.n for i in self.items]
        if len(set(numbers)) != len(numbers):
            raise ValueError("manual_items.yaml numbers an item twice")
        return self


class LaneRule(_Data):
    """Items added to the order when every condition holds."""

    name: str
    items: list[str] = Field(default_factory=list)
    per_axle: str | None = None
    kinds: list[str] | None = None
    not_kinds: list[str] | None = None
    fuels: list[str] | None = None
    emission: bool | None = None
    headlamps: list[int] | None = None

    def codes(self, vehicle: Vehicle) -> list[str]:
        """The items this rule adds for ``vehicle`` (none when a condition fails)."""
        checks = (
            self.kinds is None or vehicle.kind in self.kinds,
            self.not_kinds is None or vehicle.kind not in self.not_kinds,
            self.fuels is None or vehicle.fuel in self.fuels,
            self.emission is None or vehicle.emission == self.emission,
            self.headlamps is None or vehicle.headlamps in self.headlamps,
        )
        if not all(checks):
            return []
        per_axle = [f"{self.per_axle}{n}" for n in range(1, vehicle.axles + 1)]
        return (per_axle if self.per_axle else []) + self.items


class LaneTable(_Data):
    """The lane item rules and the items' names."""

    source: str
    rules: list[LaneRule]
    names: dict[str, str]
    values: dict[str, str] = Field(default_factory=dict)


def _load(name: str) -> Any:
    text = resources.files("station.flow").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


@functools.cache
def plate_types() -> PlateTypes:
    """The plate-type code table."""
    return PlateTypes.model_validate(_load("plate_types.yaml"))


@functools.cache
def kinds() -> dict[str, Kind]:
    """The vehicle kinds."""
    return Kinds.model_validate(_load("vehicle_kinds.yaml")).kinds


@functools.cache
def manual_table() -> ManualTable:
    """The manual items and photos."""
    return ManualTable.model_validate(_load("manual_items.yaml"))


@functools.cache
def lane_table() -> LaneTable:
    """The lane item rules."""
    return LaneTable.model_validate(_load("lane_items.yaml"))


@dataclass(frozen=True, slots=True)
class Vehicle:
    """What the rules look at."""

    kind: str
    plate_type: str
    fuel: str
    axles: int
    headlamps: int
    emission: bool


@dataclass(frozen=True, slots=True)
class Derived:
    """The items and photos a vehicle needs."""

    lane_items: list[str]
    manual_items: list[int]
    photos: list[str]


def derive(vehicle: Vehicle) -> Derived:
    """Everything the vehicle is inspected for, by the rules of the data files."""
    lane: list[str] = []
    for rule in lane_table().rules:
        lane.extend(code for code in rule.codes(vehicle) if code not in lane)
    table = manual_table()
    manual = [i.n for i in table.items if i.applies(vehicle.kind, vehicle.plate_type)]
    photos = [p.code for p in table.photos if p.applies(vehicle.kind, vehicle.plate_type)]
    return Derived(lane, manual, photos)


def manual_item(no: int) -> ManualItem:
    """A manual item by number (KeyError for an unknown one)."""
    for item in manual_table().items:
        if item.n == no:
            return item
    raise KeyError(no)


def photo_name(code: str) -> str:
    """A photo type's name (the code itself when unknown)."""
    return next((p.name for p in manual_table().photos if p.code == code), code)


def item_name(code: str) -> str:
    """An instrument item's name (the code itself when unknown)."""
    return lane_table().names.get(code, code)


def value_name(name: str) -> str:
    """A judged value's name (its own name when the table has none)."""
    return lane_table().values.get(name, name)
