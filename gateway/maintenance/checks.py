"""Daily equipment checks, declared as data: which device class, what the driver does,
and how the outcome is judged (standards.md §4: analyser leak check and zero at power-on,
span-gas checks; opacimeter zero and neutral-filter checks).

Each check returns the measurements it took and whether it passed; the gateway stores
the result (it drives lockouts) and publishes it as a must-deliver ``check`` record.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from drivers.devices.base import DeviceClass
from drivers.errors import DeviceFault
from gateway.maintenance import dyno_checks as dyno
from gateway.maintenance.check_outcome import CheckArgumentError, CheckOutcome
from gateway.records import Measurement, Verdict

__all__ = ["CHECKS", "CheckArgumentError", "CheckOutcome", "CheckSpec", "check_spec"]


class CheckGas(BaseModel):
    """One check-gas cylinder, as its certificate states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="e.g. zero, low, mid-low, mid-high, high")
    c3h8_ppm: float = Field(ge=0)
    co_pct_vol: float = Field(ge=0, le=100)
    co2_pct_vol: float = Field(ge=0, le=100)
    no_ppm: float = Field(ge=0)


class FivePointGases(RootModel[list[CheckGas]]):
    """The five cylinders of a five-point check, in order."""

    root: list[CheckGas] = Field(min_length=5, max_length=5)


CheckFn = Callable[[Any, dict[str, Any]], Awaitable[CheckOutcome]]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One kind of check."""

    device_class: DeviceClass
    kind: str
    summary: str
    run: CheckFn
    #: what a technician must confirm before the check starts
    confirm: str
    #: the check runs a procedure in time: it gets the lane's ``time_scale`` in its args
    timed: bool = False


def _verdict(ok: bool) -> Verdict:
    return Verdict.PASS if ok else Verdict.FAIL


async def _analyser_leak(analyser: Any, args: dict[str, Any]) -> CheckOutcome:
    tight = bool(await analyser.leak_check())
    return CheckOutcome(
        tight, [Measurement(name="leak_free", value=tight, verdict=_verdict(tight))]
    )


async def _analyser_zero(analyser: Any, args: dict[str, Any]) -> CheckOutcome:
    try:
        await analyser.zero()
    except DeviceFault as exc:
        return CheckOutcome(
            False, [Measurement(name="zeroed", value=False, verdict=Verdict.FAIL)], str(exc)
        )
    return CheckOutcome(True, [Measurement(name="zeroed", value=True, verdict=Verdict.PASS)])


def _number(args: dict[str, Any], name: str, default: float | None = None) -> float:
    value = args.get(name, default)
    if value is None:
        raise CheckArgumentError(
            f"this check needs the reference value {name} (--value {name}=VALUE)"
        )
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CheckArgumentError(f"{name} must be a number, not {value!r}") from None


async def _analyser_span(analyser: Any, args: dict[str, Any]) -> CheckOutcome:
    gas = {k: _number(args, k) for k in ("c3h8_ppm", "co_pct_vol", "co2_pct_vol", "no_ppm")}
    await analyser.write_check_gas(
        int(gas["c3h8_ppm"]), gas["co_pct_vol"], gas["co2_pct_vol"], int(gas["no_ppm"])
    )
    readings: list[Any] = []
    passed = bool(await analyser.gas_check(readings.append))
    values = [Measurement(name=f"check_gas_{k}", value=v) for k, v in gas.items()]
    return CheckOutcome(
        passed,
        [
            *values,
            *_measured(readings[-1] if readings else None),
            Measurement(name="gas_check", value=passed, verdict=_verdict(passed)),
        ],
    )


def _measured(reading: Any) -> list[Measurement]:
    """What the analyser read of the check gas (its last reading during the check)."""
    if reading is None:
        return []
    return [
        Measurement(name="measured_hc_ppm", value=reading.hc_ppm, unit="ppm"),
        Measurement(name="measured_co_pct_vol", value=reading.co_pct_vol, unit="%"),
        Measurement(name="measured_co2_pct_vol", value=reading.co2_pct_vol, unit="%"),
        Measurement(name="measured_no_ppm", value=reading.nox_ppm, unit="ppm"),
    ]


#: default low-flow threshold of the raw flow indicator (unit undocumented by the vendor:
#: set ``min_flow_raw`` from the analyser's manual; the simulator pumps at 100)
LOW_FLOW_MIN_RAW = 50.0
#: readings averaged by the low-flow check once the pump has run up, and their spacing
LOW_FLOW_READS, LOW_FLOW_SETTLE_S, LOW_FLOW_SPACING_S = 5, 1.0, 0.2
#: the five concentrations of a five-point check (零气、低、中低、中高、高)
FIVE_POINTS = 5
#: longest wait for the pump-off that ends a low-flow check, seconds
PUMP_OFF_TIMEOUT_S = 3.0


async def _analyser_low_flow(analyser: Any, args: dict[str, Any]) -> CheckOutcome:
    minimum = _number(args, "min_flow_raw", LOW_FLOW_MIN_RAW)
    await analyser.pump_on()
    flows = []
    try:
        await asyncio.sleep(LOW_FLOW_SETTLE_S)  # the pump runs up
        for _ in range(LOW_FLOW_READS):
            flows.append((await analyser.read_gases()).flow_raw)
            await asyncio.sleep(LOW_FLOW_SPACING_S)
    finally:  # bounded: a bus already gone (the daemon stopping) never answers
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PUMP_OFF_TIMEOUT_S):
                await analyser.pump_off()
    flow = sum(flows) / len(flows)
    ok = flow >= minimum
    return CheckOutcome(
        ok,
        [Measurement(name="sample_flow_raw", value=round(flow, 1), verdict=_verdict(ok))],
        f"mean flow indicator >= {minimum:g} (raw)",
    )


async def _analyser_five_point(analyser: Any, args: dict[str, Any]) -> CheckOutcome:
    """One point of the five-point check: the CLI runs the five, a cylinder each."""
    point = int(_number(args, "point"))
    if not 1 <= point <= FIVE_POINTS:
        raise CheckArgumentError(f"point must be 1..{FIVE_POINTS}, not {point}")
    gas = {k: _number(args, k) for k in ("c3h8_ppm", "co_pct_vol", "co2_pct_vol", "no_ppm")}
    await analyser.write_check_gas(
        int(gas["c3h8_ppm"]), gas["co_pct_vol"], gas["co2_pct_vol"], int(gas["no_ppm"])
    )
    readings: list[Any] = []
    passed = bool(await analyser.gas_check(readings.append))
    pef = float(await analyser.read_pef())
    values = [
        Measurement(name="point", value=point),
        *(Measurement(name=f"nominal_{k}", value=v) for k, v in gas.items()),
        Measurement(name="pef", value=pef),
        Measurement(name="nominal_hc_ppm", value=round(gas["c3h8_ppm"] * pef), unit="ppm"),
        *_measured(readings[-1] if readings else None),
    ]
    verdict = Measurement(name="gas_check", value=passed, verdict=_verdict(passed))
    return CheckOutcome(passed, [*values, verdict], f"point {point} of {FIVE_POINTS}")


async def _opacimeter_zero(opacimeter: Any, args: dict[str, Any]) -> CheckOutcome:
    await opacimeter.linearity_zero()
    reading = await opacimeter.read_realtime()
    tolerance = _number(args, "tolerance_pct", 0.5)
    ok = abs(reading.n_pct) <= tolerance
    limit_note = f"|N| <= {tolerance} % after zeroing"
    return CheckOutcome(
        ok,
        [Measurement(name="n_after_zero", value=reading.n_pct, unit="%", verdict=_verdict(ok))],
        limit_note,
    )


async def _opacimeter_filter(opacimeter: Any, args: dict[str, Any]) -> CheckOutcome:
    nominal = _number(args, "nominal_n_pct")
    tolerance = _number(args, "tolerance_pct", 2.0)
    await opacimeter.linearity_check_mode()
    measured = float(await opacimeter.read_check_value())
    ok = abs(measured - nominal) <= tolerance
    return CheckOutcome(
        ok,
        [
            Measurement(name="filter_nominal_n", value=nominal, unit="%"),
            Measurement(name="filter_measured_n", value=measured, unit="%", verdict=_verdict(ok)),
        ],
        f"|measured - nominal| <= {tolerance} %",
    )


def _dyno_checks() -> tuple[CheckSpec, ...]:
    """The dyno and flowmeter checks (``dyno_checks``)."""
    return (
        CheckSpec(
            DeviceClass.CHASSIS_DYNAMOMETER,
            "coast_down",
            "coast-down (滑行): parasitic loss, then loaded coast time vs computed",
            dyno.dyno_coast_down,
            "No vehicle on the rollers; lift down; keep clear of the rollers.",
            timed=True,
        ),
        CheckSpec(
            DeviceClass.CHASSIS_DYNAMOMETER,
            "parasitic",
            "parasitic loss (附加损失) over the speed bands",
            dyno.dyno_parasitic,
            "No vehicle on the rollers; lift down; keep clear of the rollers.",
            timed=True,
        ),
        CheckSpec(
            DeviceClass.FLOWMETER,
            "flowmeter",
            "flowmeter check on ambient air: O2 and diluted flow",
            dyno.flowmeter_check,
            "Flowmeter hose off the tailpipe, blower running, inlet in clean air.",
        ),
    )


CHECKS: dict[tuple[DeviceClass, str], CheckSpec] = {
    (spec.device_class, spec.kind): spec
    for spec in (
        CheckSpec(
            DeviceClass.GAS_ANALYSER,
            "leak",
            "leak check of the sampling line",
            _analyser_leak,
            "Seal the probe tip with its cap.",
        ),
        CheckSpec(
            DeviceClass.GAS_ANALYSER,
            "zero",
            "zero on ambient or zero air",
            _analyser_zero,
            "Remove the probe from any exhaust.",
        ),
        CheckSpec(
            DeviceClass.GAS_ANALYSER,
            "span",
            "single-point span-gas check",
            _analyser_span,
            "Connect the check-gas cylinder to the check port.",
        ),
        CheckSpec(
            DeviceClass.GAS_ANALYSER,
            "low_flow",
            "low-flow check of the sample pump and filters",
            _analyser_low_flow,
            "Keep the probe in ambient air, away from exhaust.",
        ),
        CheckSpec(
            DeviceClass.GAS_ANALYSER,
            "five_point",
            "five-point span-gas check with PEF (one point per run)",
            _analyser_five_point,
            "Connect the point's check-gas cylinder to the check port.",
        ),
        CheckSpec(
            DeviceClass.OPACIMETER,
            "zero",
            "zero (linearity correction) in clean air",
            _opacimeter_zero,
            "Make sure the measuring chamber holds clean air.",
        ),
        CheckSpec(
            DeviceClass.OPACIMETER,
            "filter",
            "neutral-filter check",
            _opacimeter_filter,
            "Insert the neutral filter into the light path.",
        ),
        *_dyno_checks(),
    )
}


def check_spec(device_class: DeviceClass, kind: str) -> CheckSpec:
    """The check ``kind`` of a device class, or ``KeyError`` naming the known ones."""
    spec = CHECKS.get((device_class, kind))
    if spec is None:
        known = ", ".join(k for c, k in CHECKS if c is device_class) or "none"
        raise KeyError(f"no check {kind!r} for a {device_class.value} (known: {known})")
    return spec
