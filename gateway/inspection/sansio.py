"""Sans-I/O procedures: a machine takes events and returns actions; a thin runner does I/O.

A procedure machine (``ProcedureMachine``) never touches a device, a clock or the network.
It is given events (``Sample``: the per-tick readings it asked for, ``Reply``: the answer
to one of its commands, ``DeviceFailed``: a device error, ``OperatorAbort``) and answers
with actions (``Command`` a device, ``Say`` a progress step, ``SetClock`` to start,
change or stop the sampling clock, ``Finish`` with the judged outcome). Tests feed it
plain events with any ``t_s`` they like (a fake clock); ``drive`` runs it on a lane:
it executes the actions in order, samples on absolute deadlines and feeds the results
back, and on every way out (finish, error, cancellation) sends the machine's
``safe_state`` commands (load off, pump off), ignoring a dead device there.

Devices are named by role ("dyno", "analyser", "flowmeter", "opacimeter", "obd"); the
item maps roles to the lane's devices.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers.errors import DriverError
from gateway.inspection.emissions_common import Ticker
from gateway.records import Measurement, Scalar, Verdict

#: a command argument: a number, a flag, or a contract value (``RoadLoad``, a mode enum)
Arg = object


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One tick of the sampling clock: the readings asked for by ``SetClock``, by role."""

    t_s: float
    readings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Reply:
    """The value a ``Command`` returned."""

    t_s: float
    device: str
    method: str
    value: Any


@dataclass(frozen=True, slots=True)
class DeviceFailed:
    """A command or a read raised a driver error (timeout, NAK, link down...)."""

    t_s: float
    device: str
    method: str
    error: str


@dataclass(frozen=True, slots=True)
class OperatorAbort:
    """The operator (or the station) stopped the test."""

    t_s: float
    reason: str


Event = Sample | Reply | DeviceFailed | OperatorAbort


# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """Call ``method(*args)`` on the device of ``device``; ``reply``: feed the value back."""

    device: str
    method: str
    args: tuple[Arg, ...] = ()
    reply: bool = False


@dataclass(frozen=True, slots=True)
class Say:
    """A progress step for the station display and the live page."""

    step: str
    message: str
    values: Mapping[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Read:
    """A read the clock makes on each tick (or on every ``every``-th tick)."""

    device: str
    method: str
    every: int = 1
    #: the name of the reading in ``Sample.readings`` (default: the device's role)
    name: str | None = None

    @property
    def key(self) -> str:
        """Where the reading lands in ``Sample.readings``."""
        return self.name or self.device


@dataclass(frozen=True, slots=True)
class SetClock:
    """Sample every ``period_s`` procedure seconds with ``reads``; ``None`` stops it."""

    period_s: float | None
    reads: tuple[Read, ...] = ()


@dataclass(frozen=True, slots=True)
class Finish:
    """The procedure is over: the judged outcome (aborted with a reason when invalid)."""

    verdict: Verdict
    measurements: tuple[Measurement, ...] = ()
    reason: str | None = None


Action = Command | Say | SetClock | Finish


class ProcedureMachine(abc.ABC):
    """Base of the sans-I/O procedures."""

    #: a short name for messages and the evidence, e.g. "ASM"
    name: str = "procedure"

    def __init__(self) -> None:
        self.finish: Finish | None = None

    @abc.abstractmethod
    def start(self, t_s: float) -> list[Action]:
        """The first actions (commands, the clock)."""

    @abc.abstractmethod
    def handle(self, event: Event) -> list[Action]:
        """React to one event."""

    @abc.abstractmethod
    def evidence(self) -> dict[str, Any]:
        """The process data kept so far (also after an abort)."""

    def safe_state(self) -> list[Command]:
        """Commands that leave the devices safe on any way out (default: none)."""
        return []

    def done(self, finish: Finish) -> list[Action]:
        """Record and return the finishing action (helper for subclasses)."""
        self.finish = finish
        return [finish]


SayFn = Callable[[Say], None]


async def _call(devices: Mapping[str, Any], command: Command) -> Any:
    return await getattr(devices[command.device], command.method)(*command.args)


async def drive(
    machine: ProcedureMachine,
    devices: Mapping[str, Any],
    say: SayFn,
    time_scale: float = 1.0,
) -> Finish:
    """Run ``machine`` on real devices until it finishes; its ``Finish``.

    Procedure time is wall time divided by ``time_scale`` (1.0 on a lane; benches run
    faster). A command that raises a ``DriverError`` ends its batch: the machine gets a
    ``DeviceFailed`` and decides (the ASM, VMAS and lug-down machines abort).
    """
    loop = asyncio.get_running_loop()
    origin = loop.time()

    def now() -> float:
        return round((loop.time() - origin) / time_scale, 3)

    pending: deque[Event] = deque()
    ticker: Ticker | None = None
    reads: tuple[Read, ...] = ()
    ticks = 0
    actions: Sequence[Action] = machine.start(0.0)
    try:
        while True:
            for action in actions:
                if isinstance(action, Finish):
                    return action
                if isinstance(action, Say):
                    say(action)
                elif isinstance(action, SetClock):
                    reads = action.reads
                    ticker = (
                        None if action.period_s is None else Ticker(action.period_s * time_scale)
                    )
                    ticks = 0
                else:
                    try:
                        value = await _call(devices, action)
                    except DriverError as exc:
                        pending.append(DeviceFailed(now(), action.device, action.method, str(exc)))
                        break
                    if action.reply:
                        pending.append(Reply(now(), action.device, action.method, value))
            if pending:
                actions = machine.handle(pending.popleft())
                continue
            if ticker is None:
                raise RuntimeError(f"{machine.name}: the machine waits for nothing")
            await ticker.tick()
            ticks += 1
            actions = await _sample(machine, devices, reads, ticks, now)
    finally:
        for command in machine.safe_state():
            with contextlib.suppress(DriverError):  # the item's own error is the one reported
                await _call(devices, command)


async def _sample(
    machine: ProcedureMachine,
    devices: Mapping[str, Any],
    reads: tuple[Read, ...],
    ticks: int,
    now: Callable[[], float],
) -> list[Action]:
    t_s = now()
    readings: dict[str, Any] = {}
    for read in reads:
        if (ticks - 1) % read.every:
            continue
        try:
            readings[read.key] = await getattr(devices[read.device], read.method)()
        except DriverError as exc:
            return machine.handle(DeviceFailed(t_s, read.device, read.method, str(exc)))
    return machine.handle(Sample(t_s, readings))
