"""Item code -> procedure: the test items this lane can run."""

from __future__ import annotations

from gateway.inspection.brake import BRAKE_PROCEDURES
from gateway.inspection.dyno_items import DYNO_PROCEDURES
from gateway.inspection.emissions_diesel import FreeAccelerationItem
from gateway.inspection.emissions_petrol import TwoSpeedIdleItem
from gateway.inspection.headlamp import HeadlampItem
from gateway.inspection.items import ItemProcedure
from gateway.inspection.speedometer import SpeedometerItem

PROCEDURES: dict[str, ItemProcedure] = {
    "S1": SpeedometerItem(),
    **BRAKE_PROCEDURES,  # B1..B5 service brake per axle, B0 parking brake
    **{code: HeadlampItem(code) for code in ("H1", "H2", "H3", "H4")},
    # emission items: the environmental platforms name methods, not PSB jyxm codes
    "TSI": TwoSpeedIdleItem(),  # petrol two-speed idle, GB 18285-2018
    "FA": FreeAccelerationItem(),  # diesel free acceleration, GB 3847-2018
    **DYNO_PROCEDURES,  # ASM, VMAS, LUG (lug-down) on the dyno; OBD check
}
