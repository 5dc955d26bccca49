"""The arguments of each command, as strict models: checked before a handler runs.

Strict means JSON types are taken as they are: ``true`` is not 1 kg, ``"5"`` is not 5
samples, ``null`` is not a count. Unknown arguments are refused, so a typo never runs a
command with a default the technician did not mean. A handler gets the validated
arguments as a plain dict (``model_dump``), defaults filled in.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

#: most raw samples one ``sample`` command may take
MAX_SAMPLES: Final = 200
#: most reference points of one calibration
MAX_POINTS: Final = 20

DeviceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=64)]
Person = Annotated[str, Field(min_length=1, max_length=80)]


class _Args(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class NoArgs(_Args):
    """Commands that take nothing (``ping``, ``status``, ``lockouts``)."""


class AbortArgs(_Args):
    """``abort``: the inspection to stop."""

    inspection_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z]{17}$")]


class CheckArgs(_Args):
    """``check``: a daily check of one device with its reference values."""

    device: DeviceId
    kind: Name
    values: dict[Name, float] = Field(default_factory=dict, max_length=20)
    technician: Person | None = None


class SampleArgs(_Args):
    """``sample``: raw readings of one device, polling paused meanwhile."""

    device: DeviceId
    count: int = Field(default=10, ge=1, le=MAX_SAMPLES)
    interval_s: float = Field(default=0.1, ge=0, le=60)
    #: a channel only a stream carries (a JXGT2's forces) is read from one test stream
    channel: Name | None = None


class CalibrateArgs(_Args):
    """``calibrate``: fit reference values to readings of one channel; ``apply`` stores it."""

    device: DeviceId
    channel: Name
    references: list[float] = Field(min_length=1, max_length=MAX_POINTS)
    readings: list[float] = Field(min_length=1, max_length=MAX_POINTS)
    apply: bool = False
    technician: Person | None = None
    certificate: Name | None = None
    next_due: Name | None = None


class RollbackArgs(_Args):
    """``rollback``: back to the previous calibration of one channel."""

    device: DeviceId
    channel: Name
    technician: Person | None = None


class RegulatorLockArgs(_Args):
    """``regulator_lock``: a regulator's locks passed on by the station; ``locks`` replaces
    that source's (``{}`` lifts them)."""

    source: Name
    locks: dict[DeviceId, list[Annotated[str, Field(max_length=500)]]] = Field(max_length=64)


#: which model checks the arguments of which command (``inspect`` takes an order,
#: validated by the runner as ``InspectionOrder``)
ARGS: Final[dict[str, type[_Args]]] = {
    "ping": NoArgs,
    "status": NoArgs,
    "lockouts": NoArgs,
    "abort": AbortArgs,
    "check": CheckArgs,
    "sample": SampleArgs,
    "calibrate": CalibrateArgs,
    "rollback": RollbackArgs,
    "regulator_lock": RegulatorLockArgs,
}
