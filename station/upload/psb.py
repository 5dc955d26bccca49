"""The 公安部 supervision interface's SOAP calls, written and read with lxml.

No WSDL of the service is at hand (regulator.md gives the operations, not the document),
so zeep cannot be used: the envelope is built here, SOAP 1.1 document/literal as lane
software posts it (``psb.yaml`` ``service``: namespace, operation and parameter names):

    <soapenv:Envelope><soapenv:Body><ns:writeObjectOut>
      <xtlb>18</xtlb><jkxlh>…</jkxlh><jkid>18C55</jkid><UTF8XmlDoc>…</UTF8XmlDoc>
    </ns:writeObjectOut></soapenv:Body></soapenv:Envelope>

The XML document (``UTF8XmlDoc``) is ``<root><vehispara>field…</vehispara></root>`` for
writes and ``<root><QueryCondition>…</QueryCondition></root>`` for queries, lower-case
tags, values with Chinese text URL-encoded as UTF-8. The answer (``writeObjectOutReturn``)
is URL-decoded and read as ``root/head/{code,message,keystr}`` and ``root/body/vehispara``.
``document``, ``envelope`` and ``read_reply`` are pure; ``PsbClient`` posts.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import aiohttp
from lxml import etree

from station.upload.tables import Tables
from station.upload.wire import Exchange, Outcome, ProtocolError, Reply, classify, post

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def _encoded(value: str, mode: str) -> str:
    if mode == "non_ascii_values" and not value.isascii():
        return quote(value, safe="")
    return value


def document(tables: Tables, kind: str, values: list[tuple[str, str]]) -> str:
    """The call's XML document (text, with the service's XML declaration)."""
    service = tables.service
    root = etree.Element("root")
    body = etree.SubElement(root, "vehispara" if kind == "write" else "QueryCondition")
    for name, value in values:
        etree.SubElement(body, name).text = _encoded(value, service.url_encode)
    text = (service.xml_declaration or "") + etree.tostring(root, encoding="unicode")
    return quote(text, safe="") if service.url_encode == "document" else text


def operation(tables: Tables, kind: str) -> str:
    """writeObjectOut or queryObjectOut (as the data file names them)."""
    service = tables.service
    name = service.write_operation if kind == "write" else service.query_operation
    if not name:
        raise ValueError(f"{tables.path}: no {kind} operation")
    return name


def envelope(tables: Tables, kind: str, jkid: str, jkxlh: str, doc: str) -> bytes:
    """The SOAP request for one call."""
    service = tables.service
    ns = service.namespace or ""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS, "ns": ns})
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    call = etree.SubElement(body, f"{{{ns}}}{operation(tables, kind)}")
    values = {"xtlb": service.xtlb or "", "jkxlh": jkxlh, "jkid": jkid}
    for name in service.parameters:  # the last one (UTF8XmlDoc) carries the document
        etree.SubElement(call, name).text = values.get(name, doc)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def _text(element: etree._Element | None) -> str:
    return "" if element is None or element.text is None else element.text.strip()


def read_reply(tables: Tables, kind: str, body: str) -> Reply:
    """The answer inside a SOAP response; ``ProtocolError`` for a fault or garbage."""
    try:
        env = etree.fromstring(body.encode("utf-8"))
    except etree.XMLSyntaxError as exc:
        raise ProtocolError(f"the answer is not XML: {exc}") from None
    fault = env.find(f".//{{{SOAP_NS}}}Fault")
    if fault is not None:
        raise ProtocolError(f"SOAP fault: {_text(fault.find('faultstring'))}")
    name = f"{operation(tables, kind)}Return"
    found = [e for e in env.iter() if isinstance(e.tag, str) and etree.QName(e).localname == name]
    if not found:
        raise ProtocolError(f"no {name} in the answer")
    inner = _DECLARATION.sub("", unquote(found[0].text or ""))
    try:
        root = etree.fromstring(inner)
    except etree.XMLSyntaxError as exc:
        raise ProtocolError(f"{name} is not the interface's XML: {exc}") from None
    code = root.find("head/code")
    if code is None:
        raise ProtocolError(f"{name} has no head/code")
    row = root.find("body/vehispara")
    fields = {e.tag: _text(e) for e in row} if row is not None else {}
    keystr = root.find("head/keystr")
    return Reply(_text(code), _text(root.find("head/message")), _text(keystr) or None, fields)


class PsbClient:
    """Posts calls to the platform's service URL."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, tables: Tables, jkxlh: str, timeout_s: float
    ) -> None:
        self._session, self._url, self.tables = session, url, tables
        self._jkxlh, self._timeout = jkxlh, timeout_s

    def request(self, jkid: str, kind: str, values: list[tuple[str, str]]) -> bytes:
        """The envelope that ``call`` would post (kept as evidence)."""
        return envelope(self.tables, kind, jkid, self._jkxlh, document(self.tables, kind, values))

    async def call(self, jkid: str, kind: str, values: list[tuple[str, str]]) -> Exchange:
        """Send one call; never raises for the network or the platform."""
        body = self.request(jkid, kind, values)
        text = body.decode()
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        response, error, in_doubt = await post(self._session, self._url, body, headers,
                                               self._timeout)  # fmt: skip
        if error is not None or response is None:
            return Exchange(text, Outcome.RETRY, response, error=error, in_doubt=in_doubt)
        try:
            reply = read_reply(self.tables, kind, response)
        except ProtocolError as exc:
            return Exchange(text, Outcome.RETRY, response, error=str(exc), in_doubt=True)
        service = self.tables.service
        outcome = classify(reply, service.success_codes, service.retry_codes)
        return Exchange(text, outcome, response, reply)
