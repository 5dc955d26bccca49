"""A synchronous fake lane for the sans-I/O procedure machines: plain events, a fake clock.

``FakeLane`` plays the devices from Python functions of procedure time and of the commands
the machine sent (the dyno's load, the lift...), so the tests exercise the machines'
logic without simulators, sockets or sleeps. Nothing here patches a driver: the machines
never see one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.devices.dyno_api import Ambient, DynoReading
from gateway.inspection.sansio import (
    Action,
    Command,
    DeviceFailed,
    Event,
    Finish,
    ProcedureMachine,
    Reply,
    Sample,
    Say,
    SetClock,
)


@dataclass(frozen=True)
class Gas:
    """An analyser reading (the LoadedGas protocol)."""

    hc_ppm: int = 30
    co_pct_vol: float = 0.10
    co2_pct_vol: float = 14.5
    o2_pct_vol: float = 0.3
    nox_ppm: int = 150
    engine_speed_rpm: int = 2000
    lambda_: float = 1.0
    oil_temp_c: float = 85.0


STANDARD_AMBIENT = Ambient(temperature_c=25.0, humidity_pct=50.0, pressure_kpa=101.3)


@dataclass
class FakeLane:
    """Devices as functions of time; records what the machine did."""

    #: (t_s, lane) -> roller speed km/h (the driver's doing)
    speed: Callable[[float, FakeLane], float]
    gas: Callable[[float, FakeLane], Any] = lambda t, lane: Gas()
    ambient: Ambient = STANDARD_AMBIENT
    #: (t_s, lane) -> extra readings by role (flowmeter, opacimeter...)
    extra: Callable[[float, FakeLane], dict[str, Any]] = lambda t, lane: {}
    #: (device, method) -> reply value (or an exception instance to raise)
    replies: dict[tuple[str, str], Any] = field(default_factory=dict)
    #: (t_s) -> error text: the read of this device fails from then on
    fail_at: tuple[float, str, str] | None = None
    #: PAU power as a function of the commanded load (default: holds it exactly)
    power: Callable[[float, FakeLane], float] | None = None
    commands: list[Command] = field(default_factory=list)
    says: list[Say] = field(default_factory=list)
    #: procedure time of each Say, same order
    said_at: list[float] = field(default_factory=list)
    control: tuple[str, float | None] = ("off", None)
    t_s: float = 0.0
    period_s: float | None = None
    reads: tuple[Any, ...] = ()

    def dyno(self, t: float) -> DynoReading:
        v = self.speed(t, self)
        mode, target = self.control
        if self.power is not None:
            p = self.power(t, self)
        elif mode == "power" and target is not None:
            p = target
        else:
            p = 0.0
        force = p * 3600 / v if v > 0.1 else 0.0
        return DynoReading(v, force, p, False, False, mode, target)  # type: ignore[arg-type]

    def readings(self, t: float, ticks: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for read in self.reads:
            if (ticks - 1) % read.every:
                continue
            if read.device == "dyno" and read.method == "read_state":
                out[read.key] = self.dyno(t)
            elif read.method == "read_ambient":
                out[read.key] = self.ambient
            elif read.device == "analyser":
                out[read.key] = self.gas(t, self)
            else:
                out[read.key] = self.extra(t, self)[read.device]
        return out

    def command(self, c: Command) -> Any:
        self.commands.append(c)
        names = {"set_constant_power": "power", "set_constant_speed": "speed",
                 "set_constant_force": "force", "set_road_load": "road_load"}  # fmt: skip
        if c.method in names:
            self.control = (names[c.method], c.args[0] if c.method != "set_road_load" else None)  # type: ignore[assignment]
        elif c.method == "control_off":
            self.control = ("off", None)
        return self.replies.get((c.device, c.method))

    def run(self, machine: ProcedureMachine, limit_s: float = 2000.0) -> Finish:
        """Drive ``machine`` to its finish like ``sansio.drive`` does, with a fake clock."""
        pending: list[Event] = []
        actions: list[Action] = machine.start(0.0)
        ticks = 0
        while True:
            for action in actions:
                if isinstance(action, Finish):
                    return action
                if isinstance(action, Say):
                    self.says.append(action)
                    self.said_at.append(self.t_s)
                elif isinstance(action, SetClock):
                    self.period_s, self.reads, ticks = action.period_s, action.reads, 0
                else:
                    value = self.command(action)
                    if isinstance(value, Exception):
                        pending.append(
                            DeviceFailed(self.t_s, action.device, action.method, str(value))
                        )
                        break
                    if action.reply:
                        pending.append(Reply(self.t_s, action.device, action.method, value))
            if pending:
                actions = machine.handle(pending.pop(0))
                continue
            assert self.period_s is not None, "the machine waits for nothing"
            self.t_s = round(self.t_s + self.period_s, 6)
            ticks += 1
            assert self.t_s < limit_s, "the machine never finished"
            if self.fail_at is not None and self.t_s >= self.fail_at[0]:
                _, device, error = self.fail_at
                actions = machine.handle(DeviceFailed(self.t_s, device, "read", error))
                continue
            actions = machine.handle(Sample(self.t_s, self.readings(self.t_s, ticks)))

    def steps(self) -> list[str]:
        return [s.step for s in self.says]

    def when(self, step: str) -> float | None:
        """Procedure time of the first ``step`` said, if any."""
        for say, t in zip(self.says, self.said_at, strict=True):
            if say.step == step:
                return t
        return None
