"""Item code -> procedure: the test items this lane can run."""

from __future__ import annotations

from gateway.inspection.items import ItemProcedure
from gateway.inspection.speedometer import SpeedometerItem

PROCEDURES: dict[str, ItemProcedure] = {
    "S1": SpeedometerItem(),
}
