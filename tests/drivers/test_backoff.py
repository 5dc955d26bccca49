"""The one backoff schedule: doubles from the minimum, stops at the maximum, starts over
after a success, and jitter only ever shortens a wait (never past its fraction)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.backoff import Backoff


def test_doubles_caps_and_resets() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.current == 0.5 and backoff.next() == 0.5


@given(
    minimum=st.floats(0.001, 10),
    spread=st.floats(1, 100),
    jitter=st.floats(0, 0.99),
    seed=st.integers(0, 2**32),
    failures=st.integers(1, 40),
)
def test_jitter_stays_within_its_fraction(
    minimum: float, spread: float, jitter: float, seed: int, failures: int
) -> None:
    plain = Backoff(minimum, minimum * spread)
    jittered = Backoff(minimum, minimum * spread, jitter=jitter, rng=random.Random(seed))
    for _ in range(failures):
        exact, drawn = plain.next(), jittered.next()
        assert (1 - jitter) * exact - 1e-12 <= drawn <= exact + 1e-12
        assert exact <= minimum * spread


@pytest.mark.parametrize(("minimum", "maximum", "jitter"), [(0, 1, 0), (2, 1, 0), (1, 2, 1.0)])
def test_a_schedule_that_cannot_work_is_refused(
    minimum: float, maximum: float, jitter: float
) -> None:
    with pytest.raises(ValueError, match=r"backoff|jitter"):
        Backoff(minimum, maximum, jitter=jitter)
