"""The two platform clients against the fake platforms (real HTTP on loopback): accepted
calls with the platform's key string, refusals with their code, transient codes, slow
answers, outages, and answers that are not the interface's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from station.upload.env import EnvClient
from station.upload.psb import PsbClient
from station.upload.tables import packaged
from station.upload.wire import Outcome
from tests.mosquitto import free_port
from tests.station.upload.fakes import FakeEnv, FakePsb

HEAD = [("jylsh", "44010012026112001"), ("jyjgbh", "4401001000"), ("jcxdh", "01"),
        ("jycs", "1")]  # fmt: skip
START = [*HEAD, ("hpzl", "02"), ("hphm", "粤A12345"), ("clsbdh", "LSVAU2180N2183294"),
         ("gwjysbbh", "440100100001"), ("jyxm", "H1"), ("kssj", "2026-12-03 20:00:00")]  # fmt: skip
H1 = [*HEAD, ("zwygqd", "21400"), ("zwdpd", "1")]


@pytest.fixture
async def psb() -> AsyncIterator[FakePsb]:
    fake = FakePsb()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def client(session: aiohttp.ClientSession, fake: FakePsb, timeout: float = 5.0) -> PsbClient:
    return PsbClient(session, fake.url, packaged("psb.yaml"), fake.jkxlh, timeout)


async def test_an_item_start_and_result_are_accepted_with_a_key(
    psb: FakePsb, session: aiohttp.ClientSession
) -> None:
    c = client(session, psb)
    started = await c.call("18C55", "write", START)
    assert started.outcome is Outcome.ACCEPTED and started.reply is not None
    assert started.reply.keystr and started.reply.keystr.startswith("KEY")
    result = await c.call("18C81", "write", H1)
    assert result.outcome is Outcome.ACCEPTED, result.detail
    assert psb.problems == []
    assert [(r.call, r.item, r.values.get("hphm")) for r in psb.received] == [
        ("18C55", "H1", "粤A12345"),
        ("18C81", "H1", None),
    ]  # decoded by the platform


async def test_a_result_without_its_start_is_refused_with_the_platforms_code(
    psb: FakePsb, session: aiohttp.ClientSession
) -> None:
    exchange = await client(session, psb).call("18C81", "write", H1)
    assert exchange.outcome is Outcome.REFUSED
    assert exchange.reply is not None and exchange.reply.code == "-8105"
    assert (
        "无开始记录" in exchange.detail
        and exchange.response
        and "writeObjectOutReturn" in exchange.response
    )


async def test_a_document_that_breaks_the_table_is_refused_as_incomplete(
    psb: FakePsb, session: aiohttp.ClientSession
) -> None:
    c = client(session, psb)
    await c.call("18C55", "write", START)
    bad = [*HEAD, ("zwygqd", "21400.5"), ("zwdpd", "1")]  # cd is number(6), no decimals
    exchange = await c.call("18C81", "write", bad)
    assert exchange.outcome is Outcome.REFUSED and exchange.reply is not None
    assert exchange.reply.code == "-1001" and "zwygqd" in exchange.reply.message


async def test_a_transient_code_is_retried_and_a_time_sync_answers_the_clock(
    psb: FakePsb, session: aiohttp.ClientSession
) -> None:
    c = client(session, psb)
    psb.refuse[("18C55", "H1")] = ("$E", "系统繁忙")
    assert (await c.call("18C55", "write", START)).outcome is Outcome.RETRY
    synced = await c.call("18C50", "query", [("babh", "BA0001")])
    assert synced.outcome is Outcome.ACCEPTED and synced.reply is not None
    assert synced.reply.fields["sj"] == "2026-12-03 12:00:00.000"


async def test_a_slow_answer_within_the_timeout_is_taken_and_beyond_it_is_in_doubt(
    psb: FakePsb, session: aiohttp.ClientSession
) -> None:
    psb.slow_s = 0.3
    assert (await client(session, psb, timeout=5).call("18C55", "write", START)).outcome is (
        Outcome.ACCEPTED
    )
    late = await client(session, psb, timeout=0.1).call("18C58", "write", START)
    assert late.outcome is Outcome.RETRY and late.in_doubt and "no answer" in (late.error or "")


async def test_an_outage_is_retried_and_not_in_doubt(
    psb: FakePsb, session: aiohttp.ClientSession
) -> None:
    await psb.down()
    exchange = await client(session, psb).call("18C55", "write", START)
    assert exchange.outcome is Outcome.RETRY and not exchange.in_doubt
    assert psb.received == []
    await psb.start()
    assert (await client(session, psb).call("18C55", "write", START)).outcome is Outcome.ACCEPTED


async def test_garbage_and_soap_faults_are_retried_not_taken_for_an_answer(
    session: aiohttp.ClientSession,
) -> None:
    port = free_port()
    answers = iter([web.Response(text="<html>gateway error</html>", status=502),
                    web.Response(text="<soap:Envelope xmlns:soap='http://schemas.xmlsoap.org/"
                                 "soap/envelope/'><soap:Body><soap:Fault><faultstring>boom"
                                 "</faultstring></soap:Fault></soap:Body></soap:Envelope>",
                                 status=500)])  # fmt: skip

    async def handle(request: web.Request) -> web.Response:
        return next(answers)

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        c = PsbClient(session, f"http://127.0.0.1:{port}/", packaged("psb.yaml"), "x", 5)
        first = await c.call("18C55", "write", START)
        assert first.outcome is Outcome.RETRY and first.error == "HTTP 502"
        second = await c.call("18C55", "write", START)
        assert second.outcome is Outcome.RETRY and "SOAP fault: boom" in (second.error or "")
    finally:
        await runner.cleanup()


async def test_the_environmental_platform_registers_and_takes_per_second_rows(
    session: aiohttp.ClientSession,
) -> None:
    env = FakeEnv()
    await env.start()
    try:
        c = EnvClient(session, env.url, packaged("env.yaml"), env.jksqm, 2.0)
        reg = await c.call("downInspRegInfo", [("VIN", "LSVAU2180N2183294"), ("EngineNo", ""),
                                               ("TsNo", "4401001000")])  # fmt: skip
        assert reg.outcome is Outcome.ACCEPTED and reg.reply is not None
        inspregid = reg.reply.fields["inspregid"]
        row = [("id", "u1"), ("testingid", ""), ("inspregid", inspregid), ("tsno", "4401001000"),
               ("serialno", "1"), ("optime", "20261203200000"), ("samplingdepth", ""),
               ("temperature", ""), ("humidity", ""), ("pressure", ""), ("opcode", "1"),
               ("enginespeed", "2500"), ("Volco", "0.1"), ("volco2", "14.2"), ("Volhc", "30"),
               ("Volnox", ""), ("volo2", "0.5")]  # fmt: skip
        assert (await c.call("uploadInspProcessDIDLE", row)).outcome is Outcome.ACCEPTED
        unknown = [(k, "REG99" if k == "inspregid" else v) for k, v in row]
        refused = await c.call("uploadInspProcessDIDLE", unknown)
        assert refused.outcome is Outcome.REFUSED and "inspregid" in refused.detail
        wrong = EnvClient(session, env.url, packaged("env.yaml"), "WRONG", 2.0)
        assert (await wrong.call("downInspSynctime", [("deviceCode", "x")])).outcome is (
            Outcome.REFUSED
        )
        assert env.problems == []
    finally:
        await env.close()
