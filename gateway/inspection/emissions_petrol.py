"""TSI: petrol two-speed idle (双怠速法, GB 18285-2018 annex A) on the gas analyser.

States (explicit; see ``TRANSITIONS``)::

    IDLE -> PRECHECK -> ZEROING -> PROBE_IN -> TO_HIGH_IDLE -> HIGH_IDLE_STABILISING
         -> HIGH_IDLE_MEASURING -> TO_IDLE -> IDLE_STABILISING -> IDLE_MEASURING
         -> PROBE_OUT -> DONE
    TO_HIGH_IDLE .. IDLE_MEASURING -> INVALID -> PROBE_OUT -> DONE
                                  (speed out of band, diluted sample: aborted, not failed)

The gateway cannot set the engine speed: it prompts the driver ("hold high idle") and
waits until the analyser's rpm pickup shows the band. Each speed is then held 15 s to
stabilise and averaged over 30 s of per-second samples (CO, HC, CO2, O2, λ, rpm, oil
temperature). CO and HC of both speeds and λ at high idle are judged against limit set a
or b of ``gb18285-2018`` (the order's ``emission_limit_set``). A window whose CO+CO2 is
below the dilution minimum, or an engine speed outside its band, makes the test invalid:
the item is aborted with the reason (never failed) and keeps its process data.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass
from typing import Final, Protocol

from drivers.devices.base import DeviceClass
from drivers.errors import DriverError
from drivers.protocols.nha503 import AnalyserStatus
from gateway.inspection.emissions_calc import (
    GAS_COLUMNS,
    GasSample,
    WindowMeans,
    high_idle_band_key,
    in_band,
    limit_key,
    window,
    window_means,
)
from gateway.inspection.emissions_common import InvalidTest, Ticker, check_order
from gateway.inspection.items import ItemAborted, ItemContext, ItemOutcome, overall
from gateway.inspection.machine import Machine
from gateway.limits import LimitTable, load_table, measured
from gateway.records import Evidence, Measurement, Verdict

TABLE: Final = "gb18285-2018"
METHOD: Final = "two_speed_idle"
#: fuels whose engines take this test (a petrol hybrid is tested like a petrol car)
FUELS: Final = frozenset({"petrol", "hybrid"})
#: longest wait for the pump-off on the way out of an item, seconds (a bound, not a step)
CLEANUP_TIMEOUT_S: Final = 3.0
STABILISE_S: Final = 15.0  # after reaching each speed, before averaging (annex A)
MEASURE_S: Final = 30.0  # averaging window of each speed (annex A)
SAMPLE_S: Final = 1.0  # process data and live values: once a second
#: how long the driver has to bring the engine into a speed band (standard silent)
REACH_TIMEOUT_S: Final = 60.0


def _live_values(g: GasReading) -> dict[str, float]:
    """One second of gases as ``lanegw monitor`` shows it while the item holds the analyser."""
    return {
        "hc_ppm": g.hc_ppm, "co_pct_vol": g.co_pct_vol, "co2_pct_vol": g.co2_pct_vol,
        "o2_pct_vol": g.o2_pct_vol, "engine_speed_rpm": g.engine_speed_rpm,
        "oil_temp_c": g.oil_temp_c, "lambda_": g.lambda_,
    }  # fmt: skip


class GasReading(Protocol):
    """What this item reads from the analyser each second."""

    @property
    def hc_ppm(self) -> int: ...
    @property
    def co_pct_vol(self) -> float: ...
    @property
    def co2_pct_vol(self) -> float: ...
    @property
    def o2_pct_vol(self) -> float: ...
    @property
    def engine_speed_rpm(self) -> int: ...
    @property
    def oil_temp_c(self) -> float: ...
    @property
    def lambda_(self) -> float: ...


class GasAnalyser(Protocol):
    """What this item needs from a gas analyser driver (``nha503``)."""

    async def read_status(self) -> AnalyserStatus: ...
    async def warmup_remaining_s(self) -> int: ...
    async def zero(self) -> None: ...
    async def pump_on(self) -> None: ...
    async def pump_off(self) -> None: ...
    async def read_gases(self) -> GasReading: ...


class State(enum.Enum):
    """Steps of the TSI item."""

    IDLE = enum.auto()
    PRECHECK = enum.auto()
    ZEROING = enum.auto()
    PROBE_IN = enum.auto()
    TO_HIGH_IDLE = enum.auto()
    HIGH_IDLE_STABILISING = enum.auto()
    HIGH_IDLE_MEASURING = enum.auto()
    TO_IDLE = enum.auto()
    IDLE_STABILISING = enum.auto()
    IDLE_MEASURING = enum.auto()
    INVALID = enum.auto()
    PROBE_OUT = enum.auto()
    DONE = enum.auto()


TRANSITIONS: Final = {
    State.IDLE: frozenset({State.PRECHECK}),
    State.PRECHECK: frozenset({State.ZEROING}),
    State.ZEROING: frozenset({State.PROBE_IN}),
    State.PROBE_IN: frozenset({State.TO_HIGH_IDLE}),
    State.TO_HIGH_IDLE: frozenset({State.HIGH_IDLE_STABILISING, State.INVALID}),
    State.HIGH_IDLE_STABILISING: frozenset({State.HIGH_IDLE_MEASURING, State.INVALID}),
    State.HIGH_IDLE_MEASURING: frozenset({State.TO_IDLE, State.INVALID}),
    State.TO_IDLE: frozenset({State.IDLE_STABILISING, State.INVALID}),
    State.IDLE_STABILISING: frozenset({State.IDLE_MEASURING, State.INVALID}),
    State.IDLE_MEASURING: frozenset({State.PROBE_OUT, State.INVALID}),
    State.INVALID: frozenset({State.PROBE_OUT}),
    State.PROBE_OUT: frozenset({State.DONE}),
}


@dataclass(frozen=True, slots=True)
class Speed:
    """One of the two engine speeds: its band and its three states."""

    name: str  # "high_idle" / "idle": prefix of phases and measurement names
    label: str
    prompt: str  # what the driver is asked to do; "{nominal}" is the band's middle
    band_key: str
    reach: State
    stabilise: State
    measure: State


class TwoSpeedIdleItem:
    """The TSI procedure."""

    needs: tuple[DeviceClass, ...] = (DeviceClass.GAS_ANALYSER,)

    async def run(self, ctx: ItemContext) -> ItemOutcome:
        """Run the two-speed idle test and judge it (or abort it as invalid)."""
        check_order(ctx, METHOD, FUELS)
        table = load_table(TABLE)
        limit_set = f"{table.name} limit {ctx.order.emission_limit_set}"
        async with ctx.hold(DeviceClass.GAS_ANALYSER) as analyser:
            test = _Test(ctx, analyser, table)
            try:
                measurements = await test.run()
            except InvalidTest as exc:
                await test.invalid(str(exc))
                return ItemOutcome(
                    Verdict.ABORTED, exc.measurements, reason=str(exc),
                    limit_set=limit_set, evidence=[test.evidence()], name="two-speed idle",
                )  # fmt: skip
            finally:
                await test.stop_pump()  # whatever happened, do not leave the pump running
        verdict = overall([m.verdict for m in measurements])
        return ItemOutcome(
            verdict, measurements, limit_set=limit_set, evidence=[test.evidence()],
            name="two-speed idle",
        )  # fmt: skip


class _Test:
    """One run of the procedure on one analyser."""

    def __init__(self, ctx: ItemContext, analyser: GasAnalyser, table: LimitTable) -> None:
        self.ctx = ctx
        self.analyser = analyser
        self.table = table
        self.machine = Machine("TSI", State.IDLE, TRANSITIONS)
        self.samples: list[GasSample] = []
        self.pumping = False
        self._ticker: Ticker | None = None
        self.high = Speed(
            "high_idle", "high idle", "hold high idle {nominal} r/min",
            high_idle_band_key(ctx.order.gross_mass_kg),
            State.TO_HIGH_IDLE, State.HIGH_IDLE_STABILISING, State.HIGH_IDLE_MEASURING,
        )  # fmt: skip
        self.idle = Speed(
            "idle", "idle", "release the pedal: idle", "tsi_idle_rpm",
            State.TO_IDLE, State.IDLE_STABILISING, State.IDLE_MEASURING,
        )  # fmt: skip

    async def run(self) -> list[Measurement]:
        """Every step in order; the judged measurements."""
        await self.precheck()
        self.machine.go(State.ZEROING)
        self.ctx.progress("tsi_zeroing", "zeroing the analyser (probe in clean air)")
        await self.analyser.zero()
        await self.probe_in()
        high = await self.speed(self.high)
        idle = await self.speed(self.idle)
        await self.probe_out()
        self.machine.go(State.DONE)
        return judge(self.table, self.ctx.order.emission_limit_set, self.high, high, idle)

    async def precheck(self) -> None:
        """The analyser must have finished its warm-up."""
        self.machine.go(State.PRECHECK)
        self.ctx.progress("tsi_precheck", "checking the gas analyser")
        if await self.analyser.read_status() is AnalyserStatus.WARMING_UP:
            left = await self.analyser.warmup_remaining_s()
            raise ItemAborted(f"analyser warming up ({left} s left)")

    async def probe_in(self) -> None:
        """Probe into the tailpipe, pump on; the per-second clock starts."""
        self.machine.go(State.PROBE_IN)
        self.ctx.progress("tsi_probe_in", "insert the probe at least 400 mm into the tailpipe")
        await self.analyser.pump_on()
        self.pumping = True
        self._ticker = Ticker(self.ctx.seconds(SAMPLE_S))

    async def invalid(self, reason: str) -> None:
        """The test is invalid: say why, stop, keep the data (the caller aborts the item)."""
        self.machine.go(State.INVALID)  # the table allows it only while measuring
        self.ctx.progress("tsi_invalid", f"test invalid: {reason}")
        await self.probe_out()
        self.machine.go(State.DONE)

    async def probe_out(self) -> None:
        """Pump off; the driver may take the probe out."""
        self.machine.go(State.PROBE_OUT)
        await self.stop_pump()
        self.ctx.progress("tsi_probe_out", "test complete: remove the probe")

    async def stop_pump(self) -> None:
        """Pump off if it runs; on the way out of a failed item a dead device is ignored."""
        if not self.pumping:
            return
        self.pumping = False
        # bounded: on the way out of a cancelled item (an abort, the daemon stopping) the
        # bus may already be gone, and a request to it would never be answered
        with contextlib.suppress(DriverError, TimeoutError):  # the item's error is reported
            async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                await self.analyser.pump_off()

    async def speed(self, speed: Speed) -> WindowMeans:
        """Reach, stabilise and measure one engine speed; the window's averages."""
        low, high = self.band(speed)
        self.machine.go(speed.reach)
        prompt = speed.prompt.format(nominal=f"{(low + high) / 2:.0f}")
        self.ctx.progress(
            f"tsi_to_{speed.name}", f"{prompt} ({low:.0f}-{high:.0f} r/min)",
            rpm_low=low, rpm_high=high,
        )  # fmt: skip
        await self.reach(speed)
        self.machine.go(speed.stabilise)
        self.ctx.progress(f"tsi_{speed.name}_stabilising", f"{speed.label}: stabilising")
        await self.hold(speed, f"{speed.name}_stabilising", STABILISE_S)
        self.machine.go(speed.measure)
        self.ctx.progress(f"tsi_{speed.name}_measuring", f"{speed.label}: measuring 30 s")
        phase = f"{speed.name}_measuring"
        await self.hold(speed, phase, MEASURE_S)
        means = window_means(window(self.samples, phase))
        self.check_dilution(speed, means)
        self.ctx.progress(
            f"tsi_{speed.name}_result",
            f"{speed.label}: CO {means.co_pct:.2f} %, HC {means.hc_ppm:.0f} ppm, "
            f"λ {means.lambda_:.2f}",
            co_pct=means.co_pct, hc_ppm=means.hc_ppm, lambda_=means.lambda_, rpm=means.rpm,
        )  # fmt: skip
        return means

    def band(self, speed: Speed) -> tuple[float, float]:
        """The speed band of ``speed`` from the limit table."""
        entry = self.table.limits[speed.band_key]
        if entry.low is None or entry.high is None:
            raise ValueError(f"{self.table.name}: {speed.band_key} needs low and high")
        return entry.low, entry.high

    async def reach(self, speed: Speed) -> None:
        """Sample each second until the engine speed is in the band, or give up."""
        low, high = self.band(speed)
        phase = f"to_{speed.name}"
        waited = 0.0
        while True:
            sample = await self.sample(phase, speed.label)
            if in_band(sample.rpm, low, high):
                return
            waited += SAMPLE_S
            if waited >= REACH_TIMEOUT_S:
                raise InvalidTest(
                    f"engine speed {sample.rpm} r/min did not reach the {speed.label} band "
                    f"{low:.0f}-{high:.0f} r/min within {REACH_TIMEOUT_S:.0f} s"
                )

    async def hold(self, speed: Speed, phase: str, seconds: float) -> None:
        """``seconds`` of per-second samples; the engine speed must stay in its band."""
        low, high = self.band(speed)
        for _ in range(round(seconds / SAMPLE_S)):
            sample = await self.sample(phase, speed.label)
            if not in_band(sample.rpm, low, high):
                raise InvalidTest(
                    f"engine speed {sample.rpm} r/min left the {speed.label} band "
                    f"{low:.0f}-{high:.0f} r/min ({phase.replace('_', ' ')})"
                )

    def check_dilution(self, speed: Speed, means: WindowMeans) -> None:
        """CO+CO2 below the minimum: air got into the sample (probe, exhaust leak)."""
        dilution = self.table.judge(
            "tsi_co_plus_co2_pct_min", f"{speed.name}_co_plus_co2_pct", means.co_plus_co2_pct
        )
        if dilution.verdict is Verdict.FAIL:
            assert dilution.limit is not None  # judge() always sets it
            raise InvalidTest(
                f"sample diluted at {speed.label}: CO+CO2 {means.co_plus_co2_pct:.2f} % "
                f"< {dilution.limit.low} % (probe or exhaust leak)",
                [dilution],
            )

    async def sample(self, phase: str, label: str) -> GasSample:
        """Wait for the next second, read the analyser, keep and show the sample."""
        assert self._ticker is not None, "probe_in starts the clock"
        await self._ticker.tick()
        g = await self.analyser.read_gases()
        t_s = round(self._ticker.elapsed() / self.ctx.time_scale, 1)
        sample = GasSample(
            t_s, phase, g.engine_speed_rpm, g.co_pct_vol, g.hc_ppm, g.co2_pct_vol,
            g.o2_pct_vol, g.lambda_, g.oil_temp_c,
        )  # fmt: skip
        self.samples.append(sample)
        self.ctx.live(str(getattr(self.analyser, "device_id", "")), _live_values(g))
        self.ctx.progress(
            "tsi_live",
            f"{label}: {g.engine_speed_rpm} r/min, CO {g.co_pct_vol:.2f} %, HC {g.hc_ppm} ppm",
            phase=phase, t_s=t_s, rpm=g.engine_speed_rpm, co_pct=g.co_pct_vol, hc_ppm=g.hc_ppm,
            co2_pct=g.co2_pct_vol, o2_pct=g.o2_pct_vol, lambda_=g.lambda_,
            oil_temp_c=g.oil_temp_c,
        )  # fmt: skip
        return sample

    def evidence(self) -> Evidence:
        """The per-second process data, stored by hash."""
        document = {
            "method": METHOD,
            "interval_s": SAMPLE_S,
            "time_scale": self.ctx.time_scale,
            "columns": list(GAS_COLUMNS),
            "rows": [s.row() for s in self.samples],
            "states": [state.name for state, _ in self.machine.history],
        }
        return self.ctx.evidence.put(
            "emission_process", document, samples=len(self.samples), interval_ms=SAMPLE_S * 1000
        )


def judge(
    table: LimitTable, limit_set: str, high_speed: Speed, high: WindowMeans, idle: WindowMeans
) -> list[Measurement]:
    """The record's measurements: judged emissions and λ, validity checks, the rest."""

    def key(base: str) -> str:
        return limit_key(base, limit_set)

    return [
        table.judge(key("tsi_high_idle_co_pct"), "high_idle_co_pct", high.co_pct),
        table.judge(key("tsi_high_idle_hc_ppm"), "high_idle_hc_ppm", high.hc_ppm),
        table.judge("tsi_high_idle_lambda", "high_idle_lambda", high.lambda_),
        table.judge(key("tsi_idle_co_pct"), "idle_co_pct", idle.co_pct),
        table.judge(key("tsi_idle_hc_ppm"), "idle_hc_ppm", idle.hc_ppm),
        table.judge(high_speed.band_key, "high_idle_engine_speed_rpm", high.rpm),
        table.judge("tsi_idle_rpm", "idle_engine_speed_rpm", idle.rpm),
        table.judge("tsi_co_plus_co2_pct_min", "high_idle_co_plus_co2_pct", high.co_plus_co2_pct),
        table.judge("tsi_co_plus_co2_pct_min", "idle_co_plus_co2_pct", idle.co_plus_co2_pct),
        measured("high_idle_co2_pct", high.co2_pct, "%"),
        measured("high_idle_o2_pct", high.o2_pct, "%"),
        measured("idle_co2_pct", idle.co2_pct, "%"),
        measured("idle_o2_pct", idle.o2_pct, "%"),
        measured("idle_lambda", idle.lambda_),
        measured("high_idle_oil_temp_c", high.oil_temp_c, "°C"),
        measured("idle_oil_temp_c", idle.oil_temp_c, "°C"),
        measured("samples_per_window", idle.samples),
    ]
