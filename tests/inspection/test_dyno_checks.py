"""Daily dyno checks on plain events: a coast-down on rollers with known inertia and
parasitic losses passes; a PAU that absorbs 20 % less than set fails; the parasitic-loss
bands; a dyno lost mid-coast aborts. The flowmeter check is in the e2e tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from drivers.devices.dyno_api import DynoReading
from gateway.inspection.sansio import (
    Action,
    Command,
    DeviceFailed,
    Finish,
    Sample,
    SetClock,
)
from gateway.limits import load_table
from gateway.maintenance.dyno_checks import CoastMachine, coast_bands
from gateway.records import Verdict

TABLE = load_table("dyno-checks")


@dataclass
class Rollers:
    """Empty rollers: inertia, parasitic A + B·v + C·v², a motor and a PAU."""

    inertia_kg: float = 907.2
    a: float = 25.0
    b: float = 0.4
    c: float = 0.002
    pau_share: float = 1.0  # how much of the set power the PAU really absorbs
    v: float = 0.0
    motor: bool = False
    power_kw: float = 0.0
    log: list[Command] = field(default_factory=list)

    def command(self, c: Command) -> None:
        self.log.append(c)
        if c.method == "motor":
            self.motor = bool(c.args[0])
        elif c.method == "set_constant_power":
            self.power_kw = float(c.args[0])  # type: ignore[arg-type]
        elif c.method == "control_off":
            self.power_kw = 0.0

    def step(self, dt: float) -> None:
        for _ in range(round(dt / 0.01)):
            ms = self.v / 3.6
            force = self.a + self.b * self.v + self.c * self.v**2
            if ms > 0.3:
                force += self.pau_share * self.power_kw * 1000 / ms
            if self.motor:
                force -= 900.0
            self.v = max(0.0, self.v - force / self.inertia_kg * 0.01 * 3.6)


def run(machine: CoastMachine, rollers: Rollers, fail_at: float | None = None) -> Finish:
    actions: list[Action] = machine.start(0.0)
    t, period = 0.0, None
    while True:
        for a in actions:
            if isinstance(a, Finish):
                return a
            if isinstance(a, SetClock):
                period = a.period_s
            elif isinstance(a, Command):
                rollers.command(a)
        assert period is not None
        rollers.step(period)
        t = round(t + period, 6)
        assert t < 2000
        if fail_at is not None and t >= fail_at:
            actions = machine.handle(DeviceFailed(t, "dyno", "read_state", "link down"))
            continue
        reading = DynoReading(rollers.v, 0.0, rollers.power_kw, False, rollers.motor, "off")
        actions = machine.handle(Sample(t, {"dyno": reading}))


def values(finish: Finish) -> dict[str, Any]:
    return {m.name: m for m in finish.measurements}


def test_coast_down_of_a_healthy_dyno_passes() -> None:
    rollers = Rollers()
    machine = CoastMachine(TABLE, 907.2, coast_bands(TABLE, "petrol"), 10.0)
    finish = run(machine, rollers)
    got = values(finish)
    assert finish.verdict is Verdict.PASS, finish
    for band in ("48_32", "33_17"):
        assert abs(got[f"coast_{band}_error"].value) < 0.02
        assert got[f"coast_{band}_error"].limit.high == 0.07
    # the parasitic force at 40 km/h is 25 + 16 + 3.2 N: about 0.49 kW
    assert got["coast_48_32_parasitic_kw"].value == pytest.approx(44.2 * 40 / 3600, rel=0.05)
    assert got["parasitic_56_40_kw"].verdict is Verdict.PASS
    assert [c.method for c in rollers.log].count("motor") == 4  # two spin-ups
    assert rollers.log[-1] == Command("dyno", "control_off")


def test_a_weak_pau_fails_the_coast_down() -> None:
    finish = run(
        CoastMachine(TABLE, 907.2, coast_bands(TABLE, "diesel"), 10.0), Rollers(pau_share=0.8)
    )
    got = values(finish)
    assert finish.verdict is Verdict.FAIL
    assert (
        got["coast_64_48_error"].verdict is Verdict.FAIL and got["coast_64_48_error"].value > 0.07
    )


def test_parasitic_check_alone() -> None:
    finish = run(CoastMachine(TABLE, 907.2, None, 10.0), Rollers(a=400.0))
    got = values(finish)
    assert "coast_48_32_acdt_s" not in got
    assert finish.verdict is Verdict.FAIL  # 400 N at 56 km/h: more than 5 kW
    assert got["parasitic_56_40_kw"].value > 5.0


def test_dyno_lost_mid_coast_aborts() -> None:
    finish = run(CoastMachine(TABLE, 907.2, coast_bands(TABLE, "petrol"), 10.0), Rollers(), 30.0)
    assert finish.verdict is Verdict.ABORTED and finish.reason == "dyno check stopped: link down"


def test_lane_must_be_petrol_or_diesel() -> None:
    from gateway.maintenance.checks import CheckArgumentError

    with pytest.raises(CheckArgumentError, match="petrol or diesel"):
        coast_bands(TABLE, "lpg")
