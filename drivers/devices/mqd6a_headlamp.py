"""Driver for the Mingquan MQD-6A headlamp tester, framed protocol.

A test as the lane software S4 runs it: settings (lamp system, beams, no aim adjustment,
which beam first), then per side "measure left" / "measure right" while the tester
reports each finished beam with an event, then home, then "get all data" (the 112-byte
dump). Settings and motion commands are not acknowledged (S4 sends them and pauses
300 ms: ``command_gap_s``); measuring waits for the finish events (one bus transaction
per side, ended by the last expected event or an error event); error events become
``DeviceFault`` ("no lamp found", "measurement error"), a NAK ``DeviceRefused``.

Offsets: the tester's unit is not stated (protocols.md §4.1). ``offset_unit`` names it
(default "cm/dam", centimetres at 10 m, numerically the same as mrad) and readings carry
offsets in mm on a screen 10 m ahead, the GB 7258 convention. Codec and choices:
``drivers.protocols.mqd6a`` and docs/protocols/mqd6a.md.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DeviceClass, DriverContext, DriverSpec, Reading
from drivers.errors import DeviceFault, DeviceRefused, UnexpectedResponse
from drivers.protocols.mqd6a import (
    ERROR_REASONS,
    SLOT_EVENTS,
    Command,
    DataDump,
    DataKind,
    Event,
    EventKind,
    LampRecord,
    MainLampData,
    Nak,
    Reply,
    ReplyDecoder,
    Slot,
    encode_request,
)
from drivers.transport import LineSettings

#: tester offset unit -> mm on a screen 10 m ahead (small angles: 1 mrad = 10 mm at 10 m)
OFFSET_TO_MM_AT_10M: Final[dict[str, float]] = {
    "cm/dam": 10.0,
    "mrad": 10.0,
    "mm/10m": 1.0,
    "arcmin": 10_000 * math.tan(math.radians(1 / 60)),
}
LAMP_SYSTEM: Final = {2: Command.TWO_LAMPS, 4: Command.FOUR_LAMPS}
BEAMS: Final = {"high": Command.HIGH_ONLY, "low": Command.LOW_ONLY, "both": Command.HIGH_AND_LOW}
MEASURE: Final = {"left": Command.MEASURE_LEFT, "right": Command.MEASURE_RIGHT}
GET_MAIN: Final = {"left": Command.GET_LEFT_MAIN, "right": Command.GET_RIGHT_MAIN}
MAIN_SLOTS: Final = {
    "left": (Slot.LEFT_MAIN_HIGH, Slot.LEFT_LOW),
    "right": (Slot.RIGHT_MAIN_HIGH, Slot.RIGHT_LOW),
}

Side = Literal["left", "right"]
T = TypeVar("T")
Beams = Literal["high", "low", "both"]


class Mqd6aOptions(BaseModel):
    """Per-installation settings of an MQD-6A (the protocol leaves these open)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offset_unit: Literal["cm/dam", "mrad", "mm/10m", "arcmin"] = Field(
        default="cm/dam", description="unit of the tester's offset fields"
    )
    lamp_system: Literal[2, 4] = Field(default=2, description="default lamp system")
    beams: Beams = Field(default="both", description="default beams to measure")
    high_first: bool = Field(default=True, description="measure the high beam first")
    dump_check: Literal["strict", "lenient"] = Field(
        default="strict", description="check the data replies' marker and checksum bytes"
    )
    status_query: bool = Field(
        default=True, description="poll() asks T 0x6F (our status reply); else no I/O"
    )
    command_gap_s: float = Field(
        default=0.3, ge=0, description="pause after an unacknowledged command (S4: 300 ms)"
    )
    beam_timeout_s: float = Field(
        default=30.0, gt=0, description="longest wait for the next event while measuring"
    )
    home_timeout_s: float = Field(default=30.0, gt=0, description="longest wait for 'homed'")


@dataclass(frozen=True, slots=True)
class LampReading:
    """One measured beam; offsets in mm on a screen 10 m ahead (+ right / up)."""

    slot: str  # left_main_high, left_aux_high, left_low, right_...
    side: Side
    lamp: Literal["main", "aux"]
    beam: Literal["high", "low"]
    intensity_cd: int
    horizontal_offset_mm_at_10m: float
    vertical_offset_mm_at_10m: float
    height_mm: int

    @property
    def height_ratio(self) -> float | None:
        """Beam height at 10 m over lamp height (the "H ratio", e.g. 0.7H-0.9H low beam)."""
        if self.height_mm <= 0:
            return None
        return (self.height_mm + self.vertical_offset_mm_at_10m) / self.height_mm


@dataclass(frozen=True, slots=True)
class HeadlampResult(Reading):
    """Every beam the tester measured (beams it did not measure are absent)."""

    lamps: tuple[LampReading, ...]

    def get(self, slot: Slot) -> LampReading | None:
        """The reading of ``slot``, if measured."""
        name = slot.name.lower()
        return next((lamp for lamp in self.lamps if lamp.slot == name), None)


@dataclass(frozen=True, slots=True)
class HeadlampStatus(Reading):
    """``poll()`` snapshot: the tester's state and the last event this driver saw."""

    state: str  # ready_home, busy, ready_away, or unknown (no status query)
    last_event: str | None


class Mqd6aHeadlampTester:
    """An MQD-6A on a stream bus."""

    device_class: ClassVar[DeviceClass] = DeviceClass.HEADLAMP_TESTER

    def __init__(self, device_id: str, bus: StreamBus, options: Mqd6aOptions | None = None) -> None:
        self.device_id = device_id
        self.options = options or Mqd6aOptions()
        self._bus = bus
        self._to_mm = OFFSET_TO_MM_AT_10M[self.options.offset_unit]
        self.lamp_system: int = self.options.lamp_system  # what measure() expects
        self.beams: Beams = self.options.beams
        self.last_event: EventKind | None = None

    # --- settings and motion (unacknowledged) -------------------------------------------
    async def configure(
        self, lamp_system: Literal[2, 4] | None = None, beams: Beams | None = None
    ) -> None:
        """Send the settings S4 sends before a test: system, beams, no aiming, order."""
        await self.set_lamp_system(lamp_system or self.options.lamp_system)
        await self.set_beams(beams or self.options.beams)
        await self._send(Command.NO_ADJUST_LOW)
        await self._send(Command.NO_ADJUST_HIGH)
        await self._send(Command.HIGH_FIRST if self.options.high_first else Command.LOW_FIRST)

    async def set_lamp_system(self, lamps: Literal[2, 4]) -> None:
        """Two-lamp (one dual-beam lamp per side) or four-lamp system."""
        await self._send(LAMP_SYSTEM[lamps])
        self.lamp_system = lamps

    async def set_beams(self, beams: Beams) -> None:
        """Measure the high beam, the low beam, or both."""
        await self._send(BEAMS[beams])
        self.beams = beams

    async def stop(self) -> None:
        """Stop the measuring head where it is."""
        await self._send(Command.STOP)

    # --- measuring ----------------------------------------------------------------------
    async def measure(self, side: Side | Literal["both"] = "both") -> tuple[EventKind, ...]:
        """Measure one side (or left, then right); returns the finish events seen.

        Raises ``DeviceFault`` on an error event (the head stays where it is: ``home()``),
        ``DeviceRefused`` on a NAK, ``ResponseTimeout`` when an expected event does not come.
        """
        sides: Sequence[Side] = ("left", "right") if side == "both" else (side,)
        done: list[EventKind] = []
        for one in sides:
            done += await self._measure_side(one)
        return tuple(done)

    async def home(self) -> None:
        """Send the head home and wait for the "homed" event."""
        messages = await self._exchange(
            Command.HOME, _ends_with({EventKind.HOMED}), silence=self.options.home_timeout_s
        )
        self._check_events(messages, "home")

    async def read_all(self) -> HeadlampResult:
        """G 0x4F: every record of the last test (the 112-byte dump)."""
        messages = await self._exchange(Command.GET_ALL, _ends_with_data(DataDump), data="dump")
        dump = _data_of(messages, DataDump, self.device_id)
        return HeadlampResult(tuple(self._readings(zip(Slot, dump.records, strict=True))))

    async def read_main_lamp(self, side: Side) -> HeadlampResult:
        """G 0x4C / 0x4D: one side's main lamp, high and low beam (the S6 packet)."""
        messages = await self._exchange(GET_MAIN[side], _ends_with_data(MainLampData), data="main")
        data = _data_of(messages, MainLampData, self.device_id)
        high, low = MAIN_SLOTS[side]
        return HeadlampResult(tuple(self._readings([(high, data.high), (low, data.low)])))

    async def run_test(self, side: Side | Literal["both"] = "both") -> HeadlampResult:
        """The whole S4 sequence: configure, measure, home, read every record."""
        await self.configure()
        await self.measure(side)
        await self.home()
        return await self.read_all()

    async def poll(self) -> HeadlampStatus:
        """Snapshot for the supervisor: the status reply (no action on the tester)."""
        last = self.last_event.name.lower() if self.last_event else None
        if not self.options.status_query:
            return HeadlampStatus("unknown", last)
        messages = await self._exchange(Command.GET_STATUS, _is_status)
        reply = messages[-1]
        if isinstance(reply, Nak):
            raise DeviceRefused(f"{self.device_id}: status query refused (NAK)")
        if not isinstance(reply, Event) or reply.status is None:
            raise UnexpectedResponse(f"{self.device_id}: status query answered {reply!r}")
        return HeadlampStatus(reply.status, last)

    # --- internals ----------------------------------------------------------------------
    def _expected(self) -> set[EventKind]:
        keys = {"high": ["main_high"], "low": ["low"], "both": ["main_high", "low"]}[self.beams]
        if self.lamp_system == 4 and self.beams != "low":
            keys.append("aux_high")
        return {SLOT_EVENTS[key] for key in keys}

    async def _measure_side(self, side: Side) -> list[EventKind]:
        expected = self._expected()
        messages = await self._exchange(
            MEASURE[side], _ends_with(expected), silence=self.options.beam_timeout_s
        )
        return self._check_events(messages, f"measuring the {side} side")

    def _check_events(self, messages: Sequence[Reply], doing: str) -> list[EventKind]:
        """The events among ``messages``; a NAK or an error event raises."""
        kinds: list[EventKind] = []
        for message in messages:
            if isinstance(message, Nak):
                raise DeviceRefused(f"{self.device_id}: {doing}: refused (NAK)")
            if isinstance(message, Event) and (kind := message.kind) is not None:
                self.last_event = kind
                if kind in ERROR_REASONS:
                    raise DeviceFault(f"{self.device_id}: {doing}: {ERROR_REASONS[kind]}")
                kinds.append(kind)
        return kinds

    def _readings(self, records: Iterable[tuple[Slot, LampRecord | None]]) -> list[LampReading]:
        return [self._reading(slot, rec) for slot, rec in records if rec is not None]

    def _reading(self, slot: Slot, record: LampRecord) -> LampReading:
        return LampReading(
            slot=slot.name.lower(),
            side=slot.side,
            lamp=slot.lamp,
            beam=slot.beam,
            intensity_cd=record.intensity_cd,
            horizontal_offset_mm_at_10m=self._mm(record.horizontal_offset),
            vertical_offset_mm_at_10m=self._mm(record.vertical_offset),
            height_mm=record.height_mm,
        )

    def _mm(self, offset: float) -> float:
        return round(offset * self._to_mm, 3) + 0.0  # + 0.0: no "-0.0" in records

    async def _send(self, command: Command) -> None:
        """An unacknowledged command, then the pause the tester needs (S4)."""
        tx: Transaction[Reply] = Transaction(
            encode_request(command), ReplyDecoder(), expect_reply=False
        )
        await self._bus.transact(self.device_id, tx)
        await asyncio.sleep(self.options.command_gap_s)

    async def _exchange(
        self,
        command: Command,
        is_final: Callable[[Reply], bool],
        *,
        data: DataKind = "none",
        silence: float | None = None,
    ) -> list[Reply]:
        decoder = ReplyDecoder(data, strict=self.options.dump_check == "strict")
        tx = Transaction(encode_request(command), decoder, is_final, silence_timeout=silence)
        return await self._bus.transact(self.device_id, tx)


def _ends_with(finish: set[EventKind]) -> Callable[[Reply], bool]:
    """``is_final`` of an action: a NAK, an error event, or the last of ``finish``."""
    remaining = set(finish)

    def is_final(message: Reply) -> bool:
        if isinstance(message, Nak):
            return True
        kind = message.kind if isinstance(message, Event) else None
        if kind is None:
            return False
        remaining.discard(kind)
        return kind in ERROR_REASONS or not remaining

    return is_final


def _ends_with_data(kind: type[DataDump | MainLampData]) -> Callable[[Reply], bool]:
    """``is_final`` of a data request: the data reply or a NAK (events pass over)."""
    return lambda message: isinstance(message, (Nak, kind))


def _is_status(message: Reply) -> bool:
    return isinstance(message, Nak) or (isinstance(message, Event) and message.status is not None)


def _data_of(messages: Sequence[Reply], kind: type[T], device_id: str) -> T:
    reply = messages[-1] if messages else None
    if isinstance(reply, Nak):
        raise DeviceRefused(f"{device_id}: data request refused (NAK)")
    if isinstance(reply, kind):
        return reply
    raise UnexpectedResponse(f"{device_id}: expected {kind.__name__}, got {reply!r}")


def _factory(ctx: DriverContext) -> Mqd6aHeadlampTester:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the mqd6a protocol needs a stream bus")
    options = Mqd6aOptions.model_validate(ctx.options.model_dump())
    return Mqd6aHeadlampTester(ctx.device_id, ctx.bus, options)


SPEC = DriverSpec(
    protocol="mqd6a",
    device_class=DeviceClass.HEADLAMP_TESTER,
    bus_kind="stream",
    summary="Mingquan MQD-6A headlamp tester (framed: measure, events, 112-byte lamp dump)",
    factory=_factory,
    options=Mqd6aOptions,
    default_line=LineSettings(baudrate=2400, bytesize=8, parity="N", stopbits=1),
)
