"""Exponential backoff with optional jitter: the one schedule every retry loop uses.

A port that went away (bus owner), an offline device (its supervisor), a lost broker
(the MQTT link, the station receiver), a platform that refused or did not answer (the
uploads): each waits ``minimum``, then twice as long at each failure up to ``maximum``,
and starts again from ``minimum`` after a success. ``jitter`` draws each wait from
``[(1 - jitter) * w, w]`` so that many clients that lost the same server at the same
moment do not come back in step (a broker restart with 50 lanes); a schedule that must
stay exact (the supervisor's polls, which tests count) uses no jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """The waits of one retry loop."""

    minimum: float
    maximum: float
    factor: float = 2.0
    jitter: float = 0.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.maximum:
            raise ValueError(
                f"backoff needs 0 < minimum <= maximum, not {self.minimum}, {self.maximum}"
            )
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter is a fraction in [0, 1), not {self.jitter}")
        self._next = self.minimum

    @property
    def current(self) -> float:
        """The wait the next failure gets, before jitter."""
        return self._next

    def next(self) -> float:
        """The wait after one more failure (and double the one after it)."""
        wait = self._next
        self._next = min(self._next * self.factor, self.maximum)
        if self.jitter:
            wait *= self.rng.uniform(1.0 - self.jitter, 1.0)
        return wait

    def reset(self) -> None:
        """A success: the next failure waits ``minimum`` again."""
        self._next = self.minimum
