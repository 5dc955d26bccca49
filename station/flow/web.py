"""The flow's web server (aiohttp): sessions in a cookie (Secure, HttpOnly,
SameSite=Strict), a CSRF token checked on every POST, permissions per page, security
headers, templates rendered with autoescaping (Jinja2). Pages: station/flow/pages*.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final
from urllib.parse import urlsplit

import jinja2
import structlog
from aiohttp import web

from station.flow.auth import PERMISSIONS, ROLES, Session, tokens_equal
from station.flow.review import verdict_text
from station.flow.service import Flow
from station.store import StoreUnavailable

log = structlog.get_logger("lanegw.station.flow")

COOKIE: Final = "lanegw_flow"
SESSION_KEY: Final = web.RequestKey("flow_session", Session)
FLOW_KEY: Final = web.AppKey("flow", Flow)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATIC: Final = {"flow.css": "text/css", "owner.js": "text/javascript"}
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none';"
    " base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on POST
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SAFE_METHODS: Final = ("GET", "HEAD", "OPTIONS")
#: pages without login or forms (owner's link, report verification, static files)
PUBLIC: Final = ("/p/", "/verify/", "/static/")
ANONYMOUS_S: Final = 3600.0  # a visitor's session before login

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("station.flow", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_templates.filters["verdict"] = verdict_text
_templates.globals["ROLES"] = ROLES


def session_of(request: web.Request) -> Session:
    """The request's session (every request has one, see ``session_middleware``)."""
    session: Session = request[SESSION_KEY]
    return session


def flow_of(request: web.Request) -> Flow:
    """The flow the app serves."""
    return request.app[FLOW_KEY]


def address(request: web.Request) -> str | None:
    """The client's address, for the audit."""
    return request.remote


def wants_json(request: web.Request) -> bool:
    """API requests get JSON answers (errors too)."""
    return request.path.startswith("/api/")


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    """A page of ``template`` with the session's user and CSRF token."""
    session = session_of(request)
    flow = flow_of(request)
    body = _templates.get_template(template).render(
        session=session, csrf=session.csrf, station_name=flow.config.station_name,
        may=session.may, **values,
    )  # fmt: skip
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def redirect(location: str) -> web.Response:
    """303 See Other (after a POST, the browser GETs the next page)."""
    return web.Response(status=303, headers={"Location": location})


def json_response(data: Any, status: int = 200) -> web.Response:
    """JSON with the Chinese kept readable."""
    return web.json_response(
        data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False, default=str)
    )


def problem(request: web.Request, status: int, message: str) -> web.Response:
    """An error, as JSON for the API and as a page otherwise."""
    if wants_json(request):
        return json_response({"error": message}, status)
    return render(request, "error.html", status=status, message=message)


def needs(permission: str) -> Callable[[Handler], Handler]:
    """A handler only for users with ``permission`` (login first; 403 otherwise)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission}")

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = session_of(request)
            if session.username is None:
                if wants_json(request):
                    return problem(request, 401, "请先登录")
                return redirect(f"/login?next={request.path}")
            if not session.may(permission):
                await flow_of(request).store.audit(
                    session, "forbidden", request.path, address(request), needs=permission
                )
                return problem(
                    request, 403, f"无权限：{ROLES.get(session.role or '', '')}不能执行此操作"
                )
            return await handler(request)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap


@web.middleware
async def database_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A database that failed (restarted, unreachable) answers 503 and is reconnected for
    the next request; nothing half-done was committed (every operation is a transaction)."""
    try:
        return await handler(request)
    except StoreUnavailable as exc:
        log.error("flow_store_unavailable", error=str(exc), path=request.path)
        with contextlib.suppress(StoreUnavailable):
            await flow_of(request).store.records.reconnect()
        return _refuse(request, 503, "数据库暂时不可用，请稍后重试")


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request gets its session (a new anonymous one when the cookie is missing,
    stale or forged); every POST must carry the session's CSRF token."""
    flow = flow_of(request)
    token = request.cookies.get(COOKIE)
    session = await flow.store.session(token) if token else None
    new_token = None
    if session is None:
        if request.method not in SAFE_METHODS:
            await flow.store.audit(None, "no_session", request.path, address(request))
            return _refuse(request, 403, "会话已失效，请重新打开页面登录")
        if request.path.startswith(PUBLIC):  # owners' phones polling: nothing stored
            session = Session(token_hash="", csrf="")
        else:  # a visitor's session: the login form's CSRF token
            lifetime = min(ANONYMOUS_S, flow.config.session_lifetime_s)
            new_token, session = await flow.store.new_session(None, lifetime)
    request[SESSION_KEY] = session
    if request.method not in SAFE_METHODS and not await _csrf_ok(request, session):
        await flow.store.audit(session, "csrf_refused", request.path, address(request))
        response: web.StreamResponse = _refuse(
            request, 403, "请求无效（CSRF 校验失败），请刷新页面重试"
        )
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # the router's 404 and 405
            for name, value in SECURITY_HEADERS.items():
                exc.headers.setdefault(name, value)
            raise
    if new_token is not None:
        set_session_cookie(response, new_token, flow)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def set_session_cookie(response: web.StreamResponse, token: str, flow: Flow) -> None:
    """The session cookie: Secure (configurable), HttpOnly, SameSite=Strict."""
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        secure=flow.config.cookie_secure,
        samesite="Strict",
        path="/",
        max_age=int(flow.config.session_lifetime_s),
    )


async def _csrf_ok(request: web.Request, session: Session) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and not _same_site(origin, request):
        return False
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()  # cached: the handler reads it again
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    return sent is not None and tokens_equal(sent, session.csrf)


def _same_site(origin: str, request: web.Request) -> bool:
    """An ``Origin`` of this server: its own host (behind a TLS proxy the scheme differs)
    or the configured public URL's."""
    public = urlsplit(flow_of(request).public_url)
    if origin == f"{public.scheme}://{public.netloc}":
        return True
    return urlsplit(origin).netloc == request.host


def _refuse(request: web.Request, status: int, message: str) -> web.Response:
    """Refused before any page: JSON for the API, plain text otherwise."""
    if wants_json(request):
        return json_response({"error": message}, status)
    return web.Response(text=message, status=status, content_type="text/plain", charset="utf-8")


async def static(request: web.Request) -> web.Response:
    """The few static files."""
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    body = resources.files("station.flow").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=STATIC[name], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})  # fmt: skip


class FlowServer:
    """Serves the flow on ``host``:``port`` (0: a free one, see ``port`` once started)."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.port = flow.config.port
        self.started = asyncio.Event()

    def app(self) -> web.Application:
        """The aiohttp application (every route)."""
        from station.flow import pages, pages_work

        max_size = self.flow.config.photo_max_bytes * 16
        middlewares = [database_middleware, session_middleware]
        app = web.Application(middlewares=middlewares, client_max_size=max_size)
        app[FLOW_KEY] = self.flow
        app.router.add_get("/static/{name}", static)
        pages.routes(app)
        pages_work.routes(app)
        return app

    async def run(self) -> None:
        """Listen and serve until cancelled."""
        runner = web.AppRunner(self.app(), handle_signals=False, shutdown_timeout=2.0,
                               access_log=None)  # fmt: skip
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.flow.config.host, self.port)
            await site.start()
            self.port = int(runner.addresses[0][1])
            if self.flow.config.public_url is None:  # port 0: the one bound
                self.flow.public_url = f"http://{self.flow.config.host}:{self.port}"
            log.info("flow_listening", host=self.flow.config.host, port=self.port)
            self.started.set()
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
