"""A tiny explicit state machine: states, an allowed-transition table, a history.

Procedures declare their states as an enum and their transitions as data; every step
goes through ``go``, so an impossible sequence is a loud ``IllegalTransition`` (our bug),
and the history is kept for the record and for tests.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from gateway.errors import GatewayError

S = TypeVar("S", bound=enum.Enum)


class IllegalTransition(GatewayError):
    """A procedure tried a transition its table does not allow."""


class Machine(Generic[S]):
    """Current state, allowed transitions and the timed history."""

    def __init__(
        self,
        name: str,
        initial: S,
        transitions: Mapping[S, frozenset[S]],
        on_enter: Callable[[S], None] | None = None,
    ) -> None:
        self.name = name
        self.state = initial
        self._transitions = transitions
        self._on_enter = on_enter
        self.history: list[tuple[S, float]] = [(initial, time.monotonic())]

    def go(self, state: S) -> None:
        """Move to ``state`` if the table allows it."""
        if state not in self._transitions.get(self.state, frozenset()):
            raise IllegalTransition(f"{self.name}: {self.state.name} -> {state.name} not allowed")
        self.state = state
        self.history.append((state, time.monotonic()))
        if self._on_enter is not None:
            self._on_enter(state)
