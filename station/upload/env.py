"""The environmental platform's JSON calls (family A, regulator.md §2.2): pure request
and reply codecs and a small client.

A request is ``{"jkid": name, "jksqm": code, "data": [{"body": [row]}]}`` posted as
``application/json; charset=UTF-8``; the answer is ``{"result": [{"code", "message",
...}]}`` with code "1" or "2" for success and the call's ids (``inspregid``,
``testingid``) beside them. Values are sent as text, as the field table writes them.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from station.upload.tables import Tables
from station.upload.wire import Exchange, Outcome, ProtocolError, Reply, classify, post


def request_body(name: str, jksqm: str, values: list[tuple[str, str]]) -> bytes:
    """The JSON request of one call with one row."""
    row = dict(values)
    return json.dumps(
        {"jkid": name, "jksqm": jksqm, "data": [{"body": [row]}]}, ensure_ascii=False
    ).encode()


def read_reply(body: str) -> Reply:
    """The first result of an answer; ``ProtocolError`` when it is not one."""
    try:
        data: Any = json.loads(body)
        result = data["result"][0]
        fields = {str(k): "" if v is None else str(v) for k, v in result.items()}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise ProtocolError(f"not the platform's answer: {body[:200]!r}") from None
    if "code" not in fields:
        raise ProtocolError("the answer has no code")
    return Reply(fields.pop("code"), fields.pop("message", ""), None, fields)


class EnvClient:
    """Posts calls to the platform's URL."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, tables: Tables, jksqm: str, timeout_s: float
    ) -> None:
        self._session, self._url, self.tables = session, url, tables
        self._jksqm, self._timeout = jksqm, timeout_s

    async def call(self, name: str, values: list[tuple[str, str]]) -> Exchange:
        """Send one call; never raises for the network or the platform."""
        body = request_body(name, self._jksqm, values)
        headers = {"Content-Type": self.tables.service.content_type or "application/json"}
        response, error, in_doubt = await post(self._session, self._url, body, headers,
                                               self._timeout)  # fmt: skip
        text = body.decode()
        if error is not None or response is None:
            return Exchange(text, Outcome.RETRY, response, error=error, in_doubt=in_doubt)
        try:
            reply = read_reply(response)
        except ProtocolError as exc:
            return Exchange(text, Outcome.RETRY, response, error=str(exc), in_doubt=True)
        service = self.tables.service
        return Exchange(text, classify(reply, service.success_codes, service.retry_codes),
                        response, reply)  # fmt: skip
