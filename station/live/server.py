"""The live page's web server: the page's static files, a JSON snapshot, and the live
stream as server-sent events (docs/live-page.md)."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any, Final

import structlog
from aiohttp import web

from gateway.display import catalogue
from station.live.board import LiveBoard, Watch

log = structlog.get_logger("lanegw.station.live")

KEEPALIVE_S: Final = 15.0  # a comment line now and then: proxies keep the stream open
RETRY_MS: Final = 2000  # how soon a browser reconnects a broken stream
SHUTDOWN_S: Final = 2.0
STATIC: Final = {  # the only files served: name -> content type
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS: Final = {
    # no inline script or style, no third-party origin: values can only ever be text
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _event(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event; JSON has no raw newline, so one data line suffices."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {name}\ndata: {body}\n\n".encode()


class LiveServer:
    """Serves the page for ``board`` on ``host``:``port`` (0: a free port, see ``port``
    once ``started`` is set) until cancelled."""

    def __init__(self, board: LiveBoard, host: str, port: int) -> None:
        self.board = board
        self.host = host
        self.port = port
        self.started = asyncio.Event()
        self._streams: set[Watch] = set()

    async def run(self) -> None:
        """Listen, serve until cancelled, then end every open stream and close."""
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/events", self._events)
        app.router.add_get("/api/snapshot", self._snapshot)
        app.router.add_get("/catalogue.json", self._catalogue)
        app.on_shutdown.append(self._end_streams)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = int(runner.addresses[0][1])
            log.info("live_page_listening", host=self.host, port=self.port)
            self.started.set()
            await asyncio.Event().wait()  # until cancelled
        finally:
            await runner.cleanup()

    async def _end_streams(self, _app: web.Application) -> None:
        for watch in self._streams:
            watch.close()

    async def _index(self, _request: web.Request) -> web.Response:
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC or name == "index.html":
            raise web.HTTPNotFound()
        return self._file(name)

    def _file(self, name: str) -> web.Response:
        body = resources.files("station.live").joinpath("static", name).read_bytes()
        return web.Response(
            body=body, content_type=STATIC[name], charset="utf-8", headers=SECURITY_HEADERS
        )

    async def _snapshot(self, _request: web.Request) -> web.Response:
        return web.json_response(
            self.board.snapshot(),
            dumps=lambda data: json.dumps(data, ensure_ascii=False),
            headers=SECURITY_HEADERS,
        )

    async def _catalogue(self, _request: web.Request) -> web.Response:
        """Every display string of the page, zh-CN first, English second (one catalogue,
        gateway/display.yaml, shared with ``lanegw monitor``)."""
        return web.json_response(
            catalogue().model_dump(),
            dumps=lambda data: json.dumps(data, ensure_ascii=False),
            headers=SECURITY_HEADERS,
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """The live stream: a full snapshot first (also after every reconnect), then each
        changed lane as it is when sent, and its record curves when they changed."""
        response = web.StreamResponse(
            headers={
                **SECURITY_HEADERS,
                "Content-Type": "text/event-stream; charset=utf-8",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        await response.prepare(request)
        with self.board.watch() as watch:
            self._streams.add(watch)
            try:
                await response.write(f"retry: {RETRY_MS}\n\n".encode())
                await response.write(_event("snapshot", self.board.snapshot()))
                await self._stream(response, watch)
            except ConnectionError:  # the page went away
                pass
            finally:
                self._streams.discard(watch)
        return response

    async def _stream(self, response: web.StreamResponse, watch: Watch) -> None:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    changes = await watch.changes()
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if changes is None:
                return
            lanes, curves = changes
            for lane in sorted(lanes):
                await response.write(_event("lane", self.board.lane_json(lane)))
            for lane in sorted(curves):
                await response.write(_event("curves", self.board.curves_json(lane)))
