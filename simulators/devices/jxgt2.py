"""Simulated Jiangxing JXGT2 roller brake tester with weighing (A-frame protocol).

Builds and parses its bytes itself (``simulators.wire.aframe``, from protocols.md §5.1;
nothing of the driver's codec); behaviour comes from the scenario's axle on the
rollers, ``vehicle.axles[position.axle_index]``:

- Power-on: lift up (the vehicle drives in over it), force channels off zero by
  ``ZERO_OFFSET_DAN`` until ZERO (0x62) is sent.
- READ (0x68, weigh): the axle's wheel loads with noise; about 0 kg while the lift is up,
  since the wheels then rest on the lift beam, not on the weighing rollers.
- START (0x66): NAK while the lift is up (interlock); otherwise ack, then one 12-byte
  sample every ``1 / timing.brake_sample_hz`` s: a drag phase (pedal released, each
  wheel at its ``drag_force_dan``), then from the pedal onset (+ the wheel's ``delay_s``)
  a smooth rise to ``max_force_dan`` over ``rise_time_s``; a wheel that ``locks`` falls to
  sliding friction at its peak and the tester stops soon after, otherwise the forces hold
  for ``HOLD_S``; then the 'E' frame. Every phase is scaled by ``timing.time_scale`` but
  the frame rate is not: a compressed test has fewer samples, never faster frames. Noise
  is Gaussian, ``timing.noise`` relative, seeded by ``timing.seed``. While streaming the
  tester does not listen (requests are dropped).
- GET_RESULT (0x6B): maxima and the force pair at the largest difference during the
  growth of the braking force (``growth_summary``), computed from the numbers actually
  streamed; the first read of a new result moves the vehicle on
  (``position.advance()``), as the driver does when the display says "next axle".
- Parking brake: the wire does not say which brake the inspector applies (lane software
  shows "请拉手刹" and sends the same START). We model the routine of that software: after
  the service test of an axle with ``parking_brake``, the vehicle stays on the rollers
  for the parking test (the first read of that result does not move it on). The next
  START with the lift still down streams the parking test (the same drag phase and
  ramps, rising to ``parking_force_*_dan``, no lock-up) and the first read of its
  result moves the vehicle on; a LIFT_UP instead means no parking test: the vehicle
  drives on then.
- LIFT_UP/LIFT_DOWN, TESTER_RAISE/LOWER: ack. Unknown commands and requests with a bad
  checksum: NAK (0x15). Option ``force_unit`` ("daN", "N", "kg") sets the unit sent.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import Any, Final

from simulators.base import SimContext, SimSpec
from simulators.endpoint import SimLink
from simulators.scenario import Axle, Timing, WheelBrake
from simulators.wire import aframe

DRAG_PHASE_S: Final = 2.0  # rollers turning, pedal released, before the inspector brakes
HOLD_S: Final = 1.0  # pedal held at maximum before the tester ends the test
SLIP_STOP_S: Final = 0.5  # a wheel slipped: the tester stops its motors within this
LOCK_FORCE_RATIO: Final = 0.7  # sliding / static friction of a locked wheel
LOCK_DROP_S: Final = 0.05  # how fast the force falls when the wheel locks
ZERO_OFFSET_DAN: Final = 3.0  # force channels' offset until zeroed
NOISE_FLOOR_DAN: Final = 20.0  # noise never shrinks below that of a 20 daN reading
FORCE_RANGE: Final = (-999, 9999)  # what a 4-character field can carry
PARKING_MIN_DAN: Final = 0.1  # a profile needs a positive peak even without a hand brake
#: device force unit -> its value per daN (kgf: Nanhua's KG2DAN 0.98 daN, protocols.md §5.3)
UNIT_PER_DAN: Final[dict[str, float]] = {"daN": 1.0, "N": 10.0, "kg": 1.0 / 0.98}
LOCK_DROP_RATIO: Final = 0.15  # a wheel this far below its running maximum is sliding


@dataclass(frozen=True, slots=True)
class Sample:
    """One streamed sample, forces as the fields carry them (the configured unit)."""

    force_left: int
    force_right: int


@dataclass(frozen=True, slots=True)
class BrakeResult:
    """What the tester keeps for GET_RESULT, in the configured unit."""

    max_force_left: int
    max_force_right: int
    diff_force_left: int
    diff_force_right: int


def growth_summary(left: Sequence[int], right: Sequence[int]) -> BrakeResult:
    """The tester's result: each side's maximum, and the (left, right) pair at the sample
    where |left - right| was largest while the braking force grew (过程差).

    The growth lasts until the later wheel reaches its maximum (its first sample at
    that value), and ends sooner when a wheel locks: a wheel that has reached half its
    maximum and falls more than ``LOCK_DROP_RATIO`` below the highest value it has had
    so far slides; from that sample on its fall is no imbalance of the brakes.
    """
    if not left or not right:
        return BrakeResult(0, 0, 0, 0)
    first_max = [side.index(max(side)) for side in (left, right)]
    end = min(len(left), len(right), max(first_max) + 1)
    for side in (left, right):
        highest = 0
        for i, force in enumerate(side[:end]):
            highest = max(highest, force)
            if 2 * highest >= max(side) and force < (1 - LOCK_DROP_RATIO) * highest:
                end = i
                break
    diffs = [abs(left[i] - right[i]) for i in range(max(1, end))]
    at = diffs.index(max(diffs))
    return BrakeResult(max(left), max(right), left[at], right[at])


@dataclass(frozen=True, slots=True)
class WheelProfile:
    """Brake force of one wheel over (scaled) time since the test started."""

    brake: WheelBrake
    scale: float

    @property
    def onset_s(self) -> float:
        """When this wheel's brake starts to bite."""
        return (DRAG_PHASE_S + self.brake.delay_s) * self.scale

    @property
    def peak_s(self) -> float:
        """When this wheel reaches its maximum force."""
        return self.onset_s + self.brake.rise_time_s * self.scale

    def force_dan(self, t: float) -> float:
        """Noise-free force at ``t`` seconds."""
        brake = self.brake
        if t < self.onset_s:
            return brake.drag_force_dan
        x = (t - self.onset_s) / (self.brake.rise_time_s * self.scale)
        if x < 1.0:  # smoothstep: the pedal is pressed progressively
            rise = brake.max_force_dan - brake.drag_force_dan
            return brake.drag_force_dan + rise * x * x * (3.0 - 2.0 * x)
        if not brake.locks:
            return brake.max_force_dan
        fall = min(1.0, (t - self.peak_s) / (LOCK_DROP_S * self.scale))
        return brake.max_force_dan * (1.0 - (1.0 - LOCK_FORCE_RATIO) * fall)


def parking_brake(brake: WheelBrake, force_dan: float) -> WheelBrake:
    """``brake`` with the hand brake applied instead of the pedal: rises to ``force_dan``
    (never below the drag, which the rollers still feel), without locking."""
    peak = max(force_dan, brake.drag_force_dan, PARKING_MIN_DAN)
    return brake.model_copy(update={"max_force_dan": peak, "locks": False})


def wheel_profiles(
    axle: Axle, scale: float, parking: bool = False
) -> tuple[WheelProfile, WheelProfile]:
    """Left and right wheel profiles of ``axle`` (service brake, or parking brake)."""
    left, right = axle.brake_left, axle.brake_right
    if parking:
        left = parking_brake(left, axle.parking_force_left_dan)
        right = parking_brake(right, axle.parking_force_right_dan)
    return WheelProfile(left, scale), WheelProfile(right, scale)


def stream_duration_s(axle: Axle, scale: float, parking: bool = False) -> float:
    """Length of the stream: to the first slip plus the stop time, or the last peak + hold."""
    wheels = wheel_profiles(axle, scale, parking)
    slips = [wheel.peak_s for wheel in wheels if wheel.brake.locks]
    if slips:
        return min(slips) + SLIP_STOP_S * scale
    return max(wheel.peak_s for wheel in wheels) + HOLD_S * scale


def stream_frame_count(axle: Axle, timing: Timing, parking: bool = False) -> int:
    """How many sample frames (before the 'E' frame) a test of ``axle`` streams."""
    duration = stream_duration_s(axle, timing.time_scale, parking)
    return max(1, round(duration * timing.brake_sample_hz))


class Jxgt2Sim:
    """The simulated tester: one connection at a time, state kept across connections."""

    nak: bytes = bytes((aframe.NAK,))

    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._timing = ctx.scenario.timing
        self._random = random.Random(self._timing.seed)
        unit = str(ctx.options.get("force_unit", "daN"))
        if unit not in UNIT_PER_DAN:
            raise ValueError(f"force_unit must be one of {sorted(UNIT_PER_DAN)}, not {unit!r}")
        self._per_dan = UNIT_PER_DAN[unit]
        self.lift_up = True
        self.zeroed = False
        self.streaming = False
        self.result = BrakeResult(0, 0, 0, 0)
        self._result_fresh = False
        #: the vehicle stays on its parking axle for the parking test (see module doc)
        self.parking_pending = False
        self._pending_vehicle = 0  # position.vehicles when the parking test became due
        #: the last (or current) stream was a parking test
        self.parking_test = False
        #: frames of the last stream (raw device values), for tests and tools
        self.last_stream: list[Sample] = []

    @property
    def axle(self) -> Axle:
        """The axle standing on the rollers."""
        axles = self._ctx.scenario.vehicle.axles
        return axles[self._ctx.position.axle_index % len(axles)]

    async def handle(self, link: SimLink) -> None:
        """Serve one connection: answer requests, stream tests, until cancelled."""
        buf = bytearray()  # line noise is skipped: a real device ignores it
        async with asyncio.TaskGroup() as group:
            while True:
                buf += await link.read()
                for command in aframe.split_requests(buf):
                    if not self.streaming:  # while streaming the tester does not listen
                        await self._answer(link, command, group)

    async def _answer(self, link: SimLink, command: int, group: asyncio.TaskGroup) -> None:
        if command not in aframe.JXGT2_COMMANDS or (command == aframe.START_TEST and self.lift_up):
            await link.send(self.nak)  # also a request with a bad checksum
        elif command == aframe.START_TEST:
            await link.send(aframe.ack(command))
            pending = self.parking_pending and self._same_vehicle()
            self.parking_test, self.parking_pending = pending, False
            self.streaming = True
            group.create_task(self._stream(link))
        elif command == aframe.READ:
            await link.send(aframe.wheel_loads(*self._weigh()))
        elif command == aframe.GET_RESULT:
            await link.send(aframe.brake_result(*astuple(self.result)))
            if self._result_fresh:
                self._result_fresh = False
                self._move_on_after_result()
        else:
            self._set_state(command)
            await link.send(aframe.ack(command))

    def _move_on_after_result(self) -> None:
        """The driver drives on, unless the parking test of this axle comes next."""
        if self.axle.parking_brake and not self.parking_test:
            self.parking_pending = True
            self._pending_vehicle = self._ctx.position.vehicles
        else:
            self._ctx.position.advance()

    def _set_state(self, command: int) -> None:
        if command == aframe.LIFT_UP and self.parking_pending:
            self.parking_pending = False  # no parking test: the vehicle drives on
            if self._same_vehicle():  # (a new vehicle came in meanwhile: it stays)
                self._ctx.position.advance()
        if command in (aframe.LIFT_UP, aframe.LIFT_DOWN):
            self.lift_up = command == aframe.LIFT_UP
        elif command == aframe.ZERO:
            self.zeroed = True

    def _same_vehicle(self) -> bool:
        return self._pending_vehicle == self._ctx.position.vehicles

    def _weigh(self) -> tuple[int, int]:
        """Left and right wheel load (kg) as the tester weighs them now."""
        if self.lift_up:
            return 0, 0
        axle, noise = self.axle, self._timing.noise
        left = self._random.gauss(axle.load_left_kg, noise * axle.load_left_kg)
        right = self._random.gauss(axle.load_right_kg, noise * axle.load_right_kg)
        return max(0, round(left)), max(0, round(right))

    def _raw_force(self, force_dan: float) -> int:
        """A noisy reading of ``force_dan`` in the configured unit, as the field carries it."""
        noisy = self._random.gauss(force_dan, self._timing.noise * (force_dan + NOISE_FLOOR_DAN))
        offset = 0.0 if self.zeroed else ZERO_OFFSET_DAN
        low, high = FORCE_RANGE
        return min(high, max(low, round((max(0.0, noisy) + offset) * self._per_dan)))

    async def _stream(self, link: SimLink) -> None:
        """Stream one test at the device rate, then the 'E' frame; keep its result."""
        try:
            frames = self._sample_frames()
            loop = asyncio.get_running_loop()
            period = 1.0 / self._timing.brake_sample_hz
            started = loop.time()
            for index, frame in enumerate(frames):
                # absolute schedule: a late frame does not push the later ones back
                delay = started + index * period - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await link.send(aframe.force_sample(frame.force_left, frame.force_right))
            await link.send(aframe.stream_end())
            left = [frame.force_left for frame in frames]
            right = [frame.force_right for frame in frames]
            self.result = growth_summary(left, right)
            self._result_fresh = True
        finally:
            self.streaming = False

    def _sample_frames(self) -> list[Sample]:
        parking = self.parking_test
        left, right = wheel_profiles(self.axle, self._timing.time_scale, parking)
        period = 1.0 / self._timing.brake_sample_hz
        self.last_stream = [
            Sample(
                self._raw_force(left.force_dan(index * period)),
                self._raw_force(right.force_dan(index * period)),
            )
            for index in range(stream_frame_count(self.axle, self._timing, parking))
        ]
        return self.last_stream


def _factory(ctx: SimContext) -> Any:
    return Jxgt2Sim(ctx)


SIM = SimSpec(
    protocol="jxgt2",
    kind="stream",
    summary="Jiangxing JXGT2 roller brake tester: weighing, streamed forces, lock-up, result",
    factory=_factory,
)
