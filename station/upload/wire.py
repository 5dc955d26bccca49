"""What the two platform clients share: an exchange's outcome and the HTTP POST.

An exchange ends ``accepted`` (the platform's success code), ``refused`` (any other code:
alarmed, never retried by itself), or ``retry`` (no answer, an HTTP error, a reply that
cannot be read, or a code the data file lists as transient, e.g. ``$E``). A retry after a
timeout is ``in_doubt``: the request may have reached the platform.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

import aiohttp


class Outcome(enum.StrEnum):
    """How an exchange ended."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Reply:
    """A platform's answer, read: its code, message, key string and other fields."""

    code: str
    message: str
    keystr: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and what came back (kept as evidence)."""

    request: str
    outcome: Outcome
    response: str | None = None
    reply: Reply | None = None
    error: str | None = None
    in_doubt: bool = False

    @property
    def detail(self) -> str:
        """One line for logs and tables: the code and message, or the error."""
        if self.reply is not None:
            return f"{self.reply.code} {self.reply.message}".strip()
        return self.error or ""


class ProtocolError(Exception):
    """A reply that is not what the platform's interface answers."""


def classify(reply: Reply, success: tuple[str, ...], transient: tuple[str, ...]) -> Outcome:
    """Accepted, refused or retry, by the data file's code lists."""
    if reply.code in success:
        return Outcome.ACCEPTED
    if reply.code in transient:
        return Outcome.RETRY
    return Outcome.REFUSED


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> tuple[str | None, str | None, bool]:
    """POST; (response text, error, in doubt). Never raises for network trouble."""
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(url, data=body, headers=headers) as response:
                text = await response.text(errors="replace")
                if response.status != 200 and "Fault" not in text:
                    return text, f"HTTP {response.status}", False
                return text, None, False
    except TimeoutError:
        return None, f"no answer within {timeout_s:g} s", True
    except aiohttp.ClientConnectionError as exc:
        # refused or reset before anything was sent is not in doubt; a reset mid-answer is
        in_doubt = not isinstance(exc, aiohttp.ClientConnectorError)
        return None, f"{type(exc).__name__}: {exc}", in_doubt
    except aiohttp.ClientError as exc:
        return None, f"{type(exc).__name__}: {exc}", True
