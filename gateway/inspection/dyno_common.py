"""What the dyno emission machines (ASM, VMAS, lug-down) share, sans-I/O.

``DynoTest`` keeps the state history with procedure times, the per-second process rows
(the evidence, kept whatever the outcome), the analyser pre-check (warm-up, zero, pump),
the end of a test (load off, the driver brakes, the lift goes up once the rollers stand
still) and the abort on a device error. Readings are the contract's (``DynoReading``,
``Ambient``) and, for the analyser, the narrow ``LoadedGas`` protocol below.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final, Generic, Protocol, TypeVar

from drivers.devices.dyno_api import Ambient, DynoReading
from drivers.protocols.nha503 import AnalyserStatus
from gateway.inspection.emissions_calc import mean_reported
from gateway.inspection.sansio import (
    Action,
    Command,
    DeviceFailed,
    Finish,
    OperatorAbort,
    ProcedureMachine,
    Reply,
    Say,
)
from gateway.limits import LimitTable
from gateway.records import Limit, Measurement, Scalar, Verdict

#: the roller speed below which the rollers count as standing still (lift may go up)
STOPPED_KMH: Final = 1.0
#: human names of the device roles, for reasons
ROLE_NAMES: Final = {
    "dyno": "chassis dynamometer",
    "analyser": "gas analyser",
    "flowmeter": "flowmeter",
    "opacimeter": "opacimeter",
    "obd": "OBD reader",
}

S = TypeVar("S", bound=enum.Enum)


class LoadedGas(Protocol):
    """What the dyno methods read from the gas analyser each second (NHA-503 main data)."""

    @property
    def hc_ppm(self) -> int: ...
    @property
    def co_pct_vol(self) -> float: ...
    @property
    def co2_pct_vol(self) -> float: ...
    @property
    def o2_pct_vol(self) -> float: ...
    @property
    def nox_ppm(self) -> int: ...
    @property
    def engine_speed_rpm(self) -> int: ...
    @property
    def lambda_(self) -> float: ...


class IllegalStep(RuntimeError):
    """A machine tried a transition its table does not allow (a bug in the machine)."""


class DynoTest(ProcedureMachine, Generic[S]):
    """Base of the three dyno methods: states, rows, the end of a test."""

    columns: tuple[str, ...] = ()
    #: states in which a test is running (a device error aborts it with the phase named)
    transitions: Mapping[S, frozenset[S]]

    def __init__(self, initial: S, stopping: S, done: S, stop_timeout_s: float) -> None:
        super().__init__()
        self.state: S = initial
        self._stopping, self._done = stopping, done
        self.history: list[tuple[str, float]] = [(initial.name, 0.0)]
        self.rows: list[list[Scalar]] = []
        self.entered_s = 0.0
        self.last_t_s = 0.0
        self.ambient: Ambient | None = None
        self.stop_timeout_s = stop_timeout_s
        self._outcome: Finish | None = None  # decided, sent once the rollers stand still
        self.parameters: dict[str, Scalar] = {}
        #: what was measured and judged so far (an aborted record still carries it)
        self.measurements: list[Measurement] = []

    # --- states -----------------------------------------------------------------------
    def go(self, state: S, t_s: float) -> None:
        """Move to ``state`` (``IllegalStep`` when the table does not allow it)."""
        if state not in self.transitions.get(self.state, frozenset()):
            raise IllegalStep(f"{self.name}: {self.state.name} -> {state.name} not allowed")
        self.state = state
        self.entered_s = t_s
        self.history.append((state.name, t_s))

    def in_state_s(self, t_s: float) -> float:
        """Procedure seconds since the current state was entered."""
        return t_s - self.entered_s

    # --- the analyser before a test ------------------------------------------------------
    @staticmethod
    def analyser_precheck() -> list[Action]:
        """Ask the analyser's status (the reply decides whether the test can start)."""
        return [Command("analyser", "read_status", reply=True)]

    def analyser_ready(self, event: Reply) -> list[Action] | None:
        """An abort when the analyser warms up; ``None`` when it is ready."""
        if event.value == AnalyserStatus.WARMING_UP:
            return self.done(Finish(Verdict.ABORTED, reason="gas analyser warming up"))
        return None

    # --- the end of a test --------------------------------------------------------------
    def stop(self, t_s: float, outcome: Finish, why: str) -> list[Action]:
        """Load off, ask the driver to brake; ``outcome`` goes out when the rollers stop."""
        self._outcome = outcome
        self.go(self._stopping, t_s)
        return [
            Command("dyno", "control_off"),
            Say(f"{self.step_prefix}_stopping", f"{why}: release the throttle and brake to a stop"),
        ]

    def stopping(self, t_s: float, dyno: DynoReading | None) -> list[Action]:
        """While stopping: lift up once the rollers stand still (or give up waiting)."""
        assert self._outcome is not None
        actions: list[Action] = []
        if dyno is not None and abs(dyno.speed_kmh) < STOPPED_KMH:
            actions.append(Command("dyno", "lift", (True,)))
            actions.append(Say(f"{self.step_prefix}_done", "rollers stopped: drive off"))
        elif self.in_state_s(t_s) < self.stop_timeout_s:
            return []
        else:
            actions.append(
                Say(f"{self.step_prefix}_done", "rollers still turning: the lift stays down")
            )
        self.go(self._done, t_s)
        return actions + self.done(self._outcome)

    @property
    def step_prefix(self) -> str:
        """Progress steps start with this (``asm``, ``vmas``, ``lug``)."""
        return self.name.lower()

    def failed(self, event: DeviceFailed | OperatorAbort) -> list[Action]:
        """A device error or an operator stop: abort at once (safe_state unloads)."""
        if isinstance(event, OperatorAbort):
            reason = f"{self.name} stopped in {self.state.name.lower()}: {event.reason}"
        else:
            role = ROLE_NAMES.get(event.device, event.device)
            reason = (
                f"{role} failed during {self.name} {self.state.name.lower()} "
                f"({event.method}): {event.error}"
            )
        self.history.append(("ABORTED", event.t_s))
        return [
            Say(f"{self.step_prefix}_aborted", reason),
            *self.done(Finish(Verdict.ABORTED, tuple(self.measurements), reason)),
        ]

    def safe_state(self) -> list[Command]:
        """Load off on every way out; the lift is left down (the rollers may still turn)."""
        return [Command("dyno", "control_off")]

    def take_ambient(self, readings: Mapping[str, Any]) -> None:
        """Keep the newest ambient reading when the sample carries one."""
        ambient = readings.get("ambient")
        if ambient is not None:
            self.ambient = ambient

    def evidence(self) -> dict[str, Any]:
        """The per-second process data and the state history."""
        ambient = None
        if self.ambient is not None:
            ambient = {
                "temperature_c": self.ambient.temperature_c,
                "humidity_pct": self.ambient.humidity_pct,
                "pressure_kpa": self.ambient.pressure_kpa,
            }
        return {
            "method": self.name,
            "columns": list(self.columns),
            "rows": self.rows,
            "states": [name for name, _ in self.history],
            "state_times_s": [t for _, t in self.history],
            "parameters": self.parameters,
            "ambient": ambient,
        }


def mean(values: Sequence[float], step: str) -> float:
    """Mean reported at ``step`` (GB/T 8170 on the decimal text)."""
    return mean_reported([round(v, 6) for v in values], step)


def judge_scaled(
    table: LimitTable, key: str, name: str, value: float, scale: float, unit: str, why: str
) -> Measurement:
    """``value`` judged against limit ``key`` multiplied by ``scale`` (e.g. 40 % of rated
    power, a fast-pass half limit); the limit's source says how it was derived."""
    entry = table.limits[key]
    low = None if entry.low is None else entry.low * scale
    high = None if entry.high is None else entry.high * scale
    ok = (low is None or value >= low) and (high is None or value <= high)
    limit = Limit(
        low=low, high=high, unit=unit, source=f"{table.name}: {entry.source}; {why}",
        confidence=entry.confidence,
    )  # fmt: skip
    return Measurement(
        name=name, value=value, unit=unit, limit=limit,
        verdict=Verdict.PASS if ok else Verdict.FAIL,
    )  # fmt: skip
