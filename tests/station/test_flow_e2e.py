"""The one-window flow end to end: mosquitto, a gateway subprocess with its simulated
brake tester, axle weigher and headlamp tester, ``lanegw station run`` serving the flow
(accounts made with ``lanegw station user add``), and Debian's Chromium at phone size:
a car registered at the window, dispatched to L1, inspected by the simulators, its
manual items entered on a 360-px handheld page with photos, reviewed and approved by the
chief inspector (a failed tyre item: 不合格), retested alone and approved again; both
report PDFs read back; the owner's page live, then expired."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pypdf
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

from tests.harness import STATION
from tests.mosquitto import Mosquitto, free_port
from tests.station.flow_client import PASSWORD, USERS, VIN
from tests.station.live_lane import simulated_lane
from tests.station.receivers import Receiver, station_config

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[2] / "artifacts" / "flow"
WIDE: ViewportSize = {"width": 390, "height": 844}
HANDHELD: ViewportSize = {"width": 360, "height": 740}
PHOTOS = ("0111", "0112", "0113", "0119", "0157")


# Records, in the owner's page, each state its lane step was shown in (test code only).
OWNER_RECORDER = """() => {
  window.__lane = [];
  const look = () => {
    const step = document.querySelector('li.step[data-key="lane"]');
    const state = step && step.dataset.state;
    if (state && window.__lane[window.__lane.length - 1] !== state) window.__lane.push(state);
  };
  new MutationObserver(look).observe(document.getElementById('steps'),
    { childList: true, subtree: true, attributes: true });
  look();
}"""


def png(colour: tuple[int, int, int]) -> bytes:
    """A small real PNG (what a phone camera might send, only smaller)."""
    width = height = 16
    raw = b"".join(b"\x00" + bytes(colour) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))  # fmt: skip


def add_admin(config: Path) -> None:
    """The first account, as a technician makes it: ``lanegw station user add``."""
    name, role = USERS["admin"]
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "station", "user", "add", "admin", "--role", role,
         "--name", name, "--password-stdin", "--config", str(config)],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


async def add_users(browser: Browser, base: str, screens: Screens) -> None:
    """The other accounts, made by the admin on the accounts page."""
    admin = await login(await new_context(browser, WIDE), base, "admin", screens)
    for username, (name, role) in USERS.items():
        if username == "admin":
            continue
        await admin.goto(f"{base}/admin/users")
        await admin.fill('input[name="username"]', username)
        await admin.fill('input[name="name"]', name)
        await admin.select_option('select[name="role"]', role)
        await admin.fill('input[name="password"]', PASSWORD)
        await admin.click("form[action='/admin/users'] button.primary")
        await admin.wait_for_selector(f'tr[data-user="{username}"]')
    await screens.take(admin, "users")
    await admin.context.close()


@contextlib.asynccontextmanager
async def station(workdir: Path, mqtt_port: int) -> AsyncIterator[str]:
    """``lanegw station run`` with the flow on a free port; yields its base URL."""
    port = free_port()
    config = station_config(
        workdir / "station.yaml", mqtt_port, f"sqlite:{workdir}/station.sqlite3",
        flow={"enabled": True, "port": port, "key_file": str(workdir / "flow.key"),
              "station_name": "测试机动车检测站", "station_address": "广州市测试路1号",
              "station_phone": "020-12345678", "owner_link_grace_s": 0, "lanes": ["L1", "L2"]},
    )  # fmt: skip
    add_admin(config)
    receiver = Receiver(config, workdir / "station.log")
    await receiver.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        assert await receiver.stop() == 0


class Screens:
    """Screenshots of each page, for docs/station-flow.md (copied from artifacts/)."""

    def __init__(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    async def take(self, page: Page, name: str) -> None:
        size = page.viewport_size
        await page.set_viewport_size(WIDE)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= WIDE["width"], (name, width)  # nothing wider than a phone
        await page.screenshot(path=ARTIFACTS / f"station-flow-{name}.png", full_page=True)
        if size is not None:
            await page.set_viewport_size(size)


async def login(
    context: BrowserContext, base: str, username: str, screens: Screens | None = None
) -> Page:
    page = await context.new_page()
    await page.goto(f"{base}/login")
    if screens is not None:
        await screens.take(page, "login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', PASSWORD)
    await page.click("button.primary")
    await page.wait_for_selector(f'.who[data-role="{USERS[username][1]}"]')
    return page


async def new_context(browser: Browser, viewport: ViewportSize) -> BrowserContext:
    context = await browser.new_context(viewport=viewport)
    return context


def pdf_text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


async def register(page: Page, base: str, plate: str, vin: str = VIN) -> str:
    """Fill the window's form, as a registrar does; the slip's serial."""
    await page.goto(f"{base}/register")
    await page.fill('input[name="plate"]', plate)
    await page.select_option('select[name="plate_type"]', "02")
    await page.fill('input[name="vin"]', vin)
    await page.select_option('select[name="kind"]', "small_passenger")
    await page.select_option('select[name="fuel"]', "petrol")
    await page.fill('input[name="curb_mass_kg"]', "1300")
    await page.fill('input[name="gross_mass_kg"]', "1700")
    await page.fill('input[name="axles"]', "2")
    await page.fill('input[name="owner"]', "陈车主")
    await page.fill('input[name="brand_model"]', "大众牌SVW7207")
    await page.click("#registration button.primary")
    await page.wait_for_selector(".slip .serial")
    return (await page.inner_text(".slip .serial")).strip()


async def manual_inspection(
    page: Page,
    base: str,
    serial: str,
    fail: dict[str, str],
    photos: bool,
    screens: Screens | None = None,
) -> None:
    """The handheld: open the vehicle, mark ``fail`` items, take the photos, submit."""
    await page.goto(f"{base}/pda")
    if screens is not None:
        await screens.take(page, "handheld-list")
    await page.click(f'a[data-serial="{serial}"]')
    await page.wait_for_selector("form.pda")
    for n, description in fail.items():
        await page.click(f'.item[data-item="{n}"] .choice.fail')
        await page.fill(f'textarea[name="d{n}"]', description)
    if photos:
        for index, code in enumerate(PHOTOS):
            colour = (40 * index, 120, 200)
            await page.set_input_files(
                f'input[name="photo_{code}"]',
                files=[{"name": f"{code}.png", "mimeType": "image/png", "buffer": png(colour)}],
            )
    assert await page.evaluate("document.documentElement.scrollWidth") <= HANDHELD["width"]


@pytest.mark.mqtt
async def test_a_car_from_the_window_to_its_report_and_retest(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    screens = Screens()
    async with contextlib.AsyncExitStack() as stack, async_playwright() as playwright:
        async with asyncio.TaskGroup() as starting:  # the lane and the station start together
            starting.create_task(
                stack.enter_async_context(simulated_lane(tmp_path, mosquitto.port))
            )
            station_up = starting.create_task(
                stack.enter_async_context(station(tmp_path, mosquitto.port))
            )
        base = station_up.result()
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        errors: list[str] = []
        try:
            await add_users(browser, base, screens)
            window = await login(await new_context(browser, WIDE), base, "reg")
            window.on("pageerror", lambda exc: errors.append(str(exc)))
            # a wrong check digit is said next to its field; nothing is registered
            await window.goto(f"{base}/register")
            await window.fill('input[name="vin"]', VIN[:8] + "0" + VIN[9:])
            await window.fill('input[name="plate"]', "粤A12345")
            await window.click("#registration button.primary")
            error = window.locator('.field-error[data-field="vin"]')
            assert "校验位" in await error.inner_text()
            assert await window.locator('.field-error[data-field="plate_type"]').count() == 1
            await screens.take(window, "register")

            started = time.perf_counter()
            serial = await register(window, base, "粤A12345")
            assert serial.startswith(STATION) and len(serial) == 17
            assert await window.inner_text(".slip .lane-items") == "B1、B2、B0、H1、H4"
            owner_url = await window.get_attribute(".owner-url a", "href")
            assert owner_url is not None and owner_url.startswith(f"{base}/p/")
            await screens.take(window, "slip")
            other = await register(window, base, "粤B67890")  # another vehicle, same window

            # dispatch to L1 (online once the station's board has the gateway's birth)
            for _ in range(100):
                await window.goto(f"{base}/dispatch")
                if await window.locator(
                    'article.lane[data-lane="L1"][data-available="yes"]'
                ).count():
                    break
                await window.wait_for_timeout(200)
            form = window.locator(f'form.waiting[data-serial="{serial}"]')
            await form.locator('select[name="lane"]').select_option("L1")
            await form.locator("button").click()
            await window.wait_for_selector(
                f'article.lane[data-lane="L1"] li[data-serial="{serial}"]'
            )
            await screens.take(window, "dispatch")

            # the owner follows on the phone, without logging in
            owner = await (await new_context(browser, WIDE)).new_page()
            owner.on("pageerror", lambda exc: errors.append(str(exc)))
            await owner.goto(owner_url)
            await owner.wait_for_selector('li.step[data-key="lane"]')
            await owner.evaluate(OWNER_RECORDER)

            # the handheld, 360 px, while the lane runs: tyres fail
            handheld = await login(await new_context(browser, HANDHELD), base, "insp")
            handheld.on("pageerror", lambda exc: errors.append(str(exc)))
            await manual_inspection(handheld, base, serial, {"18": "左前轮胎面磨损超限"}, True,
                                    screens)  # fmt: skip
            await screens.take(handheld, "handheld")
            await handheld.click("form.pda button.primary")
            await handheld.wait_for_url(f"{base}/pda?ok={serial}")

            await owner.wait_for_selector('li.step[data-key="lane"][data-state="done"]',
                                          timeout=60_000)  # fmt: skip
            await owner.wait_for_selector('li.step[data-key="manual"][data-state="done"]')
            lane_done = time.perf_counter()
            seen = await owner.evaluate("window.__lane")
            assert "running" in seen and seen.index("running") < seen.index("done"), seen
            steps = await owner.inner_text("#steps")
            assert "上线检测" in steps and "一轴制动" in steps
            assert (
                "粤B" not in await owner.inner_text("body") and other not in await owner.content()
            )
            await screens.take(owner, "owner")

            # the chief inspector reviews and approves: 不合格 (tyres)
            chief = await login(await new_context(browser, WIDE), base, "chief")
            chief.on("pageerror", lambda exc: errors.append(str(exc)))
            await chief.goto(f"{base}/review")
            assert await chief.get_attribute(f'a[data-serial="{serial}"]', "data-ready") == "yes"
            await screens.take(chief, "review-list")
            await chief.goto(f"{base}/review/{serial}")
            for code in ("B1", "B2", "B0", "H1", "H4"):
                row = chief.locator(f'.lane-results tr[data-item="{code}"][data-attempt="1"]')
                assert await row.get_attribute("data-verdict") == "pass", code
            tyres = chief.locator('.manual-results tr[data-item="18"][data-attempt="1"]')
            assert await tyres.get_attribute("data-verdict") == "fail"
            assert await chief.locator(".thumbs img").count() == len(PHOTOS)
            await screens.take(chief, "review")
            await chief.click('form[action$="/approve"] button')
            await chief.wait_for_selector('.status[data-status="approved"]')
            assert await chief.get_attribute(".overall", "data-verdict") == "fail"
            first = await (await chief.request.get(f"{base}/report/{serial}.pdf")).body()
            text = pdf_text(first)
            for expected in ("机动车安全技术检验报告", "粤A12345", serial, VIN, "一轴制动",
                             "右外灯", "轮胎", "左前轮胎面磨损超限", "联网查询", "不合格",
                             "张总检", "测试机动车检测站"):  # fmt: skip
                assert expected in text, expected
            # the owner's link ends with the decision (grace 0 here): nothing is shown
            await owner.wait_for_selector('li[data-state="gone"]')
            await owner.goto(owner_url)
            assert "链接无效或已过期" in await owner.inner_text("body")
            assert "粤A" not in await owner.inner_text("body")

            # the retest: the tyre item alone, then the report carries both attempts
            await chief.click('form[action$="/retest"] button')
            await chief.wait_for_selector('.status[data-status="open"]')
            await manual_inspection(handheld, base, serial, {}, False)
            items = handheld.locator(".item")
            assert await items.count() == 1
            assert await items.first.get_attribute("data-item") == "18"
            await handheld.click("form.pda button.primary")
            await handheld.wait_for_url(f"{base}/pda?ok={serial}")
            await chief.goto(f"{base}/review/{serial}")
            await chief.click('form[action$="/approve"] button')
            await chief.wait_for_selector('.status[data-status="approved"]')
            elapsed = time.perf_counter() - started
            assert await chief.get_attribute(".overall", "data-verdict") == "pass"
            report = await chief.request.get(f"{base}/report/{serial}.pdf")
            second = "".join(pdf_text(await report.body()).split())  # cells wrap lines
            assert "检验次数2" in second and "第1次：不合格；第2次：合格" in second
            assert "第1次：左前轮胎面磨损超限" in second
            conclusion = second.split("二、检验结论", 1)[1].split("授权签字人", 1)[0]
            assert "合格" in conclusion and "不合格" not in conclusion
            print(f"\nregistration to report (with a retest), simulated lane at time scale 0.2:"
                  f" {elapsed:.1f} s; lane done after {lane_done - started:.1f} s")  # fmt: skip

            # the report's QR code opens the verification page; a forged code shows nothing
            found = re.search(rf"/verify/{serial}/[A-Za-z0-9_-]+", second)
            assert found is not None
            await owner.goto(base + found.group(0))
            assert await owner.get_attribute(".verified", "data-verified") == "yes"
            assert await owner.inner_text(".verified .verdict") == "合格"
            await screens.take(owner, "verify")
            await owner.goto(base + found.group(0)[:-3] + "AAA")
            assert await owner.locator(".verified").count() == 0
            await owner.goto(f"{base}/p/forged-token-{serial}")
            assert "链接无效或已过期" in await owner.inner_text("body")
            await chief.goto(f"{base}/audit?target={serial}")
            logged = {await row.get_attribute("data-action")
                      for row in await chief.locator("li[data-action]").all()}  # fmt: skip
            assert {"register", "dispatch", "manual_submitted", "approved", "retest"} <= logged
            await screens.take(chief, "audit")
            assert errors == []
        finally:
            await browser.close()
