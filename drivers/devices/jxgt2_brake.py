"""Driver for the Jiangxing JXGT2 loaded roller brake tester (with weighing), A-frame protocol.

A lane runs it as the vendor's own software does (S4): lift down so the wheels rest on
the rollers, weigh (``read_wheel_loads``), start the test (``run_brake_test``): the
tester acknowledges and streams a force sample every 10 ms, first with the pedal released
(the rollers drag the wheels: residual or drag force, 阻滞力), then while the inspector
brakes, until its 'E' frame; then read the tester's own result (``read_result``) and lift
up. Codec and choices: ``drivers.protocols.jx_aframe`` and docs/protocols/jx-aframe.md.

The stream is captured in one bus transaction (nothing else can use the port meanwhile):
every sample is timed, converted to daN and handed to ``on_sample`` as it arrives. The
wire carries no sample counter, so samples are numbered in arrival order and timed at the
device rate (``index / sample_hz``); a frame the decoder had to drop (checksum or
fields) makes the test fail with ``FrameError`` once the stream has ended, as a curve
with a hole is not evidence. The tester's result frame stays readable afterwards.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DeviceClass, DriverContext, DriverSpec, Reading
from drivers.errors import DeviceRefused, FrameError, UnexpectedResponse
from drivers.protocols.jx_aframe import (
    Ack,
    Answer,
    BrakeResultFrame,
    Command,
    ForceSample,
    Nak,
    Reply,
    ReplyDecoder,
    StreamEnd,
    WeightFrame,
    answer_of,
    answers,
    encode_request,
)
from drivers.transport import LineSettings

#: kgf -> daN, the constant Nanhua's lane software uses (protocols.md §5.3, KG2DAN)
KG_TO_DAN: Final = 0.98
#: device force unit -> factor to daN
FORCE_TO_DAN: Final[dict[str, float]] = {"daN": 1.0, "N": 0.1, "kg": KG_TO_DAN}
#: the first samples of a test (pedal released) give the drag reference for onset detection
BASELINE_SAMPLES: Final = 5
#: samples at the end of the stream whose mean is compared with the peak (lock-up)
LOCK_TAIL_SAMPLES: Final = 3


class Jxgt2Options(BaseModel):
    """Per-installation settings of a JXGT2 (the protocol leaves these open)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    force_unit: Literal["daN", "N", "kg"] = Field(
        default="daN", description="unit of the force fields; converted to daN"
    )
    sample_hz: float = Field(default=100.0, gt=0, description="stream rate, for sample times")
    fetch_result: bool = Field(
        default=True, description="after 'E', read the tester's result frame (else: from stream)"
    )
    lift_after_test: bool = Field(default=False, description="lift up after the test (S4 does)")
    onset_threshold_dan: float = Field(
        default=20.0, gt=0, description="rise above the drag that marks the pedal being pressed"
    )
    lock_drop_ratio: float = Field(
        default=0.15, gt=0, lt=1, description="end-of-test fall below the peak read as lock-up"
    )
    stream_silence_s: float = Field(default=5.0, gt=0, description="longest gap in the stream")
    max_test_s: float = Field(default=60.0, gt=0, description="longest whole test")


@dataclass(frozen=True, slots=True)
class WheelLoads(Reading):
    """Static wheel loads of the axle on the rollers."""

    load_left_kg: int
    load_right_kg: int


@dataclass(frozen=True, slots=True)
class BrakeTesterStatus(Reading):
    """``poll()`` snapshot: a weight reading plus the lift state this driver last set."""

    load_left_kg: int
    load_right_kg: int
    lift_up: bool | None  # None until this driver moved the lift


@dataclass(frozen=True, slots=True)
class BrakeMaxima(Reading):
    """The tester's result frame in daN."""

    max_force_left_dan: float
    max_force_right_dan: float
    #: left and right force at the moment their difference was largest while forces grew
    diff_force_left_dan: float
    diff_force_right_dan: float

    @property
    def max_difference_dan(self) -> float:
        """Largest left-right difference during the rise (过程差)."""
        return abs(self.diff_force_left_dan - self.diff_force_right_dan)


@dataclass(frozen=True, slots=True)
class BrakeSample:
    """One streamed sample; ``braking`` is False in the drag phase (pedal released)."""

    index: int
    t_s: float  # device time, index / sample_hz
    received_s: float  # monotonic time since the start command was queued
    force_left_dan: float
    force_right_dan: float
    braking: bool


@dataclass(frozen=True, slots=True)
class BrakeTestResult(Reading):
    """A whole test: maxima, drag, lock-up and every sample."""

    max_force_left_dan: float
    max_force_right_dan: float
    diff_force_left_dan: float
    diff_force_right_dan: float
    maxima_source: Literal["device", "stream"]
    drag_force_left_dan: float  # mean over the drag phase
    drag_force_right_dan: float
    braking_onset_index: int | None  # first braking sample; None if the pedal never moved
    locked_left: bool
    locked_right: bool
    samples: tuple[BrakeSample, ...]

    @property
    def max_difference_dan(self) -> float:
        """Largest left-right difference during the rise (过程差)."""
        return abs(self.diff_force_left_dan - self.diff_force_right_dan)


def growth_phase_summary(
    left: Sequence[float], right: Sequence[float], lock_drop_ratio: float = 0.15
) -> tuple[float, float, float, float]:
    """Max left, max right, and the (left, right) pair whose difference peaked while forces grew.

    The growth phase (制动力增长全过程) runs to the sample where the later side reaches its
    maximum, and ends earlier when a wheel locks: once a side has fallen more than
    ``lock_drop_ratio`` below its own running maximum it is sliding, no longer building
    up, so its fall does not count as an imbalance.
    """
    if not left or not right:
        return 0.0, 0.0, 0.0, 0.0
    peak_left = max(range(len(left)), key=left.__getitem__)
    peak_right = max(range(len(right)), key=right.__getitem__)
    end = min(len(left), len(right), max(peak_left, peak_right) + 1)
    keep = 1.0 - lock_drop_ratio
    for side, peak in ((left, left[peak_left]), (right, right[peak_right])):
        top = 0.0
        for i in range(end):
            top = max(top, side[i])
            # only near its peak can a wheel lock; below, a dip is noise on the drag
            if top >= peak / 2 and side[i] < keep * top:
                end = i  # this wheel locked here: the build-up is over
                break
    at = max(range(max(1, end)), key=lambda i: abs(left[i] - right[i]))
    return left[peak_left], right[peak_right], left[at], right[at]


def _locked(forces: Sequence[float], ratio: float, threshold: float) -> bool:
    """Whether a side ended well below its peak: the wheel slipped (or the pedal let go)."""
    if len(forces) < LOCK_TAIL_SAMPLES:
        return False
    peak = max(forces)
    tail = statistics.fmean(forces[-LOCK_TAIL_SAMPLES:])
    return peak > threshold and tail < (1.0 - ratio) * peak


class _StreamCapture:
    """Collects one test's stream as it is decoded (runs inside the bus task)."""

    def __init__(
        self, options: Jxgt2Options, on_sample: Callable[[BrakeSample], None] | None
    ) -> None:
        self._scale = FORCE_TO_DAN[options.force_unit]
        self._options = options
        self._on_sample = on_sample
        self._t0 = time.perf_counter()
        self._baseline: tuple[float, float] | None = None
        self.samples: list[BrakeSample] = []
        self.onset: int | None = None
        self.acknowledged = False

    def on_message(self, message: Reply) -> None:
        """Record a sample (or the start acknowledgement); other frames are stale."""
        if isinstance(message, Ack) and message.command == Command.START and not self.samples:
            self.acknowledged = True
        if not isinstance(message, ForceSample):
            return
        left, right = message.force_left * self._scale, message.force_right * self._scale
        index = len(self.samples)
        sample = BrakeSample(
            index,
            index / self._options.sample_hz,
            time.perf_counter() - self._t0,
            left,
            right,
            self._is_braking(index, left, right),
        )
        self.samples.append(sample)
        if self._on_sample is not None:
            self._on_sample(sample)

    def is_final(self, message: Reply) -> bool:
        """The 'E' frame ends the test; a NAK ends it only in place of the start ack."""
        if isinstance(message, Nak):
            return not (self.acknowledged or self.samples)
        return isinstance(message, StreamEnd)

    def _is_braking(self, index: int, left: float, right: float) -> bool:
        if self.onset is not None:
            return True
        if index == BASELINE_SAMPLES:
            head = self.samples[:BASELINE_SAMPLES]
            self._baseline = (
                statistics.median(s.force_left_dan for s in head),
                statistics.median(s.force_right_dan for s in head),
            )
        if self._baseline is None:
            return False
        threshold = self._options.onset_threshold_dan
        if left - self._baseline[0] > threshold or right - self._baseline[1] > threshold:
            self.onset = index
            return True
        return False

    def result(self, maxima: BrakeMaxima, source: Literal["device", "stream"]) -> BrakeTestResult:
        """Assemble the test result around ``maxima``."""
        drag = self.samples[: self.onset] if self.onset is not None else self.samples
        braking = self.samples[len(drag) :]
        ratio, threshold = self._options.lock_drop_ratio, self._options.onset_threshold_dan
        return BrakeTestResult(
            maxima.max_force_left_dan,
            maxima.max_force_right_dan,
            maxima.diff_force_left_dan,
            maxima.diff_force_right_dan,
            source,
            statistics.fmean(s.force_left_dan for s in drag) if drag else 0.0,
            statistics.fmean(s.force_right_dan for s in drag) if drag else 0.0,
            self.onset,
            _locked([s.force_left_dan for s in braking], ratio, threshold),
            _locked([s.force_right_dan for s in braking], ratio, threshold),
            tuple(self.samples),
        )

    def maxima(self) -> BrakeMaxima:
        """The maxima computed from the stream (when the result frame is not fetched)."""
        left = [s.force_left_dan for s in self.samples]
        right = [s.force_right_dan for s in self.samples]
        return BrakeMaxima(*growth_phase_summary(left, right, self._options.lock_drop_ratio))


@dataclass(frozen=True, slots=True)
class ForceReading(Reading):
    """The two force channels at one streamed sample, in daN."""

    force_left_dan: float
    force_right_dan: float


class Jxgt2BrakeTester:
    """A JXGT2 roller brake tester with weighing, on a stream bus."""

    device_class: ClassVar[DeviceClass] = DeviceClass.BRAKE_TESTER
    #: channels only the test stream carries (``read_forces``), not ``poll()``
    stream_channels: ClassVar[frozenset[str]] = frozenset({"force_left_dan", "force_right_dan"})

    def __init__(self, device_id: str, bus: StreamBus, options: Jxgt2Options | None = None) -> None:
        self.device_id = device_id
        self.options = options or Jxgt2Options()
        self._bus = bus
        self._scale = FORCE_TO_DAN[self.options.force_unit]
        self._lift_up: bool | None = None

    async def lift_up(self) -> None:
        """Raise the lift between the rollers (vehicle drives on or off)."""
        await self._ask(Command.LIFT_UP, Ack)
        self._lift_up = True

    async def lift_down(self) -> None:
        """Lower the lift: the wheels rest on the rollers, ready to weigh and test."""
        await self._ask(Command.LIFT_DOWN, Ack)
        self._lift_up = False

    async def zero(self) -> None:
        """Zero the force display."""
        await self._ask(Command.ZERO, Ack)

    async def raise_tester(self) -> None:
        """Raise the whole tester (0x70)."""
        await self._ask(Command.TESTER_RAISE, Ack)

    async def lower_tester(self) -> None:
        """Lower the whole tester (0x71)."""
        await self._ask(Command.TESTER_LOWER, Ack)

    async def read_wheel_loads(self) -> WheelLoads:
        """Weigh the axle on the rollers (command 0x68, one reading)."""
        frame = await self._ask(Command.READ, WeightFrame)
        return WheelLoads(frame.load_left_kg, frame.load_right_kg)

    async def read_result(self) -> BrakeMaxima:
        """The tester's result frame of the last test, in daN."""
        frame = await self._ask(Command.GET_RESULT, BrakeResultFrame)
        return self._maxima(frame)

    async def poll(self) -> BrakeTesterStatus:
        """Snapshot for the supervisor: a weighing read, which moves nothing on the tester."""
        loads = await self.read_wheel_loads()
        return BrakeTesterStatus(loads.load_left_kg, loads.load_right_kg, self._lift_up)

    async def run_brake_test(
        self, on_sample: Callable[[BrakeSample], None] | None = None
    ) -> BrakeTestResult:
        """Start a test and capture its whole stream; ``on_sample`` sees each sample live.

        ``on_sample`` runs inside the bus task at the device rate: keep it short and do
        not raise from it. Raises ``DeviceRefused`` (start NAKed, e.g. lift still up),
        ``FrameError`` (stream frames were corrupted: the curve has gaps),
        ``UnexpectedResponse`` (start not acknowledged, empty stream), ``ResponseTimeout``
        (stream stalled longer than ``stream_silence_s``).
        """
        options = self.options
        decoder = ReplyDecoder()
        capture = _StreamCapture(options, on_sample)
        tx = Transaction(
            encode_request(Command.START),
            decoder,
            is_final=capture.is_final,
            on_message=capture.on_message,
            silence_timeout=options.stream_silence_s,
            total_timeout=options.max_test_s,
        )
        messages = await self._bus.transact(self.device_id, tx)
        _check_stream(messages, decoder.rejected_frames, capture)
        if options.fetch_result:
            result = capture.result(await self.read_result(), "device")
        else:
            result = capture.result(capture.maxima(), "stream")
        if options.lift_after_test:
            await self.lift_up()
        return result

    async def read_forces(self) -> list[ForceReading]:
        """What the force sensors read with no brake applied: lift down, one test stream,
        the samples before any braking onset (all of them when nothing brakes: empty
        rollers for a zero, or a calibration lever's steady load for a span).

        The tester's result frame is not read (the lane's vehicle sequence is not moved
        on). Raises as ``run_brake_test`` does.
        """
        await self.lift_down()
        decoder = ReplyDecoder()
        capture = _StreamCapture(self.options, None)
        tx = Transaction(
            encode_request(Command.START),
            decoder,
            is_final=capture.is_final,
            on_message=capture.on_message,
            silence_timeout=self.options.stream_silence_s,
            total_timeout=self.options.max_test_s,
        )
        messages = await self._bus.transact(self.device_id, tx)
        _check_stream(messages, decoder.rejected_frames, capture)
        onset = capture.onset
        steady = capture.samples if onset is None else capture.samples[:onset]
        return [ForceReading(s.force_left_dan, s.force_right_dan) for s in steady]

    def _maxima(self, frame: BrakeResultFrame) -> BrakeMaxima:
        scale = self._scale
        return BrakeMaxima(
            frame.max_force_left * scale,
            frame.max_force_right * scale,
            frame.diff_force_left * scale,
            frame.diff_force_right * scale,
        )

    async def _ask(self, command: Command, expect: type[Answer]) -> Answer:
        tx = Transaction(encode_request(command), ReplyDecoder(), is_final=answers(command, expect))
        return answer_of(await self._bus.transact(self.device_id, tx), command, expect)


def _check_stream(messages: list[Reply], rejected: int, capture: _StreamCapture) -> None:
    """Refuse a test whose exchange was not: ack, samples, 'E', with nothing dropped."""
    if messages and isinstance(messages[-1], Nak):
        raise DeviceRefused("start of brake test refused (NAK): is the lift down?")
    if rejected:
        raise FrameError(
            f"{rejected} brake stream frame(s) dropped as corrupt: the curve has gaps "
            "(the tester's result can still be read with read_result())"
        )
    if not capture.acknowledged:
        raise UnexpectedResponse("brake stream arrived without the start acknowledgement")
    if not capture.samples:
        raise UnexpectedResponse("brake test ended without a single sample")


def _factory(ctx: DriverContext) -> Jxgt2BrakeTester:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the jxgt2 protocol needs a stream bus")
    return Jxgt2BrakeTester(
        ctx.device_id, ctx.bus, Jxgt2Options.model_validate(ctx.options.model_dump())
    )


SPEC = DriverSpec(
    protocol="jxgt2",
    device_class=DeviceClass.BRAKE_TESTER,
    bus_kind="stream",
    summary="Jiangxing JXGT2 roller brake tester with weighing (A-frame, streamed forces)",
    factory=_factory,
    options=Jxgt2Options,
    default_line=LineSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
)
