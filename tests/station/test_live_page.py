"""The live lane page. The board on bad and out-of-order input; the server's routes; and
end to end: mosquitto, a gateway subprocess with its simulated brake tester, axle weigher
and headlamp tester running a real inspection, ``lanegw station run`` serving the page,
and Debian's Chromium (headless, phone-sized) watching it live."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.async_api import Page, ViewportSize, async_playwright
from pydantic import BaseModel, ValidationError

from gateway.inspection.curve import parse_upload_string
from gateway.records import DeviceStatus, GatewayState, Progress, ResultRecord, Telemetry
from station.live import LiveBoard, LiveServer
from station.live.board import MAX_LANES, MAX_PAYLOAD
from tests.harness import STATION, Station, send_command
from tests.mosquitto import Mosquitto, free_port
from tests.station.live_lane import ITEMS, passenger_car_order, simulated_lane
from tests.station.live_payloads import (
    ROOT,
    brake_evidence,
    device_status,
    progress,
    record,
    started,
    state,
    topic,
)
from tests.station.receivers import Receiver, station_config


def new_board() -> LiveBoard:
    return LiveBoard(ROOT, STATION)


# --- the board on bad input ------------------------------------------------------------
BAD_MESSAGES = [
    (topic("L1", "results"), b"not json", "results"),
    (topic("L1", "results"), b"\xff\xfe{", "results"),
    (topic("L1", "results"), b"", "results"),
    (topic("L1", "results"), record("44010012026112801", "B1", lane="L2"), "results"),
    (topic("L1", "results"), b"{" + b" " * MAX_PAYLOAD + b"}", "results"),
    (topic("L1", "progress"), b"[1, 2]", "progress"),
    (topic("L1", "progress"), b'{"step": "brake_live"}', "progress"),
    (topic("L1", "state"), state("L2"), "state"),
    (topic("L1", "state"), b'{"online": "maybe"}', "state"),
    (topic("L1", "devices/brake/status"), device_status("weigher"), "device_status"),
    (topic("L1", "devices/brake/status"), b"null", "device_status"),
    (topic("L1", "telemetry/brake"), b'{"device": "brake"}', "telemetry"),
    (topic("L1", "cmd/inspect"), b"{}", "topic"),
    (topic("L1", "devices/brake/x/status"), device_status("brake"), "topic"),
    (topic("L<b>", "state"), state("L<b>"), "topic"),
    (f"{ROOT}/9999999/L1/state", state(), "topic"),
    ("elsewhere", state(), "topic"),
]


@pytest.mark.parametrize(("where", "payload", "kind"), BAD_MESSAGES)
def test_a_bad_message_is_counted_and_changes_nothing(
    where: str, payload: bytes, kind: str
) -> None:
    board = new_board()
    with board.watch() as watch:
        board.feed(where, payload)
        assert board.bad_messages == {kind: 1}
        assert board.lanes == [] and board.snapshot()["lanes"] == []
        assert not watch._lanes  # no client is told of a change
    board.feed(topic("L1", "state"), state())  # and the board goes on
    assert board.lanes == ["L1"] and board.lane_json("L1")["gateway"]["online"] is True


def test_a_malformed_curve_is_counted_and_its_record_kept() -> None:
    board = new_board()
    broken = brake_evidence([1, 2], [3, 4]).model_copy(update={"upload_string": "10@1#2$x"})
    board.feed(topic("L1", "results"), record("44010012026112801", "B1", evidence=[broken]))
    assert board.bad_messages == {"curve": 1}
    (item,) = board.lane_json("L1")["inspection"]["items"]
    assert (item["code"], item["verdict"], item["measurements"][0]["value"]) == ("B1", "pass", 72.5)
    assert board.curves_json("L1")["items"] == {}


def test_lanes_are_bounded() -> None:
    board = new_board()
    for n in range(MAX_LANES + 1):
        board.feed(topic(f"L{n}", "state"), state(f"L{n}"))
    assert len(board.lanes) == MAX_LANES and board.bad_messages == {"topic": 1}


MODELS: dict[str, tuple[str, type[BaseModel]]] = {
    "state": ("state", GatewayState),
    "progress": ("progress", Progress),
    "results": ("results", ResultRecord),
    "devices/brake/status": ("device_status", DeviceStatus),
    "telemetry/brake": ("telemetry", Telemetry),
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["online", "lane", "step", "ts", "x"]), children, max_size=4
        )
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    sub=st.sampled_from(sorted(MODELS)),
    payload=st.binary(max_size=64) | JSON_VALUES.map(lambda v: json.dumps(v).encode()),
)
def test_any_payload_is_taken_or_counted_never_raised(sub: str, payload: bytes) -> None:
    board = new_board()
    board.feed(topic("L1", sub), payload)
    kind, model = MODELS[sub]
    try:
        model.model_validate_json(payload)
        valid = True
    except ValidationError:
        valid = not payload and kind in ("state", "device_status")  # a cleared retained topic
    assert board.bad_messages == ({} if valid else {kind: 1})


# --- the board on good input out of order ----------------------------------------------
def items_of(board: LiveBoard) -> dict[str, tuple[str, str | None]]:
    inspection = board.lane_json("L1")["inspection"]
    return {item["code"]: (item["status"], item["verdict"]) for item in inspection["items"]}


def test_steps_values_records_and_curves_of_an_inspection() -> None:
    board, iid = new_board(), "44010012026112801"
    board.feed(topic("L1", "progress"), started(iid))
    lane = board.lane_json("L1")["inspection"]
    assert (lane["plate"], lane["vin"], lane["category"]) == (
        "粤A12345",
        "LSV********183294",
        "passenger_car",
    )
    assert items_of(board) == {"B1": ("pending", None), "H1": ("pending", None)}
    board.feed(topic("L1", "progress"), progress(iid, "item_started", "B1"))
    for force in (5, 120, 300):
        board.feed(
            topic("L1", "progress"),
            progress(iid, "brake_live", "B1", force_left_dan=force, force_right_dan=force - 2),
        )
    board.feed(topic("L1", "progress"), progress(iid, "brake_weighed", "B1", axle_load_kg=950.0))
    (b1, _) = board.lane_json("L1")["inspection"]["items"]
    assert b1["status"] == "running" and b1["values"] == {"axle_load_kg": 950.0}
    assert b1["live"] == [(5, 3), (120, 118), (300, 298)]
    evidence = brake_evidence([5, 120, 300], [3, 118, 298])
    board.feed(topic("L1", "results"), record(iid, "B1", evidence=[evidence]))
    (b1, _) = board.lane_json("L1")["inspection"]["items"]
    assert b1["status"] == "done" and b1["live"] == []  # the record's curve replaces it
    curves = board.curves_json("L1")
    assert curves["items"] == {
        "B1": [{"interval_ms": 10, "left": (5, 120, 300), "right": (3, 118, 298)}]
    }
    board.feed(topic("L1", "progress"), progress(iid, "inspection_finished", verdict="fail"))
    assert board.lane_json("L1")["inspection"]["verdict"] == "fail"


def test_a_record_that_overtakes_its_inspection_start_is_kept() -> None:
    board, iid = new_board(), "44010012026112801"
    board.feed(topic("L1", "results"), record(iid, "B1", at=1))
    board.feed(topic("L1", "progress"), started(iid, at=0))
    assert items_of(board) == {"B1": ("done", "pass"), "H1": ("pending", None)}
    assert board.lane_json("L1")["inspection"]["plate"] == "粤A12345"


def test_replayed_records_of_an_earlier_inspection_leave_the_current_one() -> None:
    board = new_board()
    board.feed(topic("L1", "progress"), started("44010012026112802", at=60))
    board.feed(topic("L1", "results"), record("44010012026112801", "B1", verdict="fail", at=5))
    inspection = board.lane_json("L1")["inspection"]
    assert inspection["inspection_id"] == "44010012026112802"
    assert items_of(board) == {"B1": ("pending", None), "H1": ("pending", None)}


def test_a_retest_starts_over() -> None:
    board, iid = new_board(), "44010012026112801"
    board.feed(topic("L1", "progress"), started(iid, items="B1"))
    board.feed(topic("L1", "results"), record(iid, "B1", verdict="fail"))
    board.feed(topic("L1", "progress"), started(iid, items="B1", at=30, attempt=2))
    assert items_of(board) == {"B1": ("pending", None)}
    assert board.lane_json("L1")["inspection"]["attempt"] == 2
    board.feed(topic("L1", "results"), record(iid, "B1", verdict="fail", at=2))  # attempt 1 again
    assert items_of(board) == {"B1": ("pending", None)}


def test_a_cleared_retained_status_removes_the_device() -> None:
    board = new_board()
    board.feed(topic("L1", "devices/brake/status"), device_status("brake", "offline"))
    (device,) = board.lane_json("L1")["devices"]
    assert (device["id"], device["availability"]) == ("brake", "offline")
    board.feed(topic("L1", "devices/brake/status"), b"")
    assert board.lane_json("L1")["devices"] == [] and board.bad_messages == {}


async def test_a_watch_coalesces_changes_per_lane_and_ends_on_close() -> None:
    board = new_board()
    with board.watch() as watch:
        board.feed(topic("L1", "state"), state())
        board.feed(topic("L1", "devices/brake/status"), device_status("brake"))
        board.feed(topic("L2", "results"), record("44010012026112801", "B1", lane="L2",
                   evidence=[brake_evidence([1, 2], [1, 2])]))  # fmt: skip
        assert await watch.changes() == ({"L1", "L2"}, {"L2"})
        watch.close()
        assert await watch.changes() is None


# --- the server ------------------------------------------------------------------------
async def test_the_server_serves_its_files_only_and_a_snapshot() -> None:
    board = new_board()
    board.feed(topic("L1", "state"), state())
    server = LiveServer(board, "127.0.0.1", 0)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(server.run())
        await server.started.wait()
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/") as page:
                assert page.status == 200 and "/static/app.js" in await page.text()
                assert "default-src 'self'" in page.headers["Content-Security-Policy"]
            for path in ("/static/board.py", "/static/..%2Fboard.py", "/static/index.html"):
                async with http.get(base + path) as response:
                    assert response.status == 404, path
            async with http.get(f"{base}/api/snapshot") as response:
                snapshot = await response.json()
            assert [lane["lane"] for lane in snapshot["lanes"]] == ["L1"]
            async with http.get(f"{base}/events") as stream:
                assert stream.headers["Content-Type"].startswith("text/event-stream")
                assert await stream.content.readuntil(b"\n\n") == b"retry: 2000\n\n"
                first = (await stream.content.readuntil(b"\n\n")).decode()
                assert first.startswith("event: snapshot\ndata: ")
                board.feed(topic("L1", "state"), state(online=False))
                change = (await stream.content.readuntil(b"\n\n")).decode()
                assert change.startswith("event: lane\n")
                assert json.loads(change.split("data: ", 1)[1])["gateway"]["online"] is False
                task.cancel()  # the server stops: the open stream ends
                await asyncio.wait([task])
                assert task.cancelled() and await stream.content.read() == b""


# --- end to end ------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
PHONE: ViewportSize = {"width": 390, "height": 844}
LANE = 'section.lane[data-lane="L1"]'

# Records, in the page, every step shown and every item state change (test code only).
RECORDER = """() => {
  window.__seen = { steps: [], items: [], live: [] };
  const last = { step: null, items: {} };
  const look = () => {
    const lane = document.querySelector('section.lane[data-lane="L1"]');
    if (!lane) return;
    const step = lane.querySelector('.step');
    const key = step ? `${step.dataset.item || ''}:${step.dataset.step}` : null;
    if (key && key !== last.step) { last.step = key; window.__seen.steps.push(key); }
    for (const item of lane.querySelectorAll('li.item')) {
      const state = item.dataset.status;
      if (last.items[item.dataset.item] !== state) {
        last.items[item.dataset.item] = state;
        window.__seen.items.push(`${item.dataset.item}:${state}`);
      }
    }
    for (const figure of lane.querySelectorAll('figure.curve[data-source="live"]')) {
      const key = `${figure.dataset.item}:${figure.dataset.samples}`;
      if (!window.__seen.live.includes(key)) window.__seen.live.push(key);
    }
  };
  new MutationObserver(look).observe(document.getElementById('lanes'),
    { childList: true, subtree: true, attributes: true });
  look();
}"""


@contextlib.asynccontextmanager
async def live_page(workdir: Path, mqtt_port: int) -> AsyncIterator[int]:
    """``lanegw station run`` serving the page on a free port; yields the port."""
    port = free_port()
    database = f"sqlite:{workdir}/station.sqlite3"
    config = station_config(workdir / "station.yaml", mqtt_port, database,
                            web={"enabled": True, "port": port})  # fmt: skip
    receiver = Receiver(config, workdir / "station.log")
    await receiver.start()  # subscribed and listening
    try:
        yield port
    finally:
        assert await receiver.stop() == 0


@contextlib.asynccontextmanager
async def phone_browser() -> AsyncIterator[tuple[Page, list[str]]]:
    """A headless Chromium tab of a phone's size; the page's errors are collected."""
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport=PHONE, device_scale_factor=2)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            yield page, errors
        finally:
            await browser.close()


def records_of(station: Station, inspection_id: str) -> dict[str, dict[str, Any]]:
    return {
        r["item_code"]: r for r in station.unique_results() if r["inspection_id"] == inspection_id
    }


def published_steps(station: Station, inspection_id: str) -> list[str]:
    return [
        f"{p['item_code'] or ''}:{p['step']}"
        for p in station.messages.get("progress", [])
        if p["inspection_id"] == inspection_id
    ]


def is_subsequence(part: list[str], whole: list[str]) -> bool:
    rest = iter(whole)
    return all(step in rest for step in part)


async def shown_value(page: Page, item: str, name: str) -> tuple[float, str, str]:
    """(number, unit, verdict mark) of a value as the page shows it, e.g. '22 %✓'."""
    text = await page.inner_text(f'{LANE} li[data-item="{item}"] dd[data-name="{name}"]')
    number, unit = text.split(" ", 1)
    return float(number), unit[:-1], unit[-1]


async def check_final_page(page: Page, records: dict[str, dict[str, Any]]) -> None:
    """Verdicts, values and the brake curves on the page are those of the records."""
    summary = records["summary"]
    overall = page.locator(f"{LANE} .overall")
    assert await overall.get_attribute("data-verdict") == summary["verdict"] == "pass"
    assert "合格" in await overall.inner_text()
    for code in ITEMS:
        item = page.locator(f'{LANE} li[data-item="{code}"]')
        assert await item.get_attribute("data-verdict") == records[code]["verdict"], code
        assert await item.get_attribute("data-status") == "done", code
    shown = [
        ("B1", "axle_brake_ratio"),
        ("B1", "unbalance"),
        ("B0", "parking_brake_ratio"),
        ("H1", "high_beam_intensity"),
    ]
    for code, name in shown:
        (m,) = [m for m in records[code]["measurements"] if m["name"] == name]
        assert await shown_value(page, code, name) == (m["value"], m["unit"], "✓"), (code, name)
    for code in ("B1", "B2", "B0"):
        (evidence,) = [e for e in records[code]["evidence"] if e["kind"] == "brake_curve"]
        _, pairs = parse_upload_string(evidence["upload_string"])
        figure = page.locator(f'{LANE} figure.curve[data-item="{code}"][data-source="record"]')
        assert await figure.get_attribute("data-samples") == str(len(pairs)), code
        left = await figure.locator("polyline.l").get_attribute("points")
        assert left is not None and len(left.split()) == len(pairs)
        width, height = await figure.locator("polyline.r").evaluate(
            "e => { const box = e.getBoundingClientRect(); return [box.width, box.height]; }"
        )
        assert width > 250 and height > 40, (code, width, height)  # drawn across the card


@pytest.mark.mqtt
async def test_the_page_follows_an_inspection_live_on_a_phone(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with (
        simulated_lane(tmp_path, mosquitto.port) as (daemon, station),
        live_page(tmp_path, mosquitto.port) as web_port,
        phone_browser() as (page, errors),
    ):
        await page.goto(f"http://127.0.0.1:{web_port}/")
        await page.wait_for_selector(f'{LANE}[data-gateway="online"]')
        for device in ("brake", "weigher", "headlamp"):
            await page.wait_for_selector(
                f'{LANE} .chip[data-device="{device}"][data-availability="online"]'
            )
        await page.evaluate(RECORDER)

        body = passenger_car_order(1)
        answer = await send_command(mosquitto.port, "inspect", body)
        assert answer["ok"], answer
        iid = body["inspection_id"]
        await page.wait_for_selector(f"{LANE} .overall[data-verdict]", timeout=40_000)
        await station.wait_for(lambda: "summary" in records_of(station, iid))
        await station.wait_for(lambda: ":inspection_finished" in published_steps(station, iid))
        await page.wait_for_selector(f'{LANE} .step[data-step="inspection_finished"]')
        await page.wait_for_selector(f"{LANE} .summary")  # the last record reached the page
        records = records_of(station, iid)

        # the vehicle as ordered, its VIN masked
        vehicle = await page.inner_text(f"{LANE} .vehicle")
        assert "粤A12345" in vehicle and "LSV********183294" in vehicle and iid in vehicle
        # the steps arrived one by one, in the gateway's order; items ran, then passed
        seen = await page.evaluate("window.__seen")
        steps = published_steps(station, iid)
        assert is_subsequence(seen["steps"], steps), (seen["steps"], steps)
        assert seen["steps"][-1] == ":inspection_finished"
        assert {"B1:brake_braking", "B0:brake_braking", "H1:headlamp_judged"} <= set(seen["steps"])
        for code in ("B1", "B2", "B0", "H1"):  # the slow items; H4 reuses H1's tester run
            running = seen["items"].index(f"{code}:running")
            assert seen["items"].index(f"{code}:done") > running, seen["items"]
        # while braking, the forces of the progress messages drew a growing outline
        live = [key.split(":") for key in seen["live"]]
        assert any(code == "B1" and int(samples) >= 3 for code, samples in live), live
        await check_final_page(page, records)
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await check_owner_page(page, len(ITEMS))
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "live-page.png", full_page=True)

        # a vehicle that failed one item and could not finish another: explained, in
        # Chinese first, with what to do next; the owner finds it by plate or lane
        await publish_failed_lane(mosquitto.port, "L8")
        failed = page.locator('section.lane[data-lane="L8"]')
        await failed.locator('.overall[data-verdict="fail"]').wait_for()
        assert (
            "请检修制动系统后申请复检"
            in await failed.locator('li[data-item="B1"] .explain').inner_text()
        )
        aborted = await failed.locator('li[data-item="TSI"] .explain').inner_text()
        assert "不代表车辆不合格" in aborted and "engine speed left" not in aborted  # folded away
        assert "2 / 2 项" in await failed.locator(".progress").inner_text()
        await check_owner_page(page, None)
        await page.fill("#filter", "粤B54321")
        assert await visible_lanes(page) == ["L8"]
        await failed.screenshot(path=ARTIFACTS / "live-page-failed.png")
        await page.fill("#filter", "l1")
        assert await visible_lanes(page) == ["L1"]
        await page.fill("#filter", "粤Z00000")
        assert await visible_lanes(page) == [] and await page.locator("#no-match").is_visible()
        await page.goto(f"http://127.0.0.1:{web_port}/?plate=%E7%B2%A4B54321")
        await failed.locator(".overall").wait_for()
        assert await visible_lanes(page) == ["L8"]
        await page.fill("#filter", "")

        # a reconnecting page gets everything back from the snapshot
        await page.reload()
        await page.wait_for_selector(f"{LANE} .overall[data-verdict]")
        await check_final_page(page, records)

        # values are text, never markup
        await publish_progress(mosquitto.port, "L9", plate='<img src=x onerror="alert(1)">粤B1')
        plate = page.locator('section.lane[data-lane="L9"] .plate')
        await plate.wait_for()
        assert await plate.inner_text() == '<img src=x onerror="alert(1)">粤B1'
        assert await page.locator('section.lane[data-lane="L9"] img').count() == 0

        # a gateway that dies shows: the broker publishes its will (after 1.5 keepalives)
        await daemon.kill()
        await page.wait_for_selector(f'{LANE}[data-gateway="offline"]', timeout=20_000)
        assert "网关离线" in await page.inner_text(f"{LANE} .lane-head")
        assert errors == []


#: Latin words the page may show without Chinese before them: units, codes, VIN, L/R
LATIN_OK = r"^(daN|kg|cd|mm|ppm|km|h|r|min|s|m|VIN|L|R|[A-Z]+\d+|TSI|FA|LSV|CO|HC|NO|NOx|PEF)$"

ENGLISH_LEFTOVERS = """(allowed) => {
  const ok = new RegExp(allowed);
  const cjk = /[\u4e00-\u9fff]/;
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!el || !el.checkVisibility() || el.closest("details:not([open]) > :not(summary)")) continue;
    const words = (node.textContent.match(/[A-Za-z][A-Za-z]+/g) || []).filter((w) => !ok.test(w));
    if (!words.length) continue;
    // English comes second: the label it belongs to says it in Chinese first
    const block = el.closest(".bi") || el;
    const text = block.textContent;
    const first = text.indexOf(words[0]);
    if (!cjk.test(text.slice(0, first))) bad.push(text.trim().slice(0, 80));
  }
  return bad;
}"""


async def check_owner_page(page: Page, items: int | None) -> None:
    """The page as an owner reads it: no English without its Chinese first, the overall
    progress, one live region per lane (its status), the step's time beside its text."""
    leftovers = await page.evaluate(ENGLISH_LEFTOVERS, LATIN_OK)
    assert leftovers == [], leftovers
    if items is not None:
        assert f"{items} / {items} 项" in await page.inner_text(f"{LANE} .progress")
    live = await page.eval_on_selector_all(
        "[aria-live]", "nodes => nodes.map(n => n.dataset.part || n.tagName)"
    )
    assert live and set(live) == {"status"}, live
    overlap = await page.eval_on_selector_all(
        ".step",
        """steps => steps.map(step => {
          const a = step.querySelector('.what').getBoundingClientRect();
          const b = step.querySelector('.when').getBoundingClientRect();
          return a.right > b.left && b.right > a.left && a.bottom > b.top && b.bottom > a.top;
        })""",
    )
    assert overlap and not any(overlap), overlap


async def visible_lanes(page: Page) -> list[str]:
    return await page.eval_on_selector_all(
        "section.lane", "cards => cards.filter(c => !c.hidden).map(c => c.dataset.lane)"
    )


async def publish_failed_lane(port: int, lane: str) -> None:
    """Another lane's inspection: B1 failed, the two-speed idle aborted, summary fail."""
    iid = "44010012026118888"
    start = json.loads(progress(iid, "inspection_started", plate="粤B54321", items="B1,TSI"))
    tsi = {"reason": "ItemAborted: engine speed left the band"}
    messages = [
        ("progress", json.dumps(start).encode()),
        ("results", record(iid, "B1", "fail", lane=lane)),
        ("results", record(iid, "TSI", "aborted", at=2, lane=lane, **tsi)),
        ("results", record(iid, "summary", "fail", at=3, lane=lane)),
    ]
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(f"lanegw/{STATION}/{lane}/state", state(lane), qos=1)
        for sub, payload in messages:
            await client.publish(f"lanegw/{STATION}/{lane}/{sub}", payload, qos=1)


async def publish_progress(port: int, lane: str, **values: Any) -> None:
    body = {
        "inspection_id": "44010012026119999",
        "step": "inspection_started",
        "message": "started",
        "item_code": None,
        "values": {**values, "items": "B1"},
        "ts": "2026-11-28T12:00:00Z",
    }
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(f"lanegw/{STATION}/{lane}/progress", json.dumps(body), qos=1)
