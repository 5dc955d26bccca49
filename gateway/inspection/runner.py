"""Runs inspection orders one at a time and turns each item into a durable record.

Orders wait in a short queue (one inspection per lane at a time); past ``MAX_QUEUED``,
while the outbox is in alarm, when an item needs a device the lane lacks, or when the
same inspection and attempt already finished (a replay; ``finished``), an order is
refused with the reason. Each item runs in its own task so an abort command can cancel
it; the item then ends as ``aborted`` with the reason, and so does the inspection. A
whole-vehicle summary record closes every inspection.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import structlog

from drivers.errors import DriverError
from gateway.errors import InspectionRefused, OutboxFull
from gateway.inspection.finished import FinishedInspections
from gateway.inspection.items import (
    InspectionState,
    ItemAborted,
    ItemContext,
    ItemOutcome,
    overall,
)
from gateway.inspection.order import InspectionOrder
from gateway.inspection.procedures import PROCEDURES
from gateway.producer import RecordDraft
from gateway.records import (
    Flag,
    Measurement,
    Progress,
    RecordKind,
    ResultRecord,
    Scalar,
    Verdict,
    utc_now,
)

if TYPE_CHECKING:
    from gateway.app import Gateway

log = structlog.get_logger("lanegw.inspection")

#: orders that may wait behind the running one
MAX_QUEUED: Final = 5


class InspectionRunner:
    """The lane's inspection queue and its single worker."""

    def __init__(self, gateway: Gateway) -> None:
        self._gw = gateway
        self._queue: deque[InspectionOrder] = deque()
        self._wakeup = asyncio.Event()
        self.current_inspection: str | None = None
        #: the running order, its item, its latest (step, message), items finished
        self.current_order: InspectionOrder | None = None
        self.current_item: str | None = None
        self.current_step: tuple[str, str] | None = None
        self.items_done = 0
        self._item_task: asyncio.Task[ItemOutcome] | None = None
        self._aborting: str | None = None
        self.finished = FinishedInspections(gateway.config.state_dir / "inspections.sqlite3")

    @property
    def queued(self) -> int:
        """Orders waiting."""
        return len(self._queue)

    # commands --------------------------------------------------------------------------
    def submit_json(self, args: dict[str, Any]) -> dict[str, Any]:
        """Validate an order from a command payload and queue it."""
        return self.submit(InspectionOrder.model_validate(args))

    def submit(self, order: InspectionOrder) -> dict[str, Any]:
        """Queue an order, or raise ``InspectionRefused`` saying why not."""
        try:
            self._gw.outbox.require_room()
        except OutboxFull as exc:
            raise InspectionRefused(str(exc)) from None
        ids = {o.inspection_id for o in self._queue} | {self.current_inspection}
        if order.inspection_id in ids:
            raise InspectionRefused(
                f"inspection {order.inspection_id} is already queued or running"
            )
        done = self.finished.last_attempt(order.inspection_id)
        if done is not None and order.attempt <= done:
            raise InspectionRefused(
                f"inspection {order.inspection_id} attempt {order.attempt} has already been"
                f" run (attempts up to {done} finished): a replayed order is not run again;"
                f" a retest is attempt {done + 1}"
            )
        if len(self._queue) >= MAX_QUEUED:
            raise InspectionRefused(f"lane busy: {len(self._queue)} orders already waiting")
        for code in order.items:
            self._check_item(code)
        # the inspections that run before this one: the one running, then those waiting
        ahead = len(self._queue) + (self.current_inspection is not None)
        self._queue.append(order)
        self._wakeup.set()
        log.info("order_accepted", inspection_id=order.inspection_id, items=order.items)
        return {
            "accepted": True,
            "inspection_id": order.inspection_id,
            "plate": order.plate,
            "items": list(order.items),
            "ahead": ahead,
            "position": ahead + 1,
        }

    def _check_item(self, code: str) -> None:
        procedure = PROCEDURES.get(code)
        if procedure is None:
            known = ", ".join(sorted(PROCEDURES))
            raise InspectionRefused(f"item {code!r} is not supported (supported: {known})")
        have = {s.device.device_class for s in self._gw.supervisors.values()}
        missing = [c.value for c in procedure.needs if c not in have]
        if missing:
            raise InspectionRefused(f"item {code} needs a {', '.join(missing)}; this lane has none")
        locked = self._gw.lockouts()
        for device_class in procedure.needs:
            devices = [
                s.device_id
                for s in self._gw.supervisors.values()
                if s.device.device_class is device_class
            ]
            if all(d in locked for d in devices):
                why = "; ".join(f"{d}: {', '.join(locked[d])}" for d in devices)
                raise InspectionRefused(f"item {code} needs a {device_class.value}, locked ({why})")

    def abort(self, inspection_id: str) -> dict[str, Any]:
        """Abort a running inspection or drop a queued one."""
        for order in list(self._queue):
            if order.inspection_id == inspection_id:
                self._queue.remove(order)
                return {"aborted": inspection_id, "was": "queued"}
        if self.current_inspection != inspection_id:
            raise InspectionRefused(f"no inspection {inspection_id} is running or queued")
        self._aborting = inspection_id
        if self._item_task is not None:
            self._item_task.cancel()
        return {"aborted": inspection_id, "was": "running"}

    # the worker ------------------------------------------------------------------------
    async def run(self) -> None:
        """Run queued orders forever, one at a time."""
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            order = self._queue.popleft()
            self.current_inspection = order.inspection_id
            self.current_order, self.items_done = order, 0
            try:
                await self._inspect(order)
                await self.finished.remember(order.inspection_id, order.attempt)
            finally:
                self.current_inspection = None
                self.current_order = self.current_item = self.current_step = None
                self._aborting = None

    async def _inspect(self, order: InspectionOrder) -> None:
        started = utc_now()
        log.info(
            "inspection_started",
            inspection_id=order.inspection_id,
            attempt=order.attempt,
            plate=order.plate,
            items=order.items,
        )
        self._progress(
            order,
            None,
            "inspection_started",
            f"{order.plate}: inspection started",
            plate=order.plate,  # the vehicle, for station displays (docs/live-page.md)
            vin=order.vin,
            category=order.category.value,
            attempt=order.attempt,
            items=",".join(order.items),
        )
        verdicts: dict[str, Verdict] = {}
        flags: list[Flag] = []  # the items' plausibility flags, repeated on the summary
        state = InspectionState()
        for code in order.items:
            item_started = utc_now()
            if self._aborting == order.inspection_id:
                outcome = ItemOutcome(Verdict.ABORTED, reason="inspection aborted by command")
            else:
                self.current_item = code
                outcome = await self._run_item(order, code, state)
            self.items_done += 1
            verdicts[code] = outcome.verdict
            record = await self._produce(order, code, outcome, item_started, utc_now())
            flags += [flag.model_copy(update={"message": f"{code}: {flag.message}"})
                      for flag in record.flags]  # fmt: skip
            self._progress(
                order,
                code,
                "item_result",
                f"{code}: {outcome.verdict.value}",
                verdict=outcome.verdict.value,
                reason=outcome.reason,
                flags=",".join(sorted({flag.code for flag in record.flags})) or None,
            )
        item_verdicts = [
            Measurement(name=f"{code}_verdict", value=v.value) for code, v in verdicts.items()
        ]
        summary = ItemOutcome(
            overall([*verdicts.values(), *(m.verdict for m in state.summary)]),
            item_verdicts + state.summary,
            name="whole-vehicle summary",
        )
        await self._produce(
            order, "summary", summary, started, utc_now(), kind="summary", flags=flags
        )
        self._log_end(order, summary.verdict, verdicts)
        self._progress(
            order,
            None,
            "inspection_finished",
            f"{order.plate}: {summary.verdict.value}",
            verdict=summary.verdict.value,
        )

    def _log_end(self, order: InspectionOrder, verdict: Verdict, items: dict[str, Verdict]) -> None:
        """``inspection_finished`` with its verdict, or ``inspection_aborted`` and why."""
        self._gw.metrics.inspections.labels(verdict.value).inc()
        for code, item_verdict in items.items():
            self._gw.metrics.items.labels(code, item_verdict.value).inc()
        event = "inspection_aborted" if verdict is Verdict.ABORTED else "inspection_finished"
        aborted = [code for code, v in items.items() if v is Verdict.ABORTED]
        (log.warning if aborted else log.info)(
            event,
            inspection_id=order.inspection_id,
            attempt=order.attempt,
            verdict=verdict.value,
            aborted_items=aborted or None,
            by_command=self._aborting == order.inspection_id,
        )

    async def _run_item(
        self, order: InspectionOrder, code: str, state: InspectionState
    ) -> ItemOutcome:
        ctx = ItemContext(
            order,
            code,
            self._gw.supervisors,
            lambda step, text, values: self._progress(order, code, step, text, **values),
            self._gw.evidence,
            state,
            self._gw.config.procedure_time_scale,
            self._gw.lockouts(),
            self._gw.calibrations,
            live_fn=lambda device, values: self._gw.monitors.publish(device, values, time.time()),
        )
        with self._gw.frames.capture(self._gw.supervisors) as frames:
            async with asyncio.TaskGroup() as group:
                self._item_task = task = group.create_task(self._item_body(ctx))
        self._item_task = None
        if task.cancelled():
            outcome = ItemOutcome(
                Verdict.ABORTED, devices=ctx.used, reason="aborted by command",
                evidence=list(ctx.kept_evidence),
            )  # fmt: skip
        else:
            outcome = task.result()
        document = frames.document(ctx.used)
        count = len(document["frames"])  # type: ignore[arg-type]
        if count:  # the raw bytes behind the item, hashed into its record
            outcome.evidence.append(self._gw.evidence.put("raw_frames", document, samples=count))
        return outcome

    async def _item_body(self, ctx: ItemContext) -> ItemOutcome:
        self._progress(ctx.order, ctx.item_code, "item_started", f"{ctx.item_code}: started")
        try:
            outcome: ItemOutcome = await PROCEDURES[ctx.item_code].run(ctx)
        except (DriverError, ItemAborted) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("item_aborted", item=ctx.item_code, reason=reason)
            return ItemOutcome(Verdict.ABORTED, devices=ctx.used, reason=reason)
        except Exception as exc:  # item supervisor: a bug must not end the lane
            self._gw.metrics.task_restarts.labels(f"item:{ctx.item_code}").inc()
            log.exception("item_bug", item=ctx.item_code)
            return ItemOutcome(Verdict.ABORTED, devices=ctx.used, reason=f"internal error: {exc!r}")
        outcome.devices = outcome.devices or ctx.used
        return outcome

    # records and progress --------------------------------------------------------------
    async def _produce(
        self,
        order: InspectionOrder,
        code: str,
        outcome: ItemOutcome,
        started: datetime,
        finished: datetime,
        kind: RecordKind = "item",
        flags: list[Flag] | None = None,
    ) -> ResultRecord:
        """Commit the item's record (durable before this returns)."""
        return await self._gw.producer.produce(
            RecordDraft(
                item_code=code,
                kind=kind,
                item_name=outcome.name,
                devices=outcome.devices,
                measurements=outcome.measurements,
                verdict=outcome.verdict,
                reason=outcome.reason,
                limit_set=outcome.limit_set,
                evidence=outcome.evidence,
                started_at=started,
                finished_at=finished,
                inspection_id=order.inspection_id,
                plate=order.plate,
                attempt=order.attempt,
                flags=flags or [],
            )
        )

    def _progress(
        self, order: InspectionOrder, code: str | None, step: str, text: str, **values: Scalar
    ) -> None:
        self.current_step = (step, text)
        link = self._gw.link
        event = Progress(
            inspection_id=order.inspection_id,
            step=step,
            message=text,
            item_code=code,
            values=values,
            ts=utc_now(),
        )
        link.publish_live(
            link.topics.progress,
            event.model_dump_json().encode(),
            self._gw.config.mqtt.progress_expiry_s,
        )
