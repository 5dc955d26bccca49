"""Faults a simulated tester can show on demand, applied to the bytes it sends.

A ``FaultPlan`` holds pending faults; each reply the simulator writes consumes at most
one. Faults that need protocol knowledge (a NAK) ask the simulator for the bytes.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass


class Fault(enum.StrEnum):
    """Kinds of misbehaviour."""

    NO_REPLY = "no_reply"  # swallow the reply
    SLOW_REPLY = "slow_reply"  # send the reply after ``delay_s``
    BAD_CHECKSUM = "bad_checksum"  # flip the last byte
    NAK = "nak"  # answer the protocol's NAK instead
    SPLIT = "split"  # send the reply in two writes with a pause between
    GLUE = "glue"  # hold the reply and send it glued to the next one
    GARBAGE = "garbage"  # random bytes before the reply
    DISCONNECT = "disconnect"  # drop the endpoint for ``delay_s`` seconds, then come back


@dataclass(slots=True)
class FaultSpec:
    """One pending fault."""

    fault: Fault
    delay_s: float = 0.5


class FaultPlan:
    """Pending faults (consumed one per reply) plus an optional random fault rate."""

    def __init__(
        self, rate: float = 0.0, kinds: tuple[Fault, ...] = (), seed: int | None = None
    ) -> None:
        self._pending: deque[FaultSpec] = deque()
        self._rate = rate
        self._kinds = kinds or (Fault.BAD_CHECKSUM, Fault.NO_REPLY, Fault.GARBAGE)
        self._random = random.Random(seed)
        self.injected: dict[Fault, int] = {}

    def inject(self, fault: Fault | str, count: int = 1, delay_s: float = 0.5) -> None:
        """Make the next ``count`` replies show ``fault``."""
        for _ in range(count):
            self._pending.append(FaultSpec(Fault(fault), delay_s))

    def set_rate(self, rate: float) -> None:
        """Inject a random fault into this fraction of replies."""
        self._rate = rate

    def clear(self) -> None:
        """Forget pending faults and stop random ones."""
        self._pending.clear()
        self._rate = 0.0

    def next_fault(self) -> FaultSpec | None:
        """The fault for the reply about to be sent, if any."""
        spec: FaultSpec | None = None
        if self._pending:
            spec = self._pending.popleft()
        elif self._rate and self._random.random() < self._rate:
            spec = FaultSpec(self._random.choice(self._kinds))
        if spec is not None:
            self.injected[spec.fault] = self.injected.get(spec.fault, 0) + 1
        return spec

    def garbage(self, size: int = 5) -> bytes:
        """Random line noise."""
        return bytes(self._random.randrange(256) for _ in range(size))
