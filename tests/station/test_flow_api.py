"""The flow's pages and API on both databases, in-process on a real broker: field-level
errors, serial numbers, sessions, CSRF, roles, the audit, owner links, and dispatch
with refusals, lane locks and reassignment (lanes answered by stand-in gateways that
reply on the real command topics; the real gateway is in test_flow_e2e.py)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import aiomqtt
import pytest

from station.checks import Arrival, Decision, parse_arrival
from station.flow.config import DEFAULT_FONT
from tests.harness import STATION
from tests.mosquitto import Mosquitto
from tests.station.flow_client import VIN, Browser, registration, running_flow
from tests.station.live_payloads import state
from tests.station.signed import SigningGateway

pytestmark = pytest.mark.mqtt


@contextlib.asynccontextmanager
async def flow_and_browser(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto, **flow: Any
) -> AsyncIterator[tuple[Any, Browser, aiohttp.ClientSession]]:
    async with (
        running_flow(tmp_path, database_url, mosquitto.port, **flow) as (running, base),
        aiohttp.ClientSession() as http,
    ):
        yield running, Browser(http, base), http


async def actions(flow: Any, action: str) -> list[dict[str, Any]]:
    return [e for e in await flow.store.audit_log(500) if e["action"] == action]


async def test_registration_errors_serials_and_items(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto
) -> None:
    async with flow_and_browser(tmp_path, database_url, mosquitto) as (flow, browser, _):
        assert await browser.login("reg") == 303
        bad = registration(vin="LSVAU2180N2183294", plate_type="99", plate="ABC", axles="x")
        status, body = await browser.api("/api/registrations", bad)
        assert status == 422
        assert body["errors"]["vin"] == "校验位（第9位）错误：应为X，现为0"
        assert body["errors"]["plate_type"] == "未知的号牌种类：99"
        assert "plate" in body["errors"] and "axles" in body["errors"]
        assert await flow.store.inspections() == []
        status, body = await browser.api(
            "/api/registrations", registration(vin="LSVAU218IN2183294")
        )
        assert status == 422 and "不含I、O、Q" in body["errors"]["vin"]

        day = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%y%m%d")
        status, first = await browser.api("/api/registrations", registration())
        assert status == 201, first
        assert first["serial"] == f"{STATION}{day}0001" and first["attempt"] == 1
        assert first["lane_items"] == ["B1", "B2", "B0", "H1", "H4"]
        assert 18 in first["manual_items"] and 12 not in first["manual_items"]  # no bus exits
        assert first["photos"] == ["0111", "0112", "0113", "0119", "0157"]
        truck = registration(plate="粤B67890", kind="dangerous_goods", fuel="diesel", axles=3,
                             headlamps=4, emission="1", plate_type="01")  # fmt: skip
        status, second = await browser.api("/api/registrations", truck)
        assert second["serial"] == f"{STATION}{day}0002"  # the booking below is 0003
        assert second["lane_items"] == ["B1", "B2", "B3", "B0", "H1", "H2", "H3", "H4", "FA"]
        assert {35, 37, 40} <= set(second["manual_items"]) and "0163" in second["photos"]
        (entry, _) = await actions(flow, "register")
        assert (entry["username"], entry["role"], entry["target"]) == (
            "reg", "registrar", second["serial"],
        )  # fmt: skip
        # a booking code fills the form; a retest needs a serial that exists
        status, _ = await browser.api("/api/bookings", {"code": "YY0001", "vehicle": {
            "plate": "粤C24680", "vin": VIN, "kind": "small_passenger", "evil": "x"}})  # fmt: skip
        assert status == 201
        status, page, _ = await browser.get("/register?booking=YY0001")
        assert 'value="粤C24680"' in page and "evil" not in page
        booked = registration(plate="粤C24680", booking_code="YY0001")
        status, _ = await browser.api("/api/registrations", booked)
        assert status == 201
        status, body = await browser.api("/api/registrations", booked)  # once only
        assert status == 422 and body["errors"]["booking_code"].startswith("该预约已登记")
        status, body = await browser.api("/api/registrations", {"inspection_type": "retest",
                                                                "previous_serial": "4" * 17})  # fmt: skip
        assert status == 422 and body["errors"]["previous_serial"].startswith("无此检验流水号")
        # the form says the same next to its fields
        await browser.get("/register")
        status, page, _ = await browser.post("/register", registration(vin="LSVAU2180N2183294"))
        assert status == 422 and 'data-field="vin">校验位（第9位）错误' in page


async def test_sessions_csrf_and_logins(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto
) -> None:
    async with flow_and_browser(tmp_path, database_url, mosquitto) as (flow, browser, http):
        base = browser.base
        async with http.post(f"{base}/api/registrations", json=registration()) as response:
            assert response.status == 403  # no session at all
        forged = {"Cookie": "lanegw_flow=forged", "X-CSRF-Token": "x"}
        async with http.post(f"{base}/api/registrations", json={}, headers=forged) as response:
            assert response.status == 403
        status, _, response = await browser.get("/register")
        assert status == 303 and response.headers["Location"] == "/login?next=/register"
        cookie = response.cookies["lanegw_flow"]
        assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
        # the login form needs its CSRF token too, and a wrong password is refused
        await browser.get("/login")
        status, _, _ = await browser.post("/login", {"username": "reg", "password": "x" * 9},
                                          csrf="wrong")  # fmt: skip
        assert status == 403
        status, page, _ = await browser.post("/login", {"username": "reg", "password": "x" * 9})
        assert status == 401 and "用户名或密码错误" in page
        status, page, _ = await browser.post("/login", {"username": "nobody", "password": "x" * 9})
        assert status == 401
        anonymous = browser.cookie
        assert await browser.login("reg") == 303
        assert browser.cookie != anonymous  # a new session at login: no fixation
        status, _ = await browser.api("/api/registrations", registration(), csrf="wrong")
        assert status == 403
        async with http.post(f"{base}/api/registrations", json=registration(), headers={
            "Cookie": f"lanegw_flow={browser.cookie}", "X-CSRF-Token": browser.csrf or "",
            "Origin": "http://evil.example"}) as response:  # fmt: skip
            assert response.status == 403
        assert await flow.store.inspections() == []
        proxied = {"Cookie": f"lanegw_flow={browser.cookie}", "X-CSRF-Token": browser.csrf or "",
                   "Origin": base.replace("http://", "https://")}  # behind a TLS proxy  # fmt: skip
        async with http.post(f"{base}/api/registrations", json=registration(),
                             headers=proxied) as response:  # fmt: skip
            assert response.status == 201
        old = browser.cookie
        status, _, _ = await browser.post("/logout")
        assert status == 303
        browser.cookie = old  # the old cookie is dead after logout
        status, _ = await browser.api("/api/registrations", registration())
        assert status == 403
        assert len(await actions(flow, "csrf_refused")) == 3
        assert len(await actions(flow, "login_failed")) == 2
        assert [e["target"] for e in await actions(flow, "login")] == ["reg"]
        assert await actions(flow, "no_session")


async def test_roles(tmp_path: Path, database_url: str, mosquitto: Mosquitto) -> None:
    async with flow_and_browser(tmp_path, database_url, mosquitto) as (flow, window, http):
        await window.login("reg")
        _, body = await window.api("/api/registrations", registration())
        serial = body["serial"]
        inspector = Browser(http, window.base)
        await inspector.login("insp")
        status, _, _ = await inspector.post(f"/review/{serial}/approve")
        assert status == 403  # an inspector cannot approve
        status, _, _ = await inspector.post(f"/review/{serial}/retest")
        assert status == 403
        status, _ = await inspector.api("/api/registrations", registration())
        assert status == 403
        status, _, _ = await inspector.get("/report/x.pdf")
        assert status == 403
        status, page, _ = await inspector.get(f"/pda/{serial}")
        assert status == 200 and 'name="photo_0111"' in page and 'capture="environment"' in page
        status, _, _ = await window.get(f"/review/{serial}")
        assert status == 403  # nor a registrar
        status, _, _ = await window.get("/admin/users")
        assert status == 403
        inspection = await flow.store.inspection(serial)
        assert inspection.status == "open" and inspection.verdict is None
        forbidden = await actions(flow, "forbidden")
        assert {(e["username"], e["target"]) for e in forbidden} >= {
            ("insp", f"/review/{serial}/approve"), ("reg", f"/review/{serial}"),
        }  # fmt: skip
        # the handheld refuses a fail without its description and missing photos
        status, page, _ = await inspector.post(f"/pda/{serial}", {"r18": "fail"})
        assert status == 422
        assert 'data-field="d18"' in page and 'data-field="photo_0111"' in page
        assert (await flow.store.attempts(serial))[0].manual_state == "waiting"
        # the chief inspector sends the handheld's part back; it is waiting again, marked
        chief = Browser(http, window.base)
        await chief.login("chief")
        await chief.get(f"/review/{serial}")
        status, _, _ = await chief.post(f"/review/{serial}/send-back", {"note": "照片不清"})
        assert status == 303
        assert (await flow.store.attempts(serial))[0].manual_state == "sent_back"
        status, page, _ = await inspector.get("/pda")
        assert f'data-serial="{serial}"' in page and "退回重检" in page
        (sent_back,) = await actions(flow, "sent_back")
        assert sent_back["username"] == "chief" and sent_back["detail"]["note"] == "照片不清"


async def test_owner_links(tmp_path: Path, database_url: str, mosquitto: Mosquitto) -> None:
    async with flow_and_browser(tmp_path, database_url, mosquitto) as (flow, window, http):
        await window.login("reg")
        _, mine = await window.api("/api/registrations", registration())
        _, other = await window.api("/api/registrations", registration(plate="粤B67890"))
        async with http.get(mine["owner_url"] + "/steps") as response:
            assert response.status == 200
            steps = await response.json()
            text = json.dumps(steps, ensure_ascii=False)
        assert steps["plate"] == "粤A***45" and "粤B" not in text and other["serial"] not in text
        assert [s["key"] for s in steps["steps"]] == ["registered", "lane", "manual", "review",
                                                      "report"]  # fmt: skip
        token = mine["owner_url"].rsplit("/", 1)[1]
        assert len(token) >= 32
        for forged in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x", mine["serial"]):
            async with http.get(f"{window.base}/p/{forged}") as response:
                page = await response.text()
                assert response.status == 404 and "链接无效或已过期" in page and "粤" not in page
            async with http.get(f"{window.base}/p/{forged}/steps") as response:
                assert response.status == 404 and "plate" not in await response.text()
        async with flow.store.db.transaction() as tx:  # owners' polls store no sessions
            (sessions,) = await tx.one("SELECT COUNT(*) FROM flow_sessions")
        for _ in range(3):
            async with http.get(mine["owner_url"] + "/steps") as response:
                assert response.status == 200 and "Set-Cookie" not in response.headers
        async with flow.store.db.transaction() as tx:
            assert await tx.one("SELECT COUNT(*) FROM flow_sessions") == (sessions,)
        await flow.store.new_owner_token(mine["serial"], token, -1)  # stale
        async with http.get(mine["owner_url"]) as response:
            assert response.status == 404 and "粤A" not in await response.text()


class StandInGateway:
    """Answers a lane's commands on the real topics, like a gateway that is busy or not."""

    def __init__(self, port: int, lane: str, refuse: str | None = None) -> None:
        self.port, self.lane, self.refuse = port, lane, refuse
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.ready = asyncio.Event()

    async def run(self) -> None:
        base = f"lanegw/{STATION}/{self.lane}"
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.publish(f"{base}/state", state(self.lane), qos=1, retain=True)
            await client.subscribe(f"{base}/cmd/+", qos=1)
            self.ready.set()
            async for message in client.messages:
                command = str(message.topic).rsplit("/", 1)[1]
                request = json.loads(message.payload)  # type: ignore[arg-type]
                self.commands.append((command, request["args"]))
                ok = self.refuse is None or command != "inspect"
                answer = {"command": command, "ok": ok, "error": None if ok else self.refuse,
                          "correlation_id": request["correlation_id"],
                          "result": {"accepted": True, "position": 1} if ok else {},
                          "ts": "2026-12-03T08:00:00Z"}  # fmt: skip
                await client.publish(request["response_topic"], json.dumps(answer), qos=1)


async def lane_records(flow: Any, serial: str, verdicts: dict[str, str]) -> None:
    """A lane's signed records of attempt 1, stored through the receiver's checks."""
    gateway = SigningGateway("gw-L3", "L3")
    await flow.store.records.pin_keys({"gw-L3": gateway.public_key})
    arrivals = []
    for code, verdict in verdicts.items():
        kind = "summary" if code == "summary" else "item"
        payload = gateway.record(serial, item_code=code, verdict=verdict, kind=kind)
        arrival = parse_arrival("L3", STATION, payload)
        assert isinstance(arrival, Arrival)
        arrivals.append(arrival)
    outcomes = await flow.store.records.ingest(arrivals)
    assert all(o.decision is Decision.STORE for o in outcomes)


async def inspector_submits(inspector: Browser, flow: Any, serial: str) -> None:
    """Every manual item passed, every photo taken (one small JPEG-looking file each)."""
    (attempt, *_) = await flow.store.attempts(serial)
    form = aiohttp.FormData()
    form.add_field("csrf", inspector.csrf or "")
    for n in attempt.manual_items:
        form.add_field(f"r{n}", "pass")
    for code in attempt.photos:
        form.add_field(f"photo_{code}", b"\xff\xd8\xff\xe0" + b"\x00" * 64,
                       filename=f"{code}.jpg", content_type="image/jpeg")  # fmt: skip
    async with inspector.http.post(f"{inspector.base}/pda/{serial}", data=form,
                                   headers={"Cookie": f"lanegw_flow={inspector.cookie}"},
                                   allow_redirects=False) as response:  # fmt: skip
        assert response.status == 303, await response.text()


async def test_dispatch_refusal_lock_and_reassignment(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto
) -> None:
    busy = StandInGateway(mosquitto.port, "L1", refuse="lane busy: 5 orders waiting")
    free = StandInGateway(mosquitto.port, "L2")
    spare = StandInGateway(mosquitto.port, "L3")
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(g.run()) for g in (busy, free, spare)]
        for gateway in (busy, free, spare):
            await gateway.ready.wait()
        async with flow_and_browser(tmp_path, database_url, mosquitto) as (flow, window, http):
            await window.login("reg")
            _, body = await window.api("/api/registrations", registration())
            serial = body["serial"]
            async with asyncio.timeout(10):
                while set(flow.board.lanes) != {"L1", "L2", "L3"}:
                    await asyncio.sleep(0.05)
            status, answer = await window.api(f"/api/dispatch/{serial}", {"lane": "L1"})
            assert status == 409 and "lane busy" in answer["error"]
            chief = Browser(http, window.base)
            await chief.login("chief")
            await chief.get("/dispatch")
            status, _, _ = await chief.post("/lanes/L3/lock", {"reason": "制动台检定过期"})
            assert status == 303 and await flow.store.lane_locks() == {"L3": "制动台检定过期"}
            status, answer = await window.api(f"/api/dispatch/{serial}", {"lane": "L3"})
            assert status == 409 and "制动台检定过期" in answer["error"]
            # auto: the busy lane refuses, the next free one takes it; the locked one is skipped
            status, answer = await window.api(f"/api/dispatch/{serial}", {"lane": "auto"})
            assert (status, answer) == (200, {"lane": "L2"})
            order = free.commands[-1]
            assert order[0] == "inspect" and order[1]["inspection_id"] == serial
            assert order[1]["items"] == ["B1", "B2", "B0", "H1", "H4"] and order[1]["attempt"] == 1
            assert not spare.commands
            async with http.get(
                f"{window.base}/api/lanes", headers={"Cookie": f"lanegw_flow={window.cookie}"}
            ) as response:
                lanes = {lane["lane"]: lane for lane in await response.json()}
            assert lanes["L2"]["queue"] == [serial] and lanes["L3"]["available"] is False
            # reassign: taken off L2 (abort) and sent to the unlocked L3
            await chief.post("/lanes/L3/lock", {"reason": ""})
            status, answer = await window.api(f"/api/dispatch/{serial}", {"lane": "L3"})
            assert (status, answer) == (200, {"lane": "L3"})
            assert free.commands[-1] == ("abort", {"inspection_id": serial})
            assert spare.commands[-1][0] == "inspect"
            (attempt,) = await flow.store.attempts(serial)
            assert (attempt.lane, attempt.dispatch_state) == ("L3", "sent")
            assert [e["action"] for e in await flow.store.audit_log(100, serial)][:3] == [
                "dispatch", "dispatch_withdrawn", "dispatch",
            ]  # fmt: skip
            # L3's records come in (B1 fails), the handheld passes all: the retest sends B1 alone
            await lane_records(flow, serial, {"B1": "fail", "B2": "pass", "B0": "pass",
                                              "H1": "pass", "H4": "pass", "summary": "fail"})  # fmt: skip
            inspector = Browser(http, window.base)
            await inspector.login("insp")
            await inspector.get(f"/pda/{serial}")
            await inspector_submits(inspector, flow, serial)
            await chief.get(f"/review/{serial}")
            status, _, _ = await chief.post(f"/review/{serial}/retest")
            assert status == 303
            status, answer = await window.api(f"/api/dispatch/{serial}", {"lane": "auto"})
            assert (status, answer) == (200, {"lane": "L2"})
            command, order = free.commands[-1]
            assert (command, order["attempt"], order["items"]) == ("inspect", 2, ["B1"])
        for task in tasks:
            task.cancel()


async def test_a_lost_database_answers_503_then_reconnects(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto
) -> None:
    async with flow_and_browser(tmp_path, database_url, mosquitto) as (flow, browser, _):
        assert await browser.login("reg") == 303
        await flow.store.records.db.close()  # the connection is gone (server restarted)
        status, body = await browser.api("/api/registrations", registration())
        assert status == 503 and body == {"error": "数据库暂时不可用，请稍后重试"}
        status, body = await browser.api("/api/registrations", registration())
        assert status == 201  # reconnected; the session is still there
        assert [i.serial for i in await flow.store.inspections()] == [body["serial"]]


async def test_an_approval_is_all_or_nothing(
    tmp_path: Path, database_url: str, mosquitto: Mosquitto
) -> None:
    missing = tmp_path / "no-font.ttc"
    async with flow_and_browser(tmp_path, database_url, mosquitto, report_font=str(missing)) as (
        flow, window, http,
    ):  # fmt: skip
        await window.login("reg")
        _, body = await window.api("/api/registrations", registration())
        serial = body["serial"]
        await flow.store.set_dispatch(serial, 1, "L3", "sent", None)
        await lane_records(flow, serial, {"B1": "pass", "B2": "pass", "B0": "pass",
                                          "H1": "pass", "H4": "pass", "summary": "pass"})  # fmt: skip
        inspector = Browser(http, window.base)
        await inspector.login("insp")
        await inspector.get(f"/pda/{serial}")
        await inspector_submits(inspector, flow, serial)
        chief = Browser(http, window.base)
        await chief.login("chief")
        await chief.get(f"/review/{serial}")
        status, page, _ = await chief.post(f"/review/{serial}/approve")
        assert status == 409 and "报告无法生成" in page and "fonts-wqy-microhei" in page
        inspection = await flow.store.inspection(serial)
        assert inspection.status == "open" and await flow.store.report(serial) is None
        assert await actions(flow, "approved") == []
        # the font installed (here: configured), the same approval goes through, once
        flow.config = flow.config.model_copy(update={"report_font": DEFAULT_FONT})
        status, _, _ = await chief.post(f"/review/{serial}/approve")
        assert status == 303
        assert (await flow.store.inspection(serial)).verdict == "pass"
        sha, pdf, _ = await flow.store.report(serial)
        assert pdf.startswith(b"%PDF") and hashlib.sha256(pdf).hexdigest() == sha
        status, page, _ = await chief.post(f"/review/{serial}/approve")
        assert status == 409
        (approved,) = await actions(flow, "approved")
        assert approved["detail"]["report_sha256"] == sha and approved["username"] == "chief"
