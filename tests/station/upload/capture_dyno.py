"""Captures the records and progress of dyno inspections and checks on a simulated lane
(the gateway daemon on the simulated XinCheng dyno, NHA-503, FLV-1000, FLB-100, ELM327),
as a station receives them, into ``data/dyno-capture.json`` for the golden files.

Run: ``python -m tests.station.upload.capture_dyno`` (about a minute)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from tests.harness import send_command
from tests.inspection.test_dyno_items import DIESEL_LUG, LUG_SCALE, PETROL_ASM, dyno_lane
from tests.mosquitto import Mosquitto

OUT = Path(__file__).parent / "data" / "dyno-capture.json"


async def capture(workdir: Path) -> dict[str, Any]:
    for name in ("mqtt", "asm", "checks", "lug"):
        (workdir / name).mkdir()
    mosquitto = Mosquitto(workdir / "mqtt")
    mosquitto.start()
    try:
        async with dyno_lane(workdir / "asm", mosquitto.port, "dyno-asm-clean.yaml") as lane:
            await lane.inspect(["OBD", "ASM"], **PETROL_ASM)
            lane.swap("dyno-vmas-clean.yaml")
            await lane.inspect(["VMAS"], **{**PETROL_ASM, "emission_method": "vmas"})
            results = list(lane.station.unique_results())
            progress = list(lane.station.messages.get("progress", []))
        async with dyno_lane(workdir / "checks", mosquitto.port, "dyno-empty-rollers.yaml") as lane:
            for kind, device in (("coast_down", "dyno"), ("parasitic", "dyno"),
                                 ("flowmeter", "flowmeter")):  # fmt: skip
                answer = await send_command(lane.port, "check", {"device": device, "kind": kind, "technician": "T042"},
                                            timeout=120)  # fmt: skip
                assert answer["ok"] and answer["result"]["passed"], answer
            await lane.station.wait_for(
                lambda: sum(r["kind"] == "check" for r in lane.station.results) >= 3
            )
            results += lane.station.unique_results()
        async with dyno_lane(workdir / "lug", mosquitto.port, "dyno-lug-down-pass.yaml",
                             LUG_SCALE) as lane:  # fmt: skip
            lane.number = 10
            await lane.inspect(["LUG"], **DIESEL_LUG)
            results += lane.station.unique_results()
            progress += lane.station.messages.get("progress", [])
    finally:
        mosquitto.stop()
    keep = ("inspection_started", "asm_live", "vmas_live", "lug_live")
    return {
        "_about": "records and progress of dyno inspections (OBD+ASM, VMAS, LUG) and the daily "
        "dyno and flowmeter checks on a simulated lane, as the station received them "
        "(tests/station/upload/capture_dyno.py)",
        "results": results,
        "progress": [p for p in progress if p["step"] in keep],
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = asyncio.run(capture(Path(tmp)))
    OUT.write_text(
        json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    print(OUT, len(data["results"]), "records", len(data["progress"]), "progress")


if __name__ == "__main__":
    main()
