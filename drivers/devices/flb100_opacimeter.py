"""Driver for the FuLi FLB-100 partial-flow opacimeter (福立, protocols.md §2.1).

Framed requests and replies with a length byte, a command echo and a checksum (codec and
choices: ``drivers.protocols.flb100``, docs/protocols/flb100.md). A reply is taken only
when it echoes the command asked (or is the bare NAK) and nothing follows it in the
burst, so a late or glued reply to another request is skipped, never returned.

Free acceleration as in the manual's sequence: ``linearity_zero()`` with clean air in
the chamber, ``set_mode(Mode.FREE_ACCEL)``, then per acceleration
``trigger_free_acceleration()`` (the inspector floors the pedal) and poll
``read_free_acceleration_result()``: None while the acceleration runs and until the
instrument holds a result (the K average and the last four peak K values). The
steady-state sequence is ``set_mode(Mode.STEADY)``, ``start_steady_measurement()``,
``stop_steady_measurement()``, ``read_steady_result()``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DeviceClass, DriverContext, DriverSpec, Reading
from drivers.errors import DeviceRefused, UnexpectedResponse
from drivers.protocols.flb100 import (
    DID,
    Ack,
    CheckValue,
    Command,
    FreeAccelCurve,
    FreeAccelReply,
    FreeAccelState,
    LastFreeAccel,
    Nak,
    Realtime,
    Response,
    ResponseDecoder,
    StatusFlags,
    StatusReply,
    SteadyResult,
    encode_request,
)
from drivers.transport import LineSettings

R = TypeVar("R")


class Mode(enum.IntEnum):
    """Measuring modes, by the command that selects them."""

    DIRECT = Command.MODE_DIRECT  # real-time opacity
    STEADY = Command.MODE_STEADY  # steady-state (loaded) measurement
    FREE_ACCEL = Command.MODE_FREE_ACCEL  # free-acceleration test


@dataclass(frozen=True, slots=True)
class OpacityReading(Reading):
    """Real-time values: light absorption coefficient, opacity, temperatures, speed."""

    k_m1: float
    n_pct: float
    gas_temp_c: int
    oil_temp_c: int
    engine_speed_rpm: int


@dataclass(frozen=True, slots=True)
class FreeAccelResult(Reading):
    """Free-acceleration result: the K average and the last four peak K (oldest first)."""

    k_avg_m1: float
    k_values_m1: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class SteadyStateResult(Reading):
    """Maxima of the last steady-state measurement."""

    k_m1: float
    n_pct: float
    gas_temp_c: int
    oil_temp_c: int


@dataclass(frozen=True, slots=True)
class LastAcceleration(Reading):
    """Peak K and engine speed of the last free acceleration."""

    k_m1: float
    engine_speed_rpm: int


@dataclass(frozen=True, slots=True)
class AccelerationCurve(Reading):
    """Opacity curve (100 points) of the last free acceleration, with its top speed."""

    n_pct: tuple[float, ...]
    max_rpm: int


def _answers(message: Response, command: Command) -> bool:
    """Whether ``message`` is the reply to ``command`` (a bare NAK answers anything)."""
    if isinstance(message, Nak):
        return message.command in (None, command)
    if isinstance(message, Ack):
        return message.command == command
    replies = {
        StatusReply: Command.STATUS,
        Realtime: Command.REALTIME,
        SteadyResult: Command.STEADY_RESULT,
        FreeAccelReply: Command.FREE_ACCEL_RESULT,
        CheckValue: Command.READ_CHECK_VALUE,
        LastFreeAccel: Command.LAST_FREE_ACCEL,
        FreeAccelCurve: Command.FREE_ACCEL_CURVE,
    }
    return replies.get(type(message)) == command


class Flb100Opacimeter:
    """An FLB-100 opacimeter on a stream bus; ``did`` is its device id (0x02)."""

    device_class: ClassVar[DeviceClass] = DeviceClass.OPACIMETER

    def __init__(self, device_id: str, bus: StreamBus, did: int = DID) -> None:
        self.device_id = device_id
        self.did = did
        self._bus = bus

    # --- readings ---------------------------------------------------------------------

    async def read_status(self) -> StatusFlags:
        """Mode, warm-up and measurement flags (0x01)."""
        return (await self._ask(Command.STATUS, StatusReply)).flags

    async def read_realtime(self) -> OpacityReading:
        """Real-time K, N, gas and oil temperature, engine speed (0x02)."""
        r = await self._ask(Command.REALTIME, Realtime)
        return OpacityReading(r.k_m1, r.n_pct, r.gas_temp_c, r.oil_temp_c, r.engine_speed_rpm)

    async def poll(self) -> OpacityReading:
        """Snapshot for the supervisor: the real-time values, which start nothing."""
        return await self.read_realtime()

    # --- modes and measurements -------------------------------------------------------

    async def set_mode(self, mode: Mode) -> None:
        """Select direct, steady-state or free-acceleration mode (0x06/0x07/0x08)."""
        await self._ask(Command(mode), Ack)

    async def linearity_zero(self) -> None:
        """Linearity correction (zero) with clean air in the chamber (0x05)."""
        await self._ask(Command.LINEARITY_ZERO, Ack)

    async def linearity_check_mode(self) -> None:
        """Enter linearity-check mode, for a reference filter (0x0C)."""
        await self._ask(Command.LINEARITY_CHECK_MODE, Ack)

    async def read_check_value(self) -> float:
        """Opacity N (%) read in linearity-check mode (0x0D)."""
        return (await self._ask(Command.READ_CHECK_VALUE, CheckValue)).n_pct

    async def start_steady_measurement(self) -> None:
        """Start a steady-state measurement (0x0A)."""
        await self._ask(Command.STEADY_START, Ack)

    async def stop_steady_measurement(self) -> None:
        """Stop the steady-state measurement (0x09)."""
        await self._ask(Command.STEADY_STOP, Ack)

    async def read_steady_result(self) -> SteadyStateResult:
        """Maxima of the last steady-state measurement (0x03)."""
        r = await self._ask(Command.STEADY_RESULT, SteadyResult)
        return SteadyStateResult(r.k_m1, r.n_pct, r.gas_temp_c, r.oil_temp_c)

    async def trigger_free_acceleration(self) -> None:
        """Arm the measurement of one free acceleration (0x0B)."""
        await self._ask(Command.FREE_ACCEL_TRIGGER, Ack)

    async def read_free_acceleration_result(self) -> FreeAccelResult | None:
        """The result (0x04), or None while an acceleration runs or none is held yet."""
        reply = await self._ask(Command.FREE_ACCEL_RESULT, FreeAccelReply)
        if reply.state is not FreeAccelState.DONE:
            return None
        return FreeAccelResult(reply.k_avg_m1, reply.k_values_m1)

    async def read_last_acceleration(self) -> LastAcceleration:
        """Peak K and engine speed of the last free acceleration (0x0E)."""
        reply = await self._ask(Command.LAST_FREE_ACCEL, LastFreeAccel)
        return LastAcceleration(reply.k_m1, reply.engine_speed_rpm)

    async def read_acceleration_curve(self) -> AccelerationCurve:
        """Opacity curve of the last free acceleration (0x0F)."""
        reply = await self._ask(Command.FREE_ACCEL_CURVE, FreeAccelCurve)
        return AccelerationCurve(reply.n_pct, reply.max_rpm)

    # --- exchange ---------------------------------------------------------------------

    async def _ask(self, command: Command, expect: type[R]) -> R:
        """One request; the reply is the last message of the burst that answers it."""
        decoder = ResponseDecoder()

        def is_final(message: Response) -> bool:
            return _answers(message, command) and decoder.buffered == 0

        tx = Transaction(encode_request(command, did=self.did), decoder, is_final=is_final)
        reply = (await self._bus.transact(self.device_id, tx))[-1]
        if isinstance(reply, Nak):
            raise DeviceRefused(f"{self.device_id}: {command.name} refused (NAK)")
        if not isinstance(reply, expect):
            raise UnexpectedResponse(f"{self.device_id}: {command.name} answered {reply!r}")
        return reply


def _factory(ctx: DriverContext) -> Flb100Opacimeter:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the flb100 protocol needs a stream bus")
    return Flb100Opacimeter(ctx.device_id, ctx.bus, DID if ctx.address is None else ctx.address)


SPEC = DriverSpec(
    protocol="flb100",
    device_class=DeviceClass.OPACIMETER,
    bus_kind="stream",
    summary="FuLi FLB-100 opacimeter: real time, free acceleration, steady state, linearity",
    factory=_factory,
    default_line=LineSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
)
