"""Channel calibration: linear coefficients fitted against reference values, kept with
their history, applied by the daemon to a device's values without a restart.

A calibration of channel ``c`` of a device maps the raw value to ``gain * raw + offset``.
A *zero* calibration (one reference point, 0) moves the offset only; a *span*
calibration (two or more points) fits gain and offset by least squares and checks the
linearity at every point, as a % of the span, against the tolerance the device class
allows (``calibration_bounds.yaml``, data with its sources; how far a calibration may
move a channel: ``guards``). History is an
append-only JSON-lines file per device; a rollback re-activates the previous calibration
of that channel (and is itself recorded).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

#: a fitted gain outside this range means a wrong reference or a broken sensor
GAIN_RANGE: Final = (0.5, 2.0)


class CalibrationError(ValueError):
    """Reference values or readings that cannot give a trustworthy calibration."""


@dataclass(frozen=True, slots=True)
class Linear:
    """``gain * raw + offset``."""

    gain: float = 1.0
    offset: float = 0.0

    def apply(self, raw: float) -> float:
        """The corrected value."""
        return self.gain * raw + self.offset


@dataclass(frozen=True, slots=True)
class Fit:
    """The result of fitting reference points."""

    coefficients: Linear
    errors_pct: list[float]
    tolerance_pct: float

    @property
    def linear_ok(self) -> bool:
        """Every point within tolerance after correction."""
        return all(abs(e) <= self.tolerance_pct for e in self.errors_pct)


def fit(
    references: list[float], readings: list[float], tolerance_pct: float, base: Linear = Linear()
) -> Fit:
    """Fit coefficients mapping raw ``readings`` onto ``references``.

    One point: a zero correction (the offset moves, the current gain stays). Two or more:
    least squares. Raises ``CalibrationError`` for unusable input.
    """
    if len(references) != len(readings) or not references:
        raise CalibrationError("give one reading per reference value")
    if any(r < 0 for r in references):
        raise CalibrationError("reference values must not be negative")
    if len(references) == 1:
        coefficients = Linear(base.gain, references[0] - base.gain * readings[0])
    else:
        if len(set(references)) < 2:
            raise CalibrationError("a span calibration needs at least two different references")
        coefficients = _least_squares(references, readings)
        low, high = GAIN_RANGE
        if not low <= coefficients.gain <= high:
            raise CalibrationError(
                f"fitted gain {coefficients.gain:.3f} is outside {low}-{high}: check the "
                "reference values and that the load was really applied"
            )
    # linearity is judged against the span (the largest reference step), so a zero point
    # reading 0.165 kg of a 1000 kg span is 0.0165 %, not an error of its own
    span = max(references) - min(references)
    errors = [
        0.0 if span == 0 else 100.0 * (coefficients.apply(raw) - ref) / span
        for ref, raw in zip(references, readings, strict=True)
    ]
    return Fit(coefficients, errors, tolerance_pct)


def _least_squares(y: list[float], x: list[float]) -> Linear:
    n = len(x)
    mean_x, mean_y = sum(x) / n, sum(y) / n
    sxx = sum((xi - mean_x) ** 2 for xi in x)
    if sxx == 0:
        raise CalibrationError("all readings are equal: the channel does not respond")
    gain = sum((xi - mean_x) * (yi - mean_y) for xi, yi in zip(x, y, strict=True)) / sxx
    return Linear(gain, mean_y - gain * mean_x)


@dataclass(slots=True)
class CalibrationEntry:
    """One calibration (or rollback) as kept in the history."""

    device: str
    channel: str
    action: str  # "calibrate" or "rollback"
    gain: float
    offset: float
    ts: float
    technician: str | None = None
    certificate: str | None = None
    next_due: str | None = None
    references: list[float] = field(default_factory=list)
    readings_before: list[float] = field(default_factory=list)
    errors_pct: list[float] = field(default_factory=list)
    record_id: str | None = None


class CalibrationBook:
    """Active coefficients per device and channel, backed by per-device history files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._history: dict[str, list[CalibrationEntry]] = {}
        if directory.exists():
            for path in sorted(directory.glob("*.jsonl")):
                self._history[path.stem] = _read_history(path)

    def history_file(self, device: str) -> Path:
        """Where the history of ``device`` is kept."""
        return self.directory / f"{device}.jsonl"

    def history(self, device: str) -> list[CalibrationEntry]:
        """Every entry for ``device``, oldest first."""
        return list(self._history.get(device, []))

    def active(self, device: str, channel: str) -> Linear:
        """The coefficients in force (identity when never calibrated)."""
        stack = self._stack(device, channel)
        return Linear(stack[-1].gain, stack[-1].offset) if stack else Linear()

    def in_force(self, device: str) -> list[str]:
        """Record ids of the calibrations in force on ``device``, one per calibrated channel."""
        channels = {e.channel for e in self._history.get(device, [])}
        tops = (self._stack(device, channel) for channel in sorted(channels))
        return [stack[-1].record_id for stack in tops if stack and stack[-1].record_id]

    def _stack(self, device: str, channel: str) -> list[CalibrationEntry]:
        stack: list[CalibrationEntry] = []
        for entry in self._history.get(device, []):
            if entry.channel != channel:
                continue
            if entry.action == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(entry)
        return stack

    def add(self, entry: CalibrationEntry) -> None:
        """Record a calibration or rollback durably; it applies at once."""
        if entry.action == "rollback" and not self._stack(entry.device, entry.channel):
            raise CalibrationError(f"{entry.device} {entry.channel}: nothing to roll back")
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.history_file(entry.device), "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._history.setdefault(entry.device, []).append(entry)

    def correct(self, device: str, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with every calibrated channel of ``device`` corrected."""
        entries = self._history.get(device)
        if not entries:
            return values
        out = dict(values)
        for channel in {e.channel for e in entries}:
            raw = out.get(channel)
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                out[channel] = round(self.active(device, channel).apply(raw), 3)
        return out


def _read_history(path: Path) -> list[CalibrationEntry]:
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(CalibrationEntry(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a torn last line after a power cut
    return entries
