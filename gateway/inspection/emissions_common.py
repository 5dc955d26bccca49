"""What the two emission items share: the order check and a drift-free sampling clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from gateway.inspection.items import ItemAborted, ItemContext
from gateway.records import Measurement


class InvalidTest(ItemAborted):
    """The test ran but its data are not valid: aborted (never failed), with what was
    measured so far, so the record can still carry the values and the process data."""

    def __init__(self, reason: str, measurements: list[Measurement] | None = None) -> None:
        super().__init__(reason)
        self.measurements = measurements or []


def check_order(ctx: ItemContext, method: str, fuels: frozenset[str]) -> None:
    """Abort unless the order asks for this emission method on a vehicle of a fitting fuel.

    The station's order says which method the vehicle gets (the environmental platform
    cross-checks method and fuel against the dispatched vehicle); an item that does not
    match it is a wrong order, so the item is aborted with the reason, never judged.
    """
    order = ctx.order
    if order.emission_method != method:
        raise ItemAborted(
            f"item {ctx.item_code} is the {method} test but the order's emission_method is "
            f"{order.emission_method!r}"
        )
    if order.fuel not in fuels:
        allowed = "/".join(sorted(fuels))
        raise ItemAborted(
            f"item {ctx.item_code} ({method}) needs a {allowed} vehicle; the order says "
            f"fuel {order.fuel!r}"
        )


class Ticker:
    """Ticks every ``period_s`` on absolute deadlines, so a slow read does not drift.

    ``clock`` and ``sleep`` default to the running loop's; a test passes a fake pair.
    """

    def __init__(
        self,
        period_s: float,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.period_s = period_s
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep
        self._start = self._clock()
        self._next = self._start

    def elapsed(self) -> float:
        """Seconds since the ticker started (real, unscaled)."""
        return self._clock() - self._start

    async def tick(self) -> None:
        """Sleep until the next deadline (at once when already late)."""
        self._next += self.period_s
        late = self._clock() - self._next
        if late > self.period_s:  # fell behind by more than one period: catch up, no burst
            self._next = self._clock()
        await self._sleep(max(0.0, self._next - self._clock()))
