"""The pages after the window: the handheld's manual inspection, the chief inspector's
review, decision and report, the public report verification, the owner's progress."""

from __future__ import annotations

import hashlib
from typing import Any, Final

from aiohttp import web

from station.flow.manual import DESCRIPTION_MAX, ItemResult, ManualError, PhotoRef, Submission
from station.flow.rules import manual_item, manual_table, photo_name
from station.flow.service import FlowError
from station.flow.store import Attempt, Inspection
from station.flow.web import (
    address,
    flow_of,
    json_response,
    needs,
    problem,
    redirect,
    render,
    session_of,
)

#: the photo formats a phone camera gives, by their first bytes
IMAGE_MAGIC: Final = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
}
GONE: Final = "链接无效或已过期"


def routes(app: web.Application) -> None:
    """Add this module's routes."""
    app.router.add_get("/pda", pda_list)
    app.router.add_get("/pda/{serial}", pda_form)
    app.router.add_post("/pda/{serial}", pda_submit)
    app.router.add_get("/review", review_list)
    app.router.add_get("/review/{serial}", review_page)
    app.router.add_post("/review/{serial}/approve", approve)
    app.router.add_post("/review/{serial}/send-back", send_back)
    app.router.add_post("/review/{serial}/retest", retest)
    app.router.add_get("/report/{serial}.pdf", report_pdf)
    app.router.add_get("/photo/{serial}/{sha256}", photo)
    app.router.add_get("/verify/{serial}/{code}", verify)
    app.router.add_get("/p/{token}", owner_page)
    app.router.add_get("/p/{token}/steps", owner_steps)


def _image_type(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in IMAGE_MAGIC.items() if data.startswith(magic)), None)


# --- the handheld --------------------------------------------------------------------
@needs("manual")
async def pda_list(request: web.Request) -> web.StreamResponse:
    """The vehicles waiting for the manual inspection."""
    waiting = await flow_of(request).waiting_for_inspector()
    return render(request, "pda_list.html", waiting=waiting)


async def _current(request: web.Request) -> tuple[Inspection, Attempt] | None:
    flow = flow_of(request)
    inspection = await flow.store.inspection(request.match_info["serial"])
    if inspection is None or inspection.status != "open":
        return None
    attempt = (await flow.store.attempts(inspection.serial))[-1]
    return inspection, attempt


def _pda_context(attempt: Attempt) -> dict[str, Any]:
    groups = manual_table().groups
    items = [manual_item(n) for n in attempt.manual_items]
    by_group = [
        (code, name, [i for i in items if i.group == code]) for code, name in groups.items()
    ]
    photos = [(code, photo_name(code)) for code in attempt.photos]
    return {"groups": [g for g in by_group if g[2]], "photos": photos,
            "description_max": DESCRIPTION_MAX}  # fmt: skip


@needs("manual")
async def pda_form(request: web.Request) -> web.StreamResponse:
    """The items that apply to this vehicle, each pass by default, and its photos."""
    current = await _current(request)
    if current is None or current[1].manual_state not in ("waiting", "sent_back"):
        return problem(request, 404, "该车不在人工检验队列中")
    inspection, attempt = current
    return render(request, "pda_form.html", inspection=inspection, attempt=attempt, errors={},
                  values={}, **_pda_context(attempt))  # fmt: skip


@needs("manual")
async def pda_submit(request: web.Request) -> web.StreamResponse:
    """Check the form (a fail needs its description, every photo its file), store the
    photos, sign and store the results."""
    flow, session = flow_of(request), session_of(request)
    current = await _current(request)
    if current is None or current[1].manual_state not in ("waiting", "sent_back"):
        return problem(request, 404, "该车不在人工检验队列中")
    inspection, attempt = current
    form = await request.post()
    errors: dict[str, str] = {}
    results = []
    for n in attempt.manual_items:
        verdict = form.get(f"r{n}")
        description = str(form.get(f"d{n}", "")).strip()[:DESCRIPTION_MAX]
        if verdict not in ("pass", "fail"):
            errors[f"r{n}"] = "请判定"
        elif verdict == "fail" and not description:
            errors[f"d{n}"] = "不合格项须填写不符合情况说明"
        results.append(ItemResult(n, verdict == "pass", description if verdict == "fail" else ""))
    uploads: list[tuple[str, bytes, str]] = []
    for code in attempt.photos:
        field = form.get(f"photo_{code}")
        limit = flow.config.photo_max_bytes + 1
        data = field.file.read(limit) if isinstance(field, web.FileField) else b""
        mime = _image_type(data)
        if not data:
            errors[f"photo_{code}"] = "请拍摄此照片"
        elif len(data) > flow.config.photo_max_bytes:
            errors[f"photo_{code}"] = f"照片超过{flow.config.photo_max_bytes // 1_000_000} MB"
        elif mime is None:
            errors[f"photo_{code}"] = "不是 JPEG、PNG 或 WebP 照片"
        else:
            uploads.append((code, data, mime))
    if errors:
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf"}
        return render(request, "pda_form.html", status=422, inspection=inspection,
                      attempt=attempt, errors=errors, values=values,
                      **_pda_context(attempt))  # fmt: skip
    assert session.username is not None
    refs = []
    for code, data, mime in uploads:
        digest = hashlib.sha256(data).hexdigest()
        await flow.store.add_photo(inspection.serial, attempt.attempt, code, digest, mime, data,
                                   session.username)  # fmt: skip
        refs.append(PhotoRef(code, digest))
    submission = Submission(inspection.serial, attempt.attempt, session.username,
                            session.name or session.username, results, refs)  # fmt: skip
    try:
        await flow.submit_manual(submission, session, address(request))
    except ManualError as exc:
        return problem(request, 500, f"结果未能保存：{exc}")
    return redirect(f"/pda?ok={inspection.serial}")


# --- the chief inspector -------------------------------------------------------------
@needs("review")
async def review_list(request: web.Request) -> web.StreamResponse:
    """Open inspections with whether their results are complete; the latest decided."""
    flow = flow_of(request)
    rows = []
    for inspection in [*await flow.store.inspections(), *await flow.store.decided()]:
        review = await flow.review(inspection.serial)
        rows.append((inspection, review))
    return render(request, "review_list.html", rows=rows)


async def _review_context(request: web.Request, serial: str) -> dict[str, Any] | None:
    flow = flow_of(request)
    inspection = await flow.store.inspection(serial)
    if inspection is None:
        return None
    review = await flow.review(serial)
    attempts = await flow.store.attempts(serial)
    photos = await flow.store.photos(serial)
    audit = await flow.store.audit_log(50, serial)
    report = await flow.store.report(serial)
    return {"inspection": inspection, "review": review, "attempts": attempts,
            "photos": photos, "photo_name": photo_name, "audit": audit,
            "report_at": report[2] if report else None}  # fmt: skip


@needs("review")
async def review_page(request: web.Request) -> web.StreamResponse:
    """One inspection: instrument and manual results of every attempt, flags, evidence."""
    context = await _review_context(request, request.match_info["serial"])
    if context is None:
        return problem(request, 404, "无此检验流水号")
    return render(request, "review.html", error=None, **context)


async def _decision(request: web.Request, action: str) -> web.StreamResponse:
    flow, session = flow_of(request), session_of(request)
    serial = request.match_info["serial"]
    form = await request.post()
    try:
        if action == "approve":
            await flow.approve(serial, session, address(request))
        elif action == "send_back":
            note = str(form.get("note", "")).strip()[:200]
            await flow.send_back(serial, note or "退回重检", session, address(request))
        else:
            await flow.retest(serial, session, address(request))
    except FlowError as exc:
        context = await _review_context(request, serial)
        if context is None:
            return problem(request, 404, "无此检验流水号")
        return render(request, "review.html", status=409, error=str(exc), **context)
    return redirect(f"/review/{serial}")


@needs("review")
async def approve(request: web.Request) -> web.StreamResponse:
    """Approve: the verdict is fixed and the report drawn."""
    return await _decision(request, "approve")


@needs("review")
async def send_back(request: web.Request) -> web.StreamResponse:
    """Send the manual inspection back to the handheld."""
    return await _decision(request, "send_back")


@needs("review")
async def retest(request: web.Request) -> web.StreamResponse:
    """Start the retest (复检) of the failed items only."""
    return await _decision(request, "retest")


async def report_pdf(request: web.Request) -> web.StreamResponse:
    """The stored report (chief inspector and window)."""
    session = session_of(request)
    if not (session.may("review") or session.may("register")):
        return problem(request, 403 if session.username else 401, "无权限")
    found = await flow_of(request).store.report(request.match_info["serial"])
    if found is None:
        return problem(request, 404, "尚无检验报告")
    digest, pdf, _ = found
    await flow_of(request).store.audit(session, "report_viewed", request.match_info["serial"],
                                       address(request), sha256=digest)  # fmt: skip
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{request.match_info["serial"]}.pdf"'},
    )


async def photo(request: web.Request) -> web.StreamResponse:
    """A photo of the manual inspection (inspectors and chief inspectors)."""
    session = session_of(request)
    if not (session.may("review") or session.may("manual")):
        return problem(request, 403 if session.username else 401, "无权限")
    found = await flow_of(request).store.photo(request.match_info["serial"],
                                               request.match_info["sha256"])  # fmt: skip
    if found is None:
        return problem(request, 404, "无此照片")
    return web.Response(body=found[1], content_type=found[0])


async def verify(request: web.Request) -> web.StreamResponse:
    """The report's QR code: valid when the code is the station's signature of what the
    stored decision says (no login; shows no owner data)."""
    flow = flow_of(request)
    serial, code = request.match_info["serial"], request.match_info["code"]
    inspection = await flow.store.inspection(serial)
    valid = (
        inspection is not None
        and inspection.status == "approved"
        and inspection.verdict is not None
        and flow.verified(serial, inspection.attempt, inspection.verdict, code)
    )
    if not valid or inspection is None:
        return render(request, "verify.html", status=404, inspection=None, plate=None)
    plate = inspection.plate
    masked = plate[:2] + "*" * max(len(plate) - 4, 0) + plate[-2:]
    return render(request, "verify.html", inspection=inspection, plate=masked)


# --- the owner -----------------------------------------------------------------------
async def owner_page(request: web.Request) -> web.StreamResponse:
    """The owner's progress page (polls its steps)."""
    inspection = await flow_of(request).store.by_owner_token(request.match_info["token"])
    if inspection is None:
        return render(request, "owner.html", status=404, steps=None, message=GONE)
    steps = await flow_of(request).owner_steps(inspection)
    return render(request, "owner.html", steps=steps, message=None)


async def owner_steps(request: web.Request) -> web.StreamResponse:
    """This vehicle's steps as JSON, while the link is valid."""
    inspection = await flow_of(request).store.by_owner_token(request.match_info["token"])
    if inspection is None:
        return json_response({"error": GONE}, 404)
    return json_response(await flow_of(request).owner_steps(inspection))
