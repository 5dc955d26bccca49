"""The live page's speed trace of a dyno method: the board keeps each ASM/VMAS second's
speed, target and band; end to end (mosquitto, the gateway with its simulated XinCheng
dyno, analyser and flowmeter running VMAS, ``lanegw station run`` serving the page,
headless Chromium at phone size) the page draws the speed against the band as it comes,
with its Chinese labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.inspection.test_dyno_items import PETROL_VMAS, dyno_lane
from tests.mosquitto import Mosquitto
from tests.station.live_payloads import progress, started, topic
from tests.station.test_live_page import (
    ARTIFACTS,
    ENGLISH_LEFTOVERS,
    LANE,
    LATIN_OK,
    PHONE,
    live_page,
    new_board,
    phone_browser,
)


def test_the_board_keeps_the_speed_trace_of_asm_and_vmas() -> None:
    board, iid = new_board(), "44010012026112801"
    board.feed(topic("L1", "progress"), started(iid, items="VMAS"))
    for second, speed in enumerate((0.0, 3.1, 7.0, 30.0)):
        band = {"target_kmh": 2.0 * second, "band_low_kmh": 2.0 * second - 2,
                "band_high_kmh": 2.0 * second + 2}  # fmt: skip
        values = {"speed_kmh": speed, **band, "in_band": speed <= band["band_high_kmh"]}
        board.feed(topic("L1", "progress"), progress(iid, "vmas_live", "VMAS", **values))
    board.feed(topic("L1", "progress"), progress(iid, "vmas_waiting", "VMAS", speed_kmh=0.0))
    (vmas,) = board.lane_json("L1")["inspection"]["items"]
    assert vmas["trace"] == [
        (0.0, 0.0, -2.0, 2.0), (3.1, 2.0, 0.0, 4.0), (7.0, 4.0, 2.0, 6.0), (30.0, 6.0, 4.0, 8.0),
    ]  # fmt: skip
    assert vmas["values"]["target_kmh"] == 6.0


@pytest.mark.mqtt
@pytest.mark.timeout(240)
async def test_the_page_draws_the_vmas_speed_against_its_band(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        dyno_lane(tmp_path, mosquitto.port, "dyno-vmas-clean.yaml") as lane,
        live_page(tmp_path, mosquitto.port) as web_port,
        phone_browser() as (page, errors),
    ):
        await page.goto(f"http://127.0.0.1:{web_port}/")
        await page.wait_for_selector(f'{LANE}[data-gateway="online"]')
        iid = await lane.inspect(["VMAS"], timeout=120, **PETROL_VMAS)  # Chromium shares the cores
        assert lane.record(iid, "VMAS")["verdict"] == "pass"
        figure = page.locator(f'{LANE} li.item[data-item="VMAS"] figure.trace')
        await page.wait_for_selector(f'{LANE} li.item[data-item="VMAS"][data-status="done"]')
        samples = int(await figure.get_attribute("data-samples") or 0)
        live = [p for p in lane.progress(iid) if p["step"] == "vmas_live"]
        assert samples >= 0.8 * len(live) and samples > 100, (samples, len(live))
        caption = await figure.locator("figcaption").inner_text()
        for label in ("车速跟踪", "实际车速", "目标车速", "允许范围"):
            assert label in caption, caption
        assert await figure.get_attribute("data-in-band") in ("true", "false")
        assert await figure.locator("svg polygon.band").count() == 1
        assert await figure.locator("svg polyline.speed").count() == 1
        assert await figure.locator("svg polyline.target").count() == 1
        assert await figure.locator("svg").get_attribute("aria-label") == "VMAS 车速跟踪"
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert errors == [], errors
        dyno_codes = LATIN_OK.replace("|TSI|", "|TSI|VMAS|ASM|")
        leftovers = await page.evaluate(ENGLISH_LEFTOVERS, dyno_codes)
        assert leftovers == [], json.dumps(leftovers, ensure_ascii=False)  # Chinese first
        ARTIFACTS.mkdir(exist_ok=True)
        await figure.screenshot(path=ARTIFACTS / "live-page-trace.png")
