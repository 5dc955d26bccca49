"""The gateway's exception tree; drivers have their own (``drivers.errors``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class GatewayError(Exception):
    """Base of every error raised by ``gateway``."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One mistake in a config file."""

    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.field or '(file)'}: {self.message}"


class ConfigError(GatewayError):
    """A config file that cannot be used; lists every problem found."""

    def __init__(self, path: Path, problems: list[ConfigProblem]) -> None:
        super().__init__(f"{path}: {len(problems)} problem(s)")
        self.path = path
        self.problems = problems


class OutboxFull(GatewayError):
    """The outbox is at its bound: new inspections are refused until it drains."""


class InspectionRefused(GatewayError):
    """An order that cannot start now (busy lane, outbox full, invalid order...)."""
