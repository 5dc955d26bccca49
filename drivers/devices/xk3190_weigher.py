"""Driver for a Yaohua XK3190 weighing indicator on a lane's axle-weighing plate.

An axle plate is load cells plus a commodity indicator (protocols.md §5.4). A lane has
either one indicator per wheel plate or one for the whole axle, so each indicator is one
device and its ``side`` option ("left", "right" or "axle") says what its weight is; the
gateway pairs a left and a right device into wheel loads.

Two line modes (option ``mode``, set on the indicator too):

- ``continuous`` (tF=0): the indicator streams a frame every ~100 ms; the driver listens
  (an empty-request transaction) and never writes. Frames the decoder drops are counted
  by the bus; the value handed up is always one of a checksum-valid frame.
- ``command``: the driver asks (B gross, C tare, D net, A handshake) at the indicator's
  address; a reply from another address or for another command is passed over.

The protocol has no stable flag, no overload frame and no zero or tare command (the
keypad does that), so stability is decided here: ``samples`` successive readings whose
spread is within ``stable_tolerance_kg``. Codec and choices:
``drivers.protocols.xk3190`` and docs/protocols/xk3190.md.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DeviceClass, DriverContext, DriverSpec, Reading
from drivers.errors import (
    DeviceRefused,
    LocalProtocolError,
    ResponseTimeout,
    UnexpectedResponse,
)
from drivers.protocols.xk3190 import (
    Command,
    CommandReply,
    ContinuousFrame,
    Nak,
    Reply,
    ReplyDecoder,
    Weight,
    address_letter,
    encode_request,
)
from drivers.transport import LineSettings

#: display unit -> factor to kg (the frames carry no unit; the indicator's setting does)
UNIT_TO_KG: Final[dict[str, float]] = {"kg": 1.0, "t": 1000.0}

Side = Literal["left", "right", "axle"]


class Xk3190Options(BaseModel):
    """Per-installation settings of an XK3190 (the protocol leaves these open)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["continuous", "command"] = Field(
        default="continuous", description="indicator output mode: tF=0 stream or command mode"
    )
    address: str = Field(
        default="A", pattern="^[A-Z]$", description="command-mode address letter (1 = 'A')"
    )
    side: Side = Field(default="axle", description="what the plate weighs: one wheel or the axle")
    unit: Literal["kg", "t"] = Field(default="kg", description="the indicator's display unit")
    samples: int = Field(
        default=5, ge=1, le=50, description="readings per verdict (5 = 0.5 s of tF=0 frames)"
    )
    stable_tolerance_kg: float = Field(
        default=10.0, ge=0, description="largest spread of `samples` readings called stable"
    )
    command_poll_s: float = Field(
        default=0.1, ge=0, description="pause between reads while weigh() waits (command mode)"
    )


@dataclass(frozen=True, slots=True)
class WeightReading(Reading):
    """The plate's weight; ``stable`` when the last readings agreed within tolerance."""

    weight_kg: float
    side: Side
    stable: bool
    spread_kg: float  # max - min of the readings the verdict rests on


class StabilityWindow:
    """The last ``size`` weights and whether they agree within ``tolerance_kg``."""

    def __init__(self, size: int, tolerance_kg: float, min_kg: float = float("-inf")) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._tolerance = tolerance_kg
        self._min = min_kg

    def push(self, weight_kg: float) -> bool:
        """Add a reading; True once the window is full, agrees and is at least ``min_kg``."""
        self._values.append(weight_kg)
        return self.full and self.spread_kg <= self._tolerance and weight_kg >= self._min

    @property
    def full(self) -> bool:
        """Whether ``size`` readings have been seen."""
        return len(self._values) == self._values.maxlen

    @property
    def spread_kg(self) -> float:
        """Largest minus smallest reading in the window."""
        return max(self._values) - min(self._values) if self._values else 0.0

    def reading(self, side: Side) -> WeightReading:
        """The window as a reading (the latest value, the window's verdict)."""
        stable = self.full and self.spread_kg <= self._tolerance
        return WeightReading(self._values[-1], side, stable, round(self.spread_kg, 6))


class Xk3190Weigher:
    """One XK3190 indicator (one wheel plate, or a whole axle) on a stream bus."""

    device_class: ClassVar[DeviceClass] = DeviceClass.AXLE_WEIGHER

    def __init__(
        self, device_id: str, bus: StreamBus, options: Xk3190Options | None = None
    ) -> None:
        self.device_id = device_id
        self.options = options or Xk3190Options()
        self._bus = bus
        self._to_kg = UNIT_TO_KG[self.options.unit]

    # --- domain API ---------------------------------------------------------------------
    async def read_weight(self) -> WeightReading:
        """The current weight: ``samples`` readings, the last one with their verdict."""
        window = self._window()
        if self.options.mode == "continuous":
            frames = await self._listen(self.options.samples)
            values = [self._kg(frame.weight) for frame in frames]
        else:
            values = []
            for _ in range(self.options.samples):
                values.append(await self.read_gross_kg())
        for value in values:
            window.push(value)
        return window.reading(self.options.side)

    async def weigh(
        self,
        timeout: float,
        *,
        min_kg: float = 0.0,
        on_weight: Callable[[float], None] | None = None,
    ) -> WeightReading:
        """Wait until the weight settles (``samples`` readings within tolerance, >= min_kg).

        ``on_weight`` sees every reading as it comes (a live display). Raises
        ``ResponseTimeout`` when the weight does not settle within ``timeout`` seconds.
        """
        window = self._window(min_kg)
        if self.options.mode == "continuous":
            await self._settle_stream(window, timeout, on_weight)
            return window.reading(self.options.side)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await self.read_gross_kg()
            if on_weight is not None:
                on_weight(value)
            if window.push(value):
                return window.reading(self.options.side)
            if loop.time() + self.options.command_poll_s > deadline:
                raise ResponseTimeout(f"{self.device_id}: weight not stable within {timeout} s")
            await asyncio.sleep(self.options.command_poll_s)

    async def handshake(self) -> None:
        """Command A: the indicator at our address answers (command mode)."""
        await self._ask(Command.HANDSHAKE)

    async def read_gross_kg(self) -> float:
        """Command B: gross weight in kg (command mode)."""
        return self._kg(await self._ask_weight(Command.GROSS))

    async def read_tare_kg(self) -> float:
        """Command C: tare in kg (command mode; set on the keypad)."""
        return self._kg(await self._ask_weight(Command.TARE))

    async def read_net_kg(self) -> float:
        """Command D: net weight in kg (command mode)."""
        return self._kg(await self._ask_weight(Command.NET))

    async def poll(self) -> WeightReading:
        """Snapshot for the supervisor: a weight read, which changes nothing on the device."""
        return await self.read_weight()

    # --- internals ----------------------------------------------------------------------
    def _window(self, min_kg: float = float("-inf")) -> StabilityWindow:
        return StabilityWindow(self.options.samples, self.options.stable_tolerance_kg, min_kg)

    def _kg(self, weight: Weight) -> float:
        return round(weight.value * self._to_kg, 6)

    async def _listen(self, count: int) -> list[ContinuousFrame]:
        """The next ``count`` frames of the stream."""
        seen = 0

        def is_final(message: Reply) -> bool:
            nonlocal seen
            seen += isinstance(message, ContinuousFrame)
            return seen >= count

        tx = Transaction(b"", ReplyDecoder(), is_final=is_final)
        messages = await self._bus.transact(self.device_id, tx)
        return _frames(messages)

    async def _settle_stream(
        self, window: StabilityWindow, timeout: float, on_weight: Callable[[float], None] | None
    ) -> None:
        settled = False

        def is_final(message: Reply) -> bool:
            nonlocal settled
            if not isinstance(message, ContinuousFrame):
                return False
            value = self._kg(message.weight)
            if on_weight is not None:
                on_weight(value)
            settled = window.push(value)
            return settled

        tx = Transaction(b"", ReplyDecoder(), is_final=is_final, total_timeout=timeout)
        try:
            await self._bus.transact(self.device_id, tx)
        except ResponseTimeout as exc:
            raise ResponseTimeout(f"{self.device_id}: weight not stable ({exc})") from None

    async def _ask(self, command: Command) -> CommandReply:
        if self.options.mode != "command":
            raise LocalProtocolError(f"{self.device_id}: command {command} needs command mode")
        address = self.options.address

        def is_final(message: Reply) -> bool:
            return isinstance(message, Nak) or (
                isinstance(message, CommandReply)
                and message.address == address
                and message.command == command
            )

        tx = Transaction(encode_request(address, command), ReplyDecoder(), is_final=is_final)
        messages = await self._bus.transact(self.device_id, tx)
        reply = messages[-1] if messages else None
        if isinstance(reply, Nak):
            raise DeviceRefused(f"{self.device_id}: command {command} refused (NAK)")
        if isinstance(reply, CommandReply):
            return reply
        raise UnexpectedResponse(f"{self.device_id}: command {command}: got {reply!r}")

    async def _ask_weight(self, command: Command) -> Weight:
        reply = await self._ask(command)
        if reply.weight is None:  # the codec guarantees it for B/C/D; kept for the type
            raise UnexpectedResponse(f"{self.device_id}: command {command} without a weight")
        return reply.weight


def _frames(messages: Sequence[Reply]) -> list[ContinuousFrame]:
    return [message for message in messages if isinstance(message, ContinuousFrame)]


def _factory(ctx: DriverContext) -> Xk3190Weigher:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the xk3190 protocol needs a stream bus")
    options = Xk3190Options.model_validate(ctx.options.model_dump())
    if ctx.address is not None:
        letter = address_letter(ctx.address)
        if "address" in ctx.options.model_fields_set and options.address != letter:
            raise ValueError(
                f"{ctx.device_id}: address {ctx.address} is {letter!r}, "
                f"but options.address is {options.address!r}"
            )
        options = options.model_copy(update={"address": letter})
    return Xk3190Weigher(ctx.device_id, ctx.bus, options)


SPEC = DriverSpec(
    protocol="xk3190",
    device_class=DeviceClass.AXLE_WEIGHER,
    bus_kind="stream",
    summary="Yaohua XK3190 weighing indicator (tF=0 stream or command mode), axle/wheel plate",
    factory=_factory,
    options=Xk3190Options,
    default_line=LineSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
)
