"""The window's pages: login, home, registration (page and JSON API), the slip with the
owner's QR code, dispatch and lane locks, accounts and the audit log."""

from __future__ import annotations

import asyncio
from typing import Any

import segno
from aiohttp import web

from station.flow.auth import ROLES, hash_password, password_ok
from station.flow.registration import (
    FUELS,
    INSPECTION_TYPES,
    FieldErrors,
    is_retest,
    parse_registration,
    parse_retest,
)
from station.flow.rules import kinds, photo_name, plate_types
from station.flow.service import FlowError
from station.flow.web import (
    address,
    flow_of,
    json_response,
    needs,
    problem,
    redirect,
    render,
    session_of,
    set_session_cookie,
    wants_json,
)


def routes(app: web.Application) -> None:
    """Add this module's routes."""
    app.router.add_get("/", home)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/register", register_page)
    app.router.add_post("/register", register_form)
    app.router.add_post("/slip/{serial}/reissue", reissue_slip)
    app.router.add_get("/api/plate-types", api_plate_types)
    app.router.add_post("/api/registrations", api_register)
    app.router.add_post("/api/bookings", api_booking)
    app.router.add_get("/dispatch", dispatch_page)
    app.router.add_post("/dispatch/{serial}", dispatch_form)
    app.router.add_get("/api/lanes", api_lanes)
    app.router.add_post("/api/dispatch/{serial}", api_dispatch)
    app.router.add_post("/lanes/{lane}/lock", lock_lane)
    app.router.add_get("/admin/users", users_page)
    app.router.add_post("/admin/users", add_user)
    app.router.add_post("/admin/users/{username}/active", set_active)
    app.router.add_get("/audit", audit_page)


def _local(path: str | None) -> str:
    """A redirect target on this site only."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


async def home(request: web.Request) -> web.StreamResponse:
    """The menu of the user's role (login first)."""
    if session_of(request).username is None:
        return redirect("/login")
    return render(request, "home.html")


async def login_page(request: web.Request) -> web.StreamResponse:
    """The login form."""
    return render(request, "login.html", error=None, next=_local(request.query.get("next")))


async def login(request: web.Request) -> web.StreamResponse:
    """Check the password; a new session (the visitor's one ends): no fixation."""
    flow = flow_of(request)
    form = await request.post()
    username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    user = await flow.store.user(username) if username else None
    stored = user.password_hash if user is not None and user.active else None
    if not await asyncio.to_thread(password_ok, stored, password):  # CPU, not the event loop
        await flow.store.audit(session_of(request), "login_failed", username, address(request))
        return render(request, "login.html", status=401, error="用户名或密码错误",
                      next=_local(str(form.get("next", ""))))  # fmt: skip
    await flow.store.end_session(session_of(request).token_hash)
    token, session = await flow.store.new_session(username, flow.config.session_lifetime_s)
    assert user is not None
    await flow.store.audit(session, "login", username, address(request), role=user.role)
    response = redirect(_local(str(form.get("next", ""))))
    set_session_cookie(response, token, flow)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session."""
    flow, session = flow_of(request), session_of(request)
    await flow.store.audit(session, "logout", session.username, address(request))
    await flow.store.end_session(session.token_hash)
    response = redirect("/login")
    response.del_cookie("lanegw_flow", path="/")
    return response


# --- registration --------------------------------------------------------------------
def _form_context(values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {
        "values": values,
        "errors": errors,
        "plate_types": plate_types().codes,
        "kinds": {k: v.name for k, v in kinds().items()},
        "fuels": FUELS,
        "inspection_types": {k: v[1] for k, v in INSPECTION_TYPES.items()},
    }


@needs("register")
async def register_page(request: web.Request) -> web.StreamResponse:
    """The registration form; ``?booking=CODE`` fills it from an appointment."""
    values: dict[str, Any] = {"inspection_type": "periodic", "headlamps": "2", "axles": "2"}
    errors: dict[str, str] = {}
    code = request.query.get("booking", "").strip()
    if code:
        found = await flow_of(request).store.booking(code)
        if found is None:
            errors["booking_code"] = f"无此预约号：{code}"
        elif found[1] is not None:
            errors["booking_code"] = f"该预约已登记（{found[1]}）"
        else:
            values = {**values, **found[0], "booking_code": code}
    return render(request, "register.html", **_form_context(values, errors))


async def _slip(request: web.Request, serial: str, token: str) -> web.Response:
    flow = flow_of(request)
    inspection = await flow.store.inspection(serial)
    assert inspection is not None
    attempt = (await flow.store.attempts(serial))[-1]
    url = f"{flow.public_url}/p/{token}"
    qr = segno.make(url, error="m").svg_inline(scale=5, border=2)
    return render(request, "slip.html", inspection=inspection, attempt=attempt, owner_url=url,
                  qr_svg=qr, photo_name=photo_name)  # fmt: skip


@needs("register")
async def register_form(request: web.Request) -> web.StreamResponse:
    """Register (or start the retest of an earlier serial) and show the slip."""
    flow, session = flow_of(request), session_of(request)
    form = dict(await request.post())
    values = {k: str(v) for k, v in form.items() if k != "csrf"}
    try:
        if is_retest(values):
            serial = parse_retest(values)
            try:
                await flow.retest(serial, session, address(request))
            except FlowError as exc:
                raise FieldErrors({"previous_serial": str(exc)}) from None
            token = await flow.owner_link(serial, session, address(request))
        else:
            serial, token = await flow.register(
                parse_registration(values), session, address(request)
            )
    except FieldErrors as exc:
        return render(request, "register.html", status=422, **_form_context(values, exc.errors))
    except FlowError as exc:
        return render(request, "register.html", status=422,
                      **_form_context(values, {"kind": str(exc)}))  # fmt: skip
    return await _slip(request, serial, token)


@needs("register")
async def reissue_slip(request: web.Request) -> web.StreamResponse:
    """Reprint the slip with a new owner's link (the old link stops working)."""
    flow = flow_of(request)
    serial = request.match_info["serial"]
    if await flow.store.inspection(serial) is None:
        return problem(request, 404, f"无此检验流水号：{serial}")
    token = await flow.owner_link(serial, session_of(request), address(request))
    return await _slip(request, serial, token)


async def api_plate_types(request: web.Request) -> web.StreamResponse:
    """The code tables of the form."""
    return json_response({
        "plate_types": plate_types().codes,
        "kinds": {k: v.name for k, v in kinds().items()},
        "fuels": FUELS,
    })  # fmt: skip


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise FieldErrors({"body": "请求体不是 JSON"}) from None
    if not isinstance(body, dict):
        raise FieldErrors({"body": "请求体应为 JSON 对象"})
    return body


@needs("register")
async def api_register(request: web.Request) -> web.StreamResponse:
    """POST a registration as JSON: 201 with the serial, items and owner's link, or 422
    with ``errors`` per field."""
    flow, session = flow_of(request), session_of(request)
    try:
        body = await _json_body(request)
        if is_retest(body):
            serial = parse_retest(body)
            try:
                attempt = await flow.retest(serial, session, address(request))
            except FlowError as exc:
                raise FieldErrors({"previous_serial": str(exc)}) from None
            token = await flow.owner_link(serial, session, address(request))
        else:
            registration = parse_registration(body)
            serial, token = await flow.register(registration, session, address(request))
            attempt = 1
    except FieldErrors as exc:
        return json_response({"errors": exc.errors}, 422)
    except FlowError as exc:
        return json_response({"error": str(exc)}, 422)
    current = (await flow.store.attempts(serial))[-1]
    return json_response({
        "serial": serial,
        "attempt": attempt,
        "lane_items": current.lane_items,
        "manual_items": current.manual_items,
        "photos": current.photos,
        "owner_url": f"{flow.public_url}/p/{token}",
    }, 201)  # fmt: skip


@needs("register")
async def api_booking(request: web.Request) -> web.StreamResponse:
    """Store an appointment (18C07 download or a phone booking): ``{code, vehicle}``."""
    flow = flow_of(request)
    try:
        body = await _json_body(request)
    except FieldErrors as exc:
        return json_response({"errors": exc.errors}, 422)
    code, vehicle = str(body.get("code") or "").strip(), body.get("vehicle")
    if not code or len(code) > 32 or not isinstance(vehicle, dict):
        return json_response({"errors": {"code": "需要 code（≤32）和 vehicle 对象"}}, 422)
    allowed = {"plate", "plate_type", "vin", "kind", "fuel", "curb_mass_kg", "gross_mass_kg",
               "axles", "headlamps", "owner", "brand_model", "engine_no"}  # fmt: skip
    kept = {k: str(v)[:64] for k, v in vehicle.items() if k in allowed}
    await flow.store.add_booking(code, kept)
    await flow.store.audit(session_of(request), "booking_added", code, address(request))
    return json_response({"code": code, "vehicle": kept}, 201)


# --- dispatch ------------------------------------------------------------------------
async def _dispatch_context(request: web.Request) -> dict[str, Any]:
    flow = flow_of(request)
    lanes = await flow.lanes()
    waiting = [
        (i, a) for i, a in await flow.store.open_attempts()
        if a.lane_items and a.dispatch_state in ("waiting", "refused", "aborted")
    ]  # fmt: skip
    return {"lanes": lanes, "waiting": waiting}


@needs("dispatch")
async def dispatch_page(request: web.Request) -> web.StreamResponse:
    """Every lane with its queue; the vehicles waiting for a lane."""
    message = request.query.get("ok")
    return render(request, "dispatch.html", error=None, message=message,
                  **await _dispatch_context(request))  # fmt: skip


@needs("dispatch")
async def dispatch_form(request: web.Request) -> web.StreamResponse:
    """Send (or reassign) a vehicle to a lane."""
    flow, serial = flow_of(request), request.match_info["serial"]
    form = await request.post()
    try:
        lane = await flow.dispatch(serial, str(form.get("lane", "auto")), session_of(request),
                                   address(request))  # fmt: skip
    except FlowError as exc:
        return render(request, "dispatch.html", status=409, error=str(exc), message=None,
                      **await _dispatch_context(request))  # fmt: skip
    return redirect(f"/dispatch?ok={serial}+{lane}")


@needs("dispatch")
async def api_lanes(request: web.Request) -> web.StreamResponse:
    """Lanes and queues as JSON."""
    lanes = await flow_of(request).lanes()
    return json_response([
        {"lane": v.lane, "online": v.online, "locked": v.locked, "outbox_alarm": v.outbox_alarm,
         "available": v.available,
         "current": None if v.current is None else v.current.get("inspection_id"),
         "queue": [i.serial for i, _ in v.queue]}
        for v in lanes
    ])  # fmt: skip


@needs("dispatch")
async def api_dispatch(request: web.Request) -> web.StreamResponse:
    """``{"lane": "L1" | "auto"}``: 200 with the lane, or 409 with why not."""
    flow = flow_of(request)
    try:
        body = await _json_body(request)
        lane = await flow.dispatch(request.match_info["serial"], str(body.get("lane", "auto")),
                                   session_of(request), address(request))  # fmt: skip
    except FieldErrors as exc:
        return json_response({"errors": exc.errors}, 422)
    except FlowError as exc:
        return json_response({"error": str(exc)}, 409)
    return json_response({"lane": lane})


@needs("lock_lane")
async def lock_lane(request: web.Request) -> web.StreamResponse:
    """Lock (reason given) or unlock (empty reason) a lane for dispatch."""
    form = await request.post()
    reason = str(form.get("reason", "")).strip()[:100] or None
    try:
        await flow_of(request).lock_lane(request.match_info["lane"], reason,
                                         session_of(request), address(request))  # fmt: skip
    except FlowError as exc:
        return problem(request, 404, str(exc))
    if wants_json(request):
        return json_response({"locked": reason})
    return redirect("/dispatch")


# --- accounts and audit ----------------------------------------------------------------
@needs("users")
async def users_page(request: web.Request) -> web.StreamResponse:
    """Accounts."""
    users = await flow_of(request).store.users()
    return render(request, "users.html", users=users, error=None)


@needs("users")
async def add_user(request: web.Request) -> web.StreamResponse:
    """A new account (admin)."""
    flow, form = flow_of(request), await request.post()
    username = str(form.get("username", "")).strip()
    name, role = str(form.get("name", "")).strip(), str(form.get("role", ""))
    error = None
    if not username or len(username) > 32 or not username.isidentifier():
        error = "用户名为1至32位字母、数字或下划线"
    elif role not in ROLES:
        error = "未知的角色"
    else:
        try:
            digest = await asyncio.to_thread(hash_password, str(form.get("password", "")))
        except ValueError:
            error = "密码至少8位"
        else:
            if not await flow.store.add_user(username, name or username, role, digest):
                error = f"用户 {username} 已存在"
    if error is not None:
        users = await flow.store.users()
        return render(request, "users.html", status=422, users=users, error=error)
    await flow.store.audit(session_of(request), "user_added", username, address(request),
                           role=role)  # fmt: skip
    return redirect("/admin/users")


@needs("users")
async def set_active(request: web.Request) -> web.StreamResponse:
    """Disable (or enable) an account; a disabled user's sessions end."""
    flow, form = flow_of(request), await request.post()
    username, active = request.match_info["username"], form.get("active") == "1"
    if username == session_of(request).username:
        return problem(request, 409, "不能停用自己的账户")
    if not await flow.store.set_user(username, active=active):
        return problem(request, 404, f"无此用户：{username}")
    action = "user_enabled" if active else "user_disabled"
    await flow.store.audit(session_of(request), action, username, address(request))
    return redirect("/admin/users")


@needs("audit")
async def audit_page(request: web.Request) -> web.StreamResponse:
    """The latest audited actions (of one target: ``?target=SERIAL``)."""
    target = request.query.get("target") or None
    entries = await flow_of(request).store.audit_log(300, target)
    return render(request, "audit.html", entries=entries, target=target)
