"""The engine regime of a simulated petrol car, and a scripted driver for two-speed idle.

The gateway cannot set the engine speed: its two-speed-idle item prompts the driver
("hold high idle") and waits until the rpm pickup shows the band. On a simulated lane the
analyser simulator (``nha503``, option ``driver_script``) plays that driver by the clock:
from each pump on (0x04) it idles ``reaction_s`` (reading the prompt), holds high idle for
``high_idle_s`` (enough for 15 s stabilisation and the 30 s window, with slack), then
idles again. Durations are scenario seconds × ``timing.time_scale``, so the script keeps
step with a gateway whose ``procedure_time_scale`` equals the scenario's time scale.
While the script runs it decides the regime: ``set_regime`` lasts until the next request.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field


class EngineRegime(enum.StrEnum):
    """Which speed the simulated engine runs at."""

    IDLE = "idle"
    HIGH_IDLE = "high_idle"


class DriverScriptOptions(BaseModel):
    """Timing of the scripted driver, scenario seconds from pump on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reaction_s: float = Field(default=3.0, ge=0, description="idle before reaching high idle")
    high_idle_s: float = Field(default=70.0, gt=0, description="how long high idle is held")


class DriverScript:
    """Decides the regime by the time since the probe pump started; inert without options."""

    def __init__(self, options: DriverScriptOptions | None, time_scale: float) -> None:
        self.options = options
        self._scale = time_scale
        self.started: float | None = None

    def on_flow(self, probe: bool, was_probe: bool, now: float) -> None:
        """The pump changed: sampling from the probe starts the script, anything else ends it."""
        if self.options is None:
            return
        if probe and not was_probe:
            self.started = now
        elif not probe:
            self.started = None

    def change(self, now: float, current: EngineRegime) -> tuple[EngineRegime, float] | None:
        """The regime wanted by ``now`` and since when, if it differs from ``current``."""
        if self.options is None or self.started is None:
            return None
        high_from = self.started + self.options.reaction_s * self._scale
        high_until = high_from + self.options.high_idle_s * self._scale
        if high_from <= now < high_until:
            wanted, since = EngineRegime.HIGH_IDLE, high_from
        else:
            wanted, since = EngineRegime.IDLE, (high_until if now >= high_until else self.started)
        return None if wanted is current else (wanted, since)
