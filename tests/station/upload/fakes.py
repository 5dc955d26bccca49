"""A fake 公安部 supervision service and a fake environmental platform, as aiohttp servers
on 127.0.0.1 free ports. They read every request as the platforms would (SOAP with lxml,
JSON), check it against the field tables (names, order, widths, decimals, codes, times)
and the platforms' order rules (-8105 no item start, -8106 item already ended, -5905 an
item still open at 18C59), and answer with the platforms' return codes. Tests steer them:
refusals per call and item, slow answers, outages (the port closed).

They are written from regulator.md, not from the uploader's codec: the tables say which
fields a call has; how a value must look is checked here on its own."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from lxml import etree

from station.upload.tables import FieldSpec, Tables, packaged
from tests.mosquitto import free_port

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
PSB_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
ENV_TIME = re.compile(r"^\d{14}$")


def check_value(spec: FieldSpec, value: str, time_pattern: re.Pattern[str]) -> str | None:
    """A problem with one field's value, or None (empty values are checked by the caller)."""
    if value == "":
        return "mandatory field empty" if spec.required else None
    if spec.format == "number":
        if not NUMBER.match(value):
            return f"{value!r} is not a number"
        whole, _, decimals = value.lstrip("-").partition(".")
        if spec.decimals is not None and len(decimals) != spec.decimals:
            return f"{value!r} must have {spec.decimals} decimals"
        digits = len(whole.lstrip("0") or "0")
        if (
            spec.width is not None
            and spec.decimals is not None
            and (digits > spec.width - spec.decimals)
        ):
            return f"{value!r} is wider than number({spec.width},{spec.decimals})"
    elif spec.format == "verdict":
        if value not in ("0", "1", "2"):
            return f"verdict {value!r} is not 0/1/2"
    elif spec.format == "time":
        if not time_pattern.match(value):
            return f"time {value!r} is not in the interface's format"
    elif spec.width is not None and len(value) > spec.width:
        return f"{len(value)} characters exceed {spec.width}"
    return None


@dataclass
class Received:
    """One request as the fake read it."""

    call: str
    values: dict[str, str]
    code: str
    item: str | None = None


@dataclass
class Fake:
    """What both fakes share: the server, its switches and its log."""

    tables: Tables
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    refuse: dict[tuple[str, str | None], tuple[str, str]] = field(default_factory=dict)
    slow_s: float = 0.0
    #: (jylsh, n): after n accepted calls of that inspection, every request gets HTTP 503
    outage_after: tuple[str, int] | None = None
    unavailable: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/service"

    async def start(self) -> None:
        if self._runner is None:
            app = web.Application()
            app.router.add_post("/service", self._handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def down(self) -> None:
        """An outage: the port closed (connections refused)."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def close(self) -> None:
        await self.down()
        if self._runner is not None:
            await self._runner.cleanup()

    def accepted(self, call: str | None = None) -> list[Received]:
        return [r for r in self.received if r.code in ("1", "2") and call in (None, r.call)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        if self.outage_after is not None:
            jylsh, n = self.outage_after
            if sum(1 for r in self.accepted() if r.values.get("jylsh") == jylsh) >= n:
                self.unavailable += 1
                self.changed.set()
                return web.Response(status=503, text="Service Unavailable")
        response = self.answer(body)
        self.changed.set()
        return response

    def answer(self, body: bytes) -> web.StreamResponse:
        raise NotImplementedError

    def _check(self, call: str, item: str | None, values: list[tuple[str, str]],
               time_pattern: re.Pattern[str]) -> list[str]:  # fmt: skip
        try:
            specs = self.tables.fields_for(call, item)
        except KeyError:
            return [f"unknown call {call} {item or ''}"]
        problems = []
        names = [name for name, _ in values]
        if names != [s.field for s in specs]:
            problems.append(f"{call} {item}: fields {names} != table {[s.field for s in specs]}")
        for spec, (_, value) in zip(specs, values, strict=False):
            problem = check_value(spec, value, time_pattern)
            table = spec.code_table
            if (
                problem is None
                and table
                and value
                and value not in self.tables.codes[table].values()
            ):
                problem = f"{value!r} is no code of {table}"  # e.g. an opcode the platform lacks
            if problem:
                problems.append(f"{call} {item} {spec.field}: {problem}")
        return problems


class FakePsb(Fake):
    """The 公安部 supervision service (TmriOutAccess, 4 parameters)."""

    def __init__(self, jkxlh: str = "A" * 64) -> None:
        super().__init__(packaged("psb.yaml"))
        self.jkxlh = jkxlh
        self.open_items: dict[tuple[str, str], set[str]] = {}
        self.ended: dict[tuple[str, str], set[str]] = {}
        self.keys = 0

    def answer(self, body: bytes) -> web.StreamResponse:
        env = etree.fromstring(body)
        op = env.find(f"{{{SOAP}}}Body")[0]  # type: ignore[index]
        operation = etree.QName(op).localname
        params = {etree.QName(child).localname: child.text or "" for child in op}
        jkid = params.get("jkid", "")
        if params.get("xtlb") != "18" or params.get("jkxlh") != self.jkxlh:
            return self._reply(operation, "-1", "接口序列号或系统类别不正确")
        doc = params.get("UTF8XmlDoc", "")
        if not doc.startswith('<?xml version="1.0" encoding="GBK"?>'):
            self.problems.append(f"{jkid}: no GBK XML declaration")
        root = etree.fromstring(re.sub(r"^<\?xml[^>]*\?>", "", doc))
        container = root.find("vehispara" if operation == "writeObjectOut" else "QueryCondition")
        if container is None:
            self.problems.append(f"{jkid}: no vehispara / QueryCondition")
            return self._reply(operation, "-1001", "数据不完整")
        raw = [(child.tag, child.text or "") for child in container]
        for tag, text in raw:
            if not text.isascii():
                self.problems.append(f"{jkid} {tag}: Chinese text not URL-encoded: {text!r}")
        values = [(tag, unquote(text)) for tag, text in raw]
        data = dict(values)
        item = data.get("jyxm") if jkid in ("18C55", "18C58") else None
        if jkid == "18C81":
            item = self._item_of(values)
        problems = self._check(jkid, item if jkid == "18C81" else None, values, PSB_TIME)
        self.problems += problems
        code, message = self._rules(jkid, item, data)
        if problems and code == "1":
            code, message = "-1001", "数据不完整: " + "; ".join(problems)
        if code == "1" and (jkid, item) in self.refuse:
            code, message = self.refuse[(jkid, item)]
        self.received.append(Received(jkid, data, code, item))
        if code == "1":
            self._advance(jkid, item, data)
        extra = {"sj": "2026-12-03 12:00:00.000"} if jkid == "18C50" else {}
        return self._reply(operation, code, message, extra)

    def _item_of(self, values: list[tuple[str, str]]) -> str | None:
        """The 18C81 item, from its fields (the head has no jyxm: the fields say it)."""
        names = [name for name, _ in values]
        for item in self.tables.items("18C81"):
            if names == [s.field for s in self.tables.fields_for("18C81", item)]:
                return item
        return None

    def _rules(self, jkid: str, item: str | None, data: dict[str, str]) -> tuple[str, str]:
        key = (data.get("jylsh", ""), data.get("jycs", ""))
        open_items, ended = self.open_items.get(key, set()), self.ended.get(key, set())
        if jkid == "18C55" and item in open_items | ended:
            return "-5502", f"{item} 已开始"
        if jkid in ("18C81", "18C58") and item not in open_items:
            return ("-8106", f"{item} 已结束") if item in ended else ("-8105", f"{item} 无开始记录")
        if jkid in ("18C82", "18C59") and open_items:
            return "-5905", f"项目 {','.join(sorted(open_items))} 未结束"
        return "1", "成功"

    def _advance(self, jkid: str, item: str | None, data: dict[str, str]) -> None:
        key = (data.get("jylsh", ""), data.get("jycs", ""))
        if jkid == "18C55" and item:
            self.open_items.setdefault(key, set()).add(item)
        elif jkid == "18C58" and item:
            self.open_items.setdefault(key, set()).discard(item)
            self.ended.setdefault(key, set()).add(item)

    def _reply(self, operation: str, code: str, message: str,
               body: dict[str, str] | None = None) -> web.Response:  # fmt: skip
        self.keys += 1
        root = etree.Element("root")
        head = etree.SubElement(root, "head")
        etree.SubElement(head, "code").text = code
        etree.SubElement(head, "message").text = message
        etree.SubElement(head, "rownum").text = "1" if body else "0"
        if code == "1" and operation == "writeObjectOut":
            etree.SubElement(head, "keystr").text = f"KEY{self.keys:06d}"
        if body:
            row = etree.SubElement(etree.SubElement(root, "body"), "vehispara", id="0")
            for name, value in body.items():
                etree.SubElement(row, name).text = value
        inner = '<?xml version="1.0" encoding="GBK"?>' + etree.tostring(root, encoding="unicode")
        env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP})
        response = etree.SubElement(etree.SubElement(env, f"{{{SOAP}}}Body"),
                                    f"{{http://endpoint.axis.framework.tmri.com}}{operation}Response")  # fmt: skip
        etree.SubElement(response, f"{operation}Return").text = quote(inner, safe="")
        return web.Response(body=etree.tostring(env, xml_declaration=True, encoding="UTF-8"),
                            content_type="text/xml")  # fmt: skip

    def calls_of(self, jylsh: str) -> list[tuple[str, str | None]]:
        """(jkid, item) of the accepted calls of an inspection, in arrival order."""
        return [(r.call, r.item) for r in self.accepted() if r.values.get("jylsh") == jylsh]


class FakeEnv(Fake):
    """The environmental platform (JSON family A)."""

    def __init__(self, jksqm: str = "HB440100") -> None:
        super().__init__(packaged("env.yaml"))
        self.jksqm = jksqm
        self.registrations: dict[str, str] = {}
        self.names = {name: (jkid, item) for (jkid, item), name in self.tables.call_names.items()}
        self.refuse_checks: dict[str, tuple[str, str]] = {}  # opcode -> (code, message)

    def answer(self, body: bytes) -> web.StreamResponse:
        request = json.loads(body)
        name = request.get("jkid", "")
        if request.get("jksqm") != self.jksqm:
            return self._reply("-1", "接口授权码错误")
        rows = request["data"][0]["body"]
        jkid, item = self.names.get(name, (name, None))
        out: dict[str, str] = {}
        code, message = "1", "成功"
        slots = self.tables.call("uploadInspStmDeviceRecord").ext_slots or {}
        for row in rows:
            values = list(row.items())
            if jkid == "uploadInspStmDeviceRecord":  # the measured values in extn01.. slots
                ext = [(k, v) for k, v in values if k.startswith(str(slots.get("prefix")))]
                values = [(k, v) for k, v in values if (k, v) not in ext]
                expected = [
                    f"{slots['prefix']}{n:0{slots['width']}d}" for n in range(1, len(ext) + 1)
                ]
                if [k for k, _ in ext] != expected or not ext:
                    self.problems.append(f"{name}: measured values not in numbered slots: {ext}")
            if any(not isinstance(v, str) for _, v in values):
                self.problems.append(f"{name}: values must be text")
            problems = self._check(jkid, item, values, ENV_TIME)
            self.problems += problems
            if problems:
                code, message = "0", "; ".join(problems)
            elif jkid == "downInspRegInfo":
                out["inspregid"] = self.registrations.setdefault(
                    row["VIN"] + row["TsNo"], f"REG{len(self.registrations) + 1:08d}"
                )
                out["epdesc"] = "ALLOW"
            elif "inspregid" in row and row["inspregid"] not in self.registrations.values():
                code, message = "0", f"未登记的 inspregid {row['inspregid']}"
            elif jkid == "uploadInspResult":
                out["testingid"] = f"T{len(self.received):06d}"
            elif jkid == "uploadInspStmDeviceRecord" and row["opcode"] in self.refuse_checks:
                code, message = self.refuse_checks[row["opcode"]]
            elif jkid == "downInspSynctime":
                out["synctime"] = "20261203120000.000"
            if code == "1" and (jkid, item) in self.refuse:
                code, message = self.refuse[(jkid, item)]
            self.received.append(Received(jkid, dict(row), code, item))
        return self._reply(code, message, out)

    def _reply(self, code: str, message: str, fields: dict[str, Any] | None = None) -> web.Response:
        result = {
            "code": code,
            "message": message,
            "responseTime": "20261203120000",
            **(fields or {}),
        }
        return web.json_response({"result": [result]})

    def rows_of(self, call: str, key: str, value: str) -> list[Received]:
        return [r for r in self.accepted(call) if r.values.get(key) == value]
