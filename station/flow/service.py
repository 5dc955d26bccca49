"""The flow's operations, between the pages and the stores: register, dispatch and
reassign, take the handheld's results, review, decide, print, and the owner's view.
Every operation is audited (who, when, what) by the store in the station database."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidSignature

from station.flow.auth import Session
from station.flow.config import FlowConfig
from station.flow.dispatch import Dispatcher, DispatchError, build_order
from station.flow.manual import ManualSigner, Submission
from station.flow.registration import FieldErrors, Registration
from station.flow.report import ReportData, ReportError, render_report
from station.flow.review import Review, build_review
from station.flow.rules import Derived, derive, item_name
from station.flow.store import Attempt, FlowStore, Inspection, later
from station.live import LiveBoard
from station.store.store import now_text

LANE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")  # as in the lanes' topics


class FlowError(Exception):
    """An operation that cannot be done now; the message (Chinese) says why."""


@dataclass(slots=True)
class LaneView:
    """A lane on the dispatch page."""

    lane: str
    online: bool
    locked: str | None
    outbox_alarm: bool
    current: dict[str, Any] | None
    queue: list[tuple[Inspection, Attempt]] = field(default_factory=list)

    @property
    def available(self) -> bool:
        """Whether orders may go to this lane."""
        return self.online and not self.locked and not self.outbox_alarm


class Flow:
    """The station's flow over its stores, its lanes' board and its dispatcher."""

    def __init__(
        self,
        config: FlowConfig,
        station: str,
        store: FlowStore,
        signer: ManualSigner,
        board: LiveBoard,
        dispatcher: Dispatcher,
        timezone: str,
    ) -> None:
        self.config = config
        self.station = station
        self.store = store
        self.signer = signer
        self.board = board
        self.dispatcher = dispatcher
        self.tz = ZoneInfo(timezone)
        self.prefix = config.serial_prefix or station
        base = config.public_url or f"http://{config.host}:{config.port}"
        self.public_url = base.rstrip("/")

    # --- registration -------------------------------------------------------------------
    async def register(
        self, registration: Registration, session: Session, address: str | None
    ) -> tuple[str, str]:
        """A new inspection; (serial number, owner's link token)."""
        code = registration.booking_code
        if code is not None:
            booking = await self.store.booking(code)
            if booking is None:
                raise FieldErrors({"booking_code": f"无此预约号：{code}"})
            if booking[1] is not None:
                raise FieldErrors({"booking_code": f"该预约已登记（{booking[1]}）"})
        derived = derive(registration.vehicle)
        if not derived.lane_items and not derived.manual_items:
            raise FlowError("按规则此车辆无检验项目：请检查车辆类型")
        token = secrets.token_urlsafe(24)
        day = datetime.now(self.tz).strftime("%y%m%d")
        serial = await self.store.register(
            self.prefix, day, registration.to_json(), derived, session, token,
            self.config.owner_link_lifetime_s, address,
        )  # fmt: skip
        return serial, token

    async def retest(self, serial: str, session: Session, address: str | None) -> int:
        """The 复检 of an inspection's failed items only: a new attempt (检验次数 + 1)."""
        inspection = await self.store.inspection(serial)
        if inspection is None:
            raise FlowError(f"无此检验流水号：{serial}")
        review = await self.review(serial)
        if inspection.status == "approved" and inspection.verdict == "pass":
            raise FlowError("该车已检验合格，无需复检")
        if not review.ready:
            raise FlowError("本次检验尚未完成，不能复检")
        lane_items = [i.key for i in review.failed if i.group == "lane" and i.key != "summary"]
        if any(i.key == "summary" for i in review.failed) and not lane_items:
            attempts = await self.store.attempts(serial)
            lane_items = [c for c in attempts[0].lane_items if c.startswith("B")]
        manual_items = [int(i.key) for i in review.failed if i.group != "lane"]
        if not lane_items and not manual_items:
            raise FlowError("没有不合格项目，无需复检")
        derived = Derived(lane_items, manual_items, [])
        return await self.store.new_attempt(serial, derived, session, address)

    async def owner_link(self, serial: str, session: Session, address: str | None) -> str:
        """A new owner's link for a reprinted slip (the old one stops working)."""
        token = secrets.token_urlsafe(24)
        await self.store.new_owner_token(serial, token, self.config.owner_link_lifetime_s)
        await self.store.audit(session, "owner_link_reissued", serial, address)
        return token

    # --- dispatch -----------------------------------------------------------------------
    async def lanes(self) -> list[LaneView]:
        """Every lane known (configured or seen), its state and queue."""
        locks = await self.store.lane_locks()
        names = sorted(set(self.config.lanes) | set(self.board.lanes) | set(locks))
        views = {}
        for name in names:
            lane = self.board.lane_json(name) if name in self.board.lanes else {}
            gateway = lane.get("gateway") or {}
            views[name] = LaneView(
                name, bool(gateway.get("online")), locks.get(name),
                bool(gateway.get("outbox_alarm")), lane.get("inspection"),
            )  # fmt: skip
        for inspection, attempt in await self.store.open_attempts():
            queued = attempt.dispatch_state == "sent" and attempt.lane in views
            if queued and not await self.lane_finished(inspection.serial, attempt.attempt):
                assert attempt.lane is not None
                views[attempt.lane].queue.append((inspection, attempt))
        return list(views.values())

    async def lane_finished(self, serial: str, attempt: int) -> bool:
        """Whether the lane's summary record of this attempt is stored."""
        async with self.store.db.transaction() as tx:
            row = await tx.one(
                "SELECT 1 FROM records WHERE inspection_id = %s AND attempt = %s"
                " AND kind = 'summary' LIMIT 1",
                (serial, attempt),
            )
        return row is not None

    async def dispatch(self, serial: str, lane: str, session: Session, address: str | None) -> str:
        """Send the current attempt's lane items to ``lane`` ('auto': the free lane with
        the shortest queue, the next one when a lane refuses). A vehicle already queued
        on another lane is taken off it first (abort), unless that lane started it."""
        inspection = await self.store.inspection(serial)
        if inspection is None or inspection.status != "open":
            raise FlowError(f"{serial} 不在检验中")
        attempt = (await self.store.attempts(serial))[-1]
        if not attempt.lane_items:
            raise FlowError("本次检验没有仪器检验项目")
        views = {v.lane: v for v in await self.lanes()}
        if lane == "auto":
            candidates = sorted((v for v in views.values() if v.available and v.lane !=
                                 attempt.lane), key=lambda v: len(v.queue))  # fmt: skip
            if not candidates:
                raise FlowError("没有可用的检测线（全部离线、锁定或告警）")
        else:
            view = views.get(lane)
            if view is None:
                raise FlowError(f"未知的检测线：{lane}")
            if not view.available:
                why = view.locked or ("网关离线" if not view.online else "记录缓存告警")
                raise FlowError(f"检测线 {lane} 不可用：{why}")
            candidates = [view]
        if attempt.dispatch_state == "sent" and attempt.lane and attempt.lane != lane:
            await self._take_back(inspection, attempt, views.get(attempt.lane), session, address)
        order = build_order(inspection, attempt)
        refusals = []
        for view in candidates:
            try:
                answer = await self.dispatcher.command(view.lane, "inspect", order)
            except DispatchError as exc:
                refusals.append(f"{view.lane}：{exc}")
                continue
            if answer.ok:
                await self.store.set_dispatch(serial, attempt.attempt, view.lane, "sent", None)
                await self.store.audit(session, "dispatch", serial, address, lane=view.lane,
                                       attempt=attempt.attempt, items=attempt.lane_items,
                                       position=answer.result.get("position"))  # fmt: skip
                return view.lane
            refusals.append(f"{view.lane}：{answer.error}")
        error = "；".join(refusals)
        await self.store.set_dispatch(serial, attempt.attempt, None, "refused", error)
        await self.store.audit(session, "dispatch_refused", serial, address, error=error)
        raise FlowError(f"派车被拒绝：{error}")

    async def _take_back(
        self,
        inspection: Inspection,
        attempt: Attempt,
        view: LaneView | None,
        session: Session,
        address: str | None,
    ) -> None:
        current = view.current if view else None
        if (
            current is not None
            and current.get("inspection_id") == inspection.serial
            and current.get("attempt") in (None, attempt.attempt)
            and not current.get("verdict")
        ):
            raise FlowError(f"该车已在 {attempt.lane} 检测中，不能改派")
        assert attempt.lane is not None
        try:
            answer = await self.dispatcher.command(
                attempt.lane, "abort", {"inspection_id": inspection.serial}
            )
        except DispatchError as exc:
            raise FlowError(f"无法从 {attempt.lane} 撤回：{exc}") from None
        await self.store.audit(session, "dispatch_withdrawn", inspection.serial, address,
                               lane=attempt.lane, ok=answer.ok, error=answer.error)  # fmt: skip
        await self.store.set_dispatch(inspection.serial, attempt.attempt, None, "aborted",
                                      answer.error)  # fmt: skip

    async def lock_lane(
        self, lane: str, reason: str | None, session: Session, address: str | None
    ) -> None:
        """Lock a lane for dispatch, or unlock it (reason None)."""
        if not LANE_NAME.match(lane):
            raise FlowError(f"检测线名称无效：{lane[:40]}")
        assert session.username is not None
        await self.store.lock_lane(lane, reason, session.username)
        action = "lane_locked" if reason else "lane_unlocked"
        await self.store.audit(session, action, lane, address, reason=reason)

    # --- manual inspection --------------------------------------------------------------
    async def waiting_for_inspector(self) -> list[tuple[Inspection, Attempt]]:
        """Vehicles whose current attempt waits for the handheld."""
        return [
            (i, a)
            for i, a in await self.store.open_attempts()
            if a.manual_state in ("waiting", "sent_back")
        ]

    async def submit_manual(
        self, submission: Submission, session: Session, address: str | None
    ) -> None:
        """Sign and store the handheld's results; the attempt's manual part is done."""
        records = await self.signer.submit(submission)
        await self.store.set_manual_state(submission.serial, submission.attempt, "done")
        failed = [r.n for r in submission.results if not r.passed]
        await self.store.audit(
            session, "manual_submitted", submission.serial, address,
            attempt=submission.attempt, records=[r["record_id"] for r in records],
            failed=failed, photos=[p.code for p in submission.photos],
        )  # fmt: skip

    # --- review -------------------------------------------------------------------------
    async def review(self, serial: str) -> Review:
        """The inspection's results, for the chief inspector and the report."""
        attempts = await self.store.attempts(serial)
        if not attempts:
            raise FlowError(f"无此检验流水号：{serial}")
        stored = await self.store.records.inspection_records(serial)
        return build_review(serial, attempts, stored)

    async def approve(self, serial: str, session: Session, address: str | None) -> str:
        """The chief inspector signs off: the verdict is fixed and the report drawn."""
        inspection = await self.store.inspection(serial)
        if inspection is None or inspection.status != "open":
            raise FlowError(f"{serial} 不在待审核状态")
        review = await self.review(serial)
        if not review.ready:
            raise FlowError("检验尚未完成：仪器或人工检验结果未齐")
        pdf = await self._report(serial, review, session)  # before: a failure changes nothing
        digest = hashlib.sha256(pdf).hexdigest()
        expires = later(self.config.owner_link_grace_s)
        if not await self.store.approve(serial, review.verdict, session, expires, pdf, digest,
                                        address, attempt=review.attempt):  # fmt: skip
            raise FlowError(f"{serial} 已由他人审核")
        return review.verdict

    async def send_back(
        self, serial: str, note: str, session: Session, address: str | None
    ) -> None:
        """Back to the handheld: the manual part of the current attempt is done again."""
        attempt = (await self.store.attempts(serial))[-1]
        if attempt.manual_state == "none":
            raise FlowError("本次检验没有人工检验项目")
        await self.store.set_manual_state(serial, attempt.attempt, "sent_back")
        await self.store.audit(session, "sent_back", serial, address, note=note,
                               attempt=attempt.attempt)  # fmt: skip

    def verification_code(self, serial: str, attempt: int, verdict: str) -> str:
        """The station's signature over what the report states (its QR code carries it)."""
        return _b64(self.signer.sign(_claim(serial, attempt, verdict)))

    def verified(self, serial: str, attempt: int, verdict: str, code: str) -> bool:
        """Whether ``code`` is the station's signature of this report's claim."""
        try:
            signature = base64.urlsafe_b64decode(code + "=" * (-len(code) % 4))
            self.signer.verify(signature, _claim(serial, attempt, verdict))
        except (InvalidSignature, ValueError):
            return False
        return True

    async def _report(self, serial: str, review: Review, session: Session) -> bytes:
        inspection = await self.store.inspection(serial)
        assert inspection is not None
        code = self.verification_code(serial, review.attempt, review.verdict)
        data = ReportData(
            station_name=self.config.station_name,
            station_address=self.config.station_address or "—",
            station_phone=self.config.station_phone or "—",
            registration=inspection.registration,
            inspected_on=datetime.now(self.tz).strftime("%Y-%m-%d"),
            signatory=session.name or session.username or "",
            verify_url=f"{self.public_url}/verify/{serial}/{code}",
            next_inspection="以行驶证、检验合格标志为准",
        )
        try:  # reportlab takes a while: not on the event loop the receiver shares
            return await asyncio.to_thread(render_report, review, data, self.config.report_font)
        except ReportError as exc:
            raise FlowError(f"报告无法生成：{exc}") from None

    # --- the owner's view ---------------------------------------------------------------
    async def owner_steps(self, inspection: Inspection) -> dict[str, Any]:
        """What the owner's page shows: this vehicle's steps, nothing else."""
        attempts = await self.store.attempts(inspection.serial)
        attempt = attempts[-1]
        review = await self.review(inspection.serial)
        steps: list[dict[str, Any]] = [{"key": "registered", "name": "登记", "state": "done"}]
        if attempt.lane_items:
            steps.append(self._lane_step(inspection, attempt, review))
        if attempt.manual_items:
            state = "done" if attempt.manual_state == "done" else "waiting"
            steps.append({"key": "manual", "name": "人工检验（外观、底盘）", "state": state})
        decided = inspection.status == "approved"
        steps.append(
            {
                "key": "review",
                "name": "总检审核",
                "state": "done" if decided else ("running" if review.ready else "waiting"),
            }
        )
        steps.append({"key": "report", "name": "检验报告",
                      "state": "done" if decided else "waiting",
                      "verdict": inspection.verdict if decided else None})  # fmt: skip
        plate = inspection.plate
        return {
            "plate": plate[:2] + "*" * max(len(plate) - 4, 0) + plate[-2:],
            "serial_tail": inspection.serial[-4:],
            "attempt": attempt.attempt,
            "steps": steps,
            "updated_at": now_text(),
        }

    def _lane_step(
        self, inspection: Inspection, attempt: Attempt, review: Review
    ) -> dict[str, Any]:
        live = {}
        if attempt.lane and attempt.lane in self.board.lanes:
            current = self.board.lane_json(attempt.lane).get("inspection") or {}
            if current.get("inspection_id") == inspection.serial and current.get("attempt") in (
                None, attempt.attempt,
            ):  # fmt: skip
                live = {i["code"]: (i["status"], i["verdict"]) for i in current.get("items", [])}
        done = {i.key: i.final.verdict for i in review.lane
                if i.final and i.final.attempt == attempt.attempt}  # fmt: skip
        items = []
        for code in attempt.lane_items:
            if code in done:
                items.append({"code": code, "name": item_name(code), "state": "done",
                              "verdict": done[code]})  # fmt: skip
            else:
                status = live.get(code, ("pending", None))[0]
                state = "running" if status == "running" else "waiting"
                items.append({"code": code, "name": item_name(code), "state": state})
        state = "done" if review.lane_done else ("running" if live or done else "waiting")
        where = f"（{attempt.lane}线）" if attempt.dispatch_state == "sent" else ""
        return {"key": "lane", "name": f"上线检测{where}", "state": state, "items": items}


def _claim(serial: str, attempt: int, verdict: str) -> bytes:
    return f"lanegw-report|{serial}|{attempt}|{verdict}".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)
