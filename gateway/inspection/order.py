"""The inspection order a station server (or a technician) sends to a lane."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class VehicleCategory(enum.StrEnum):
    """Vehicle categories that select limits (GB 7258 table 7 rows)."""

    PASSENGER_CAR = "passenger_car"  # 乘用车
    OTHER_LE_3500KG = "other_le_3500kg"  # other vehicles, gross mass ≤ 3500 kg
    OTHER = "other"  # 其他汽车
    ARTICULATED = "articulated"  # 铰接客车, 汽车列车
    TRAILER = "trailer"  # 挂车


class InspectionOrder(BaseModel):
    """One vehicle to inspect; validated at the edge, published as JSON Schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inspection_id: str = Field(pattern=r"^[0-9A-Za-z]{17}$", description="17 characters")
    attempt: int = Field(default=1, ge=1, le=99)
    plate: str = Field(min_length=1, max_length=16)
    vin: str = Field(pattern=r"^[A-HJ-NPR-Z0-9]{17}$", description="17-character VIN")
    category: VehicleCategory
    inspection_type: Literal["new_registration", "in_use"] = "in_use"
    fuel: Literal["petrol", "diesel", "electric", "hybrid", "other"] = "petrol"
    axle_count: int = Field(ge=1, le=6)
    curb_mass_kg: int = Field(gt=0, le=100_000)
    gross_mass_kg: int = Field(gt=0, le=100_000)
    headlamp_system: Literal[2, 4] = 2
    emission_method: Literal["two_speed_idle", "free_acceleration", "none"] = "none"
    emission_limit_set: Literal["a", "b"] = "a"
    items: list[str] = Field(min_length=1, max_length=20, description="item codes to run")

    @model_validator(mode="after")
    def _consistent(self) -> InspectionOrder:
        if self.gross_mass_kg < self.curb_mass_kg:
            raise ValueError("gross_mass_kg is below curb_mass_kg")
        if len(set(self.items)) != len(self.items):
            raise ValueError("items lists an item twice")
        return self
