"""FA: diesel free acceleration (自由加速法, GB 3847-2018 annex A) on the opacimeter.

States (explicit; see ``TRANSITIONS``)::

    IDLE -> PRECHECK -> ZEROING -> PROBE_IN -> ACCELERATING -> RECOVERING
         -> ACCELERATING ... (purge accelerations, then the recorded ones)
         -> RECOVERING -> PROBE_OUT -> DONE
    ACCELERATING / RECOVERING -> INVALID -> PROBE_OUT -> DONE   (aborted, not failed)

The gateway cannot press the pedal: for each acceleration it arms the opacimeter and
prompts the driver to floor the pedal, then follows the instrument's "accelerating" flag
until the acceleration is over and reads its peak k. The first ``PURGE_COUNT``
accelerations clear the exhaust system and are not judged; the mean of the next
``RECORDED_COUNT`` peaks (ERA) is judged against limit set a or b of ``gb3847-2018``.
Real-time k, opacity, rpm and temperatures are kept at 10 Hz as process data.
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

from drivers.devices.base import DeviceClass
from drivers.devices.flb100_opacimeter import Mode
from drivers.protocols.flb100 import StatusFlags
from gateway.inspection.emissions_calc import (
    OPACITY_COLUMNS,
    OpacitySample,
    agrees,
    free_acceleration_average,
    limit_key,
)
from gateway.inspection.emissions_common import InvalidTest, Ticker, check_order
from gateway.inspection.items import ItemAborted, ItemContext, ItemOutcome, overall
from gateway.inspection.machine import Machine
from gateway.limits import load_table, measured
from gateway.records import Evidence, Measurement, Verdict

TABLE: Final = "gb3847-2018"
METHOD: Final = "free_acceleration"
#: fuels whose engines take this test (a diesel hybrid is tested like a diesel)
FUELS: Final = frozenset({"diesel", "hybrid"})
PURGE_COUNT: Final = 3  # accelerations that clear the exhaust system, not judged
RECORDED_COUNT: Final = 3  # accelerations whose mean is the result (ER1..ER3 -> ERA)
SAMPLE_S: Final = 0.1  # process data at 10 Hz (one regional platform asks for 100 ms)
LIVE_EVERY: Final = 10  # every 10th sample goes out as a live value: about 1 Hz
IDLE_BETWEEN_S: Final = 10.0  # idle after each acceleration before the next one
#: how long the driver has to press and release the pedal after the prompt
ACCEL_TIMEOUT_S: Final = 30.0
#: how far the instrument's stored peaks may differ from those read one by one, m^-1
AGREEMENT_M1: Final = 0.005


class Realtime(Protocol):
    """The opacimeter's real-time values."""

    @property
    def k_m1(self) -> float: ...
    @property
    def n_pct(self) -> float: ...
    @property
    def gas_temp_c(self) -> int: ...
    @property
    def oil_temp_c(self) -> int: ...
    @property
    def engine_speed_rpm(self) -> int: ...


class PeakReading(Protocol):
    """Peak k and top speed of the last acceleration."""

    @property
    def k_m1(self) -> float: ...
    @property
    def engine_speed_rpm(self) -> int: ...


class StoredResult(Protocol):
    """The instrument's own result: the last peaks, oldest first."""

    @property
    def k_values_m1(self) -> tuple[float, ...]: ...


class Opacimeter(Protocol):
    """What this item needs from an opacimeter driver (``flb100``)."""

    async def read_status(self) -> StatusFlags: ...
    async def linearity_zero(self) -> None: ...
    async def set_mode(self, mode: Mode) -> None: ...
    async def trigger_free_acceleration(self) -> None: ...
    async def read_realtime(self) -> Realtime: ...
    async def read_last_acceleration(self) -> PeakReading: ...
    async def read_free_acceleration_result(self) -> StoredResult | None: ...


class State(enum.Enum):
    """Steps of the FA item."""

    IDLE = enum.auto()
    PRECHECK = enum.auto()
    ZEROING = enum.auto()
    PROBE_IN = enum.auto()
    ACCELERATING = enum.auto()
    RECOVERING = enum.auto()
    INVALID = enum.auto()
    PROBE_OUT = enum.auto()
    DONE = enum.auto()


TRANSITIONS: Final = {
    State.IDLE: frozenset({State.PRECHECK}),
    State.PRECHECK: frozenset({State.ZEROING}),
    State.ZEROING: frozenset({State.PROBE_IN}),
    State.PROBE_IN: frozenset({State.ACCELERATING}),
    State.ACCELERATING: frozenset({State.RECOVERING, State.INVALID}),
    State.RECOVERING: frozenset({State.ACCELERATING, State.PROBE_OUT, State.INVALID}),
    State.INVALID: frozenset({State.PROBE_OUT}),
    State.PROBE_OUT: frozenset({State.DONE}),
}


class FreeAccelerationItem:
    """The FA procedure."""

    needs: tuple[DeviceClass, ...] = (DeviceClass.OPACIMETER,)

    async def run(self, ctx: ItemContext) -> ItemOutcome:
        """Run the free-acceleration test and judge ERA (or abort it as invalid)."""
        check_order(ctx, METHOD, FUELS)
        table = load_table(TABLE)
        limit_set = f"{table.name} limit {ctx.order.emission_limit_set}"
        async with ctx.hold(DeviceClass.OPACIMETER) as opacimeter:
            test = _Test(ctx, opacimeter)
            try:
                peaks = await test.run()
            except InvalidTest as exc:
                test.invalid(str(exc))
                return ItemOutcome(
                    Verdict.ABORTED, exc.measurements, reason=str(exc),
                    limit_set=limit_set, evidence=[test.evidence()], name="free acceleration",
                )  # fmt: skip
        era = free_acceleration_average([p.k_m1 for p in peaks])
        key = limit_key("free_accel_k_m1", ctx.order.emission_limit_set)
        judged = table.judge(key, "free_accel_k_avg_m1", era)
        measurements = [judged, *details(peaks, test.samples)]
        ctx.progress("fa_result", f"k average {era:.2f} m⁻¹", k_avg_m1=era)
        return ItemOutcome(
            overall([judged.verdict]), measurements, limit_set=limit_set,
            evidence=[test.evidence()], name="free acceleration",
        )  # fmt: skip


class _Test:
    """One run of the procedure on one opacimeter."""

    def __init__(self, ctx: ItemContext, opacimeter: Opacimeter) -> None:
        self.ctx = ctx
        self.opacimeter = opacimeter
        self.machine = Machine("FA", State.IDLE, TRANSITIONS)
        self.samples: list[OpacitySample] = []
        self._ticker: Ticker | None = None

    async def run(self) -> list[PeakReading]:
        """Every step in order; the recorded accelerations' peaks."""
        await self.prepare()
        recorded: list[PeakReading] = []
        total = PURGE_COUNT + RECORDED_COUNT
        for number in range(1, total + 1):
            phase = "purge" if number <= PURGE_COUNT else "measure"
            peak = await self.accelerate(number, total, phase)
            if phase == "measure":
                recorded.append(peak)
            await self.recover(number)
        await self.check_stored([p.k_m1 for p in recorded])
        self.machine.go(State.PROBE_OUT)
        self.ctx.progress("fa_probe_out", "test complete: remove the probe")
        self.machine.go(State.DONE)
        return recorded

    async def prepare(self) -> None:
        """Warm-up check, zero in clean air, free-acceleration mode, probe in."""
        self.machine.go(State.PRECHECK)
        self.ctx.progress("fa_precheck", "checking the opacimeter")
        if StatusFlags.WARMING_UP in await self.opacimeter.read_status():
            raise ItemAborted("opacimeter warming up")
        self.machine.go(State.ZEROING)
        self.ctx.progress("fa_zeroing", "probe out of the tailpipe: zeroing the opacimeter")
        await self.opacimeter.linearity_zero()
        await self.opacimeter.set_mode(Mode.FREE_ACCEL)
        self.machine.go(State.PROBE_IN)
        self.ctx.progress("fa_probe_in", "insert the probe into the tailpipe; engine at idle")
        self._ticker = Ticker(self.ctx.seconds(SAMPLE_S))

    async def accelerate(self, number: int, total: int, phase: str) -> PeakReading:
        """Arm, prompt, follow the accelerating flag until it is over; the peak."""
        self.machine.go(State.ACCELERATING)
        kind = "purge" if phase == "purge" else "recorded"
        await self.opacimeter.trigger_free_acceleration()
        self.ctx.progress(
            "fa_accelerate", f"acceleration {number}/{total} ({kind}): floor the pedal now",
            acceleration=number, phase=phase,
        )  # fmt: skip
        seen = False
        for _ in range(round(ACCEL_TIMEOUT_S / SAMPLE_S)):
            flags = await self.opacimeter.read_status()
            await self.sample(phase, number)
            if StatusFlags.ACCELERATING in flags:
                seen = True
            elif seen:
                peak = await self.opacimeter.read_last_acceleration()
                k, rpm = peak.k_m1, peak.engine_speed_rpm
                self.ctx.progress(
                    "fa_acceleration_result", f"acceleration {number}: k {k:.2f} m⁻¹, {rpm} r/min",
                    acceleration=number, phase=phase, k_m1=k, rpm=rpm,
                )  # fmt: skip
                return peak
        what = "did not end" if seen else "was not detected"
        raise InvalidTest(f"acceleration {number} {what} within {ACCEL_TIMEOUT_S:.0f} s")

    async def recover(self, number: int) -> None:
        """Release the pedal; the engine idles before the next acceleration."""
        self.machine.go(State.RECOVERING)
        self.ctx.progress("fa_recovering", "release the pedal: idle")
        for _ in range(round(IDLE_BETWEEN_S / SAMPLE_S)):
            await self.sample("idle", number)

    async def check_stored(self, recorded: list[float]) -> None:
        """The instrument's stored peaks must be the ones read after each acceleration."""
        stored = await self.opacimeter.read_free_acceleration_result()
        if stored is None:
            raise InvalidTest("the opacimeter holds no free-acceleration result")
        if not agrees(recorded, stored.k_values_m1, AGREEMENT_M1):
            raise InvalidTest(
                f"the opacimeter's stored peaks {list(stored.k_values_m1)} disagree with "
                f"the accelerations read {recorded}"
            )

    def invalid(self, reason: str) -> None:
        """The test is invalid: say why and stop (the caller aborts the item)."""
        self.machine.go(State.INVALID)  # the table allows it only while accelerating
        self.ctx.progress("fa_invalid", f"test invalid: {reason}")
        self.machine.go(State.PROBE_OUT)
        self.machine.go(State.DONE)

    async def sample(self, phase: str, number: int) -> OpacitySample:
        """Wait for the next tenth of a second, read real time, keep and maybe show it."""
        assert self._ticker is not None, "prepare starts the clock"
        await self._ticker.tick()
        r = await self.opacimeter.read_realtime()
        t_s = round(self._ticker.elapsed() / self.ctx.time_scale, 2)
        sample = OpacitySample(
            t_s, phase, number, r.engine_speed_rpm, r.k_m1, r.n_pct, r.gas_temp_c, r.oil_temp_c
        )
        self.samples.append(sample)
        if len(self.samples) % LIVE_EVERY == 1:
            self.ctx.progress(
                "fa_live", f"{r.engine_speed_rpm} r/min, k {r.k_m1:.2f} m⁻¹",
                phase=phase, acceleration=number, t_s=t_s, rpm=r.engine_speed_rpm,
                k_m1=r.k_m1, n_pct=r.n_pct, oil_temp_c=r.oil_temp_c,
            )  # fmt: skip
        return sample

    def evidence(self) -> Evidence:
        """The process data, stored by hash."""
        document = {
            "method": METHOD,
            "interval_s": SAMPLE_S,
            "time_scale": self.ctx.time_scale,
            "columns": list(OPACITY_COLUMNS),
            "rows": [s.row() for s in self.samples],
            "states": [state.name for state, _ in self.machine.history],
        }
        return self.ctx.evidence.put(
            "emission_process", document, samples=len(self.samples), interval_ms=SAMPLE_S * 1000
        )


def details(peaks: list[PeakReading], samples: list[OpacitySample]) -> list[Measurement]:
    """The recorded peaks (ER1..ER3), their top speeds and the oil temperature."""
    out: list[Measurement] = []
    for i, peak in enumerate(peaks, start=1):
        out.append(measured(f"free_accel_k{i}_m1", peak.k_m1, "m^-1"))
        out.append(measured(f"free_accel_max_rpm{i}", peak.engine_speed_rpm, "r/min"))
    if samples:
        out.append(measured("oil_temp_c", samples[-1].oil_temp_c, "°C"))
    return out
