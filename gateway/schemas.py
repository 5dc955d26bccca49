"""JSON Schemas of every published payload, of the accepted order and of the configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gateway.config import LaneConfig
from gateway.inspection.order import InspectionOrder
from gateway.records import PUBLISHED_MODELS
from gateway.status import GatewayStatus
from station.config import StationConfig  # no extra's dependency: always importable

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    **PUBLISHED_MODELS,
    "inspection-order": InspectionOrder,
    "gateway-status": GatewayStatus,
    "lane-config": LaneConfig,
    "station-config": StationConfig,
}


def schema_of(name: str) -> dict[str, Any]:
    """The JSON Schema of one model, with an id naming it."""
    schema = SCHEMA_MODELS[name].model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"lanegw:{name}",
        **schema,
    }


def render(name: str) -> str:
    """Stable text form (what ``schemas/`` holds)."""
    return json.dumps(schema_of(name), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def export(directory: Path) -> list[Path]:
    """Write every schema to ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMA_MODELS:
        path = directory / f"{name}.schema.json"
        path.write_text(render(name), encoding="utf-8")
        written.append(path)
    return written
