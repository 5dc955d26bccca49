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
    emission_method: Literal[
        "two_speed_idle", "free_acceleration", "asm", "vmas", "lug_down", "none"
    ] = Field(
        default="none",
        description="the emission method the vehicle gets: TSI/FA fallback methods, ASM or "
        "VMAS (petrol, on the dyno), lug_down (diesel, on the dyno)",
    )
    emission_limit_set: Literal["a", "b"] = "a"
    reference_mass_kg: int | None = Field(
        default=None, gt=0, le=100_000,
        description="基准质量 for ASM loads and VMAS inertia; default curb mass + 100 kg",
    )  # fmt: skip
    rated_power_kw: float | None = Field(
        default=None, gt=0, le=2000, description="engine rated power (lug-down power limit)"
    )
    rated_speed_rpm: int | None = Field(
        default=None, gt=0, le=10_000, description="engine rated speed (lug-down speed check)"
    )
    obd_equipped: bool | None = Field(
        default=None,
        description="false: the vehicle has no OBD, an OBD item is not judged; "
        "null (unknown) or true: the check runs",
    )
    items: list[str] = Field(min_length=1, max_length=20, description="item codes to run")

    @model_validator(mode="after")
    def _consistent(self) -> InspectionOrder:
        if self.gross_mass_kg < self.curb_mass_kg:
            raise ValueError("gross_mass_kg is below curb_mass_kg")
        if len(set(self.items)) != len(self.items):
            raise ValueError("items lists an item twice")
        if self.emission_method == "lug_down" and (
            self.rated_power_kw is None or self.rated_speed_rpm is None
        ):
            raise ValueError("emission_method lug_down needs rated_power_kw and rated_speed_rpm")
        return self
