"""Plausibility flags: records whose raw data look manipulated are flagged, never blocked.

The signal tests run on curves shaped like the brake simulator's (a smoothstep rise to a
plateau) with and without sensor noise; the end-to-end tests run a real daemon against
the simulated brake tester: a noise-free tester (what a box computing values produces)
gets its curves flagged, the same curve recorded again is flagged as a repeat, a force
beyond the configured range is flagged, and an honest noisy tester gets no flag at all.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.plausibility import FingerprintBook
from gateway.plausibility.signals import above, curve_fingerprint, is_noise_free
from simulators.lane import SimDevice, SimLane
from simulators.scenario import load_scenario
from tests.harness import Station, running_lane
from tests.inspection.test_brake_items import SCENARIOS, inspect, lane_config, vehicle_order
from tests.mosquitto import Mosquitto

MIN_SAMPLES, FLAT = 30, 0.6


def brake_curve(peak: float, noise: float, rng: random.Random, samples: int = 300) -> list[float]:
    """Drag, a smoothstep rise over 0.8 s, a plateau: at 100 Hz, whole daN, gaussian noise."""
    values = []
    for i in range(samples):
        x = min(1.0, max(0.0, (i - 50) / 80))
        force = 8 + (peak - 8) * x * x * (3 - 2 * x)
        values.append(max(0, round(rng.gauss(force, noise * (force + 20)))))
    return values


def test_a_computed_curve_has_no_noise_a_measured_one_does() -> None:
    rng = random.Random(1)
    assert is_noise_free(brake_curve(450, 0.0, rng), MIN_SAMPLES, FLAT)
    assert not is_noise_free(brake_curve(450, 0.003, rng), MIN_SAMPLES, FLAT)
    assert not is_noise_free(brake_curve(450, 0.01, rng), MIN_SAMPLES, FLAT)


def test_curves_too_short_or_without_braking_are_not_judged() -> None:
    rng = random.Random(2)
    assert not is_noise_free(brake_curve(450, 0.0, rng, samples=60), MIN_SAMPLES, FLAT)
    assert not is_noise_free([0.0] * 300, MIN_SAMPLES, FLAT)
    assert not is_noise_free([], MIN_SAMPLES, FLAT)


@settings(max_examples=200, deadline=None)
@given(
    peak=st.floats(min_value=150, max_value=3000),
    noise=st.floats(min_value=0.004, max_value=0.05),
    seed=st.integers(0, 2**32),
)
def test_no_noisy_curve_is_called_noise_free(peak: float, noise: float, seed: int) -> None:
    assert not is_noise_free(brake_curve(peak, noise, random.Random(seed)), MIN_SAMPLES, FLAT)


def test_a_replay_shifted_in_time_has_the_same_fingerprint() -> None:
    curve = brake_curve(450, 0.01, random.Random(3))
    shifted = [0.0] * 7 + curve + [0.0] * 3  # replayed with other idle ends
    other = brake_curve(450, 0.01, random.Random(4))
    print_ = curve_fingerprint(curve, curve, MIN_SAMPLES)
    assert print_ is not None
    assert curve_fingerprint(shifted, shifted, MIN_SAMPLES) == print_
    assert curve_fingerprint(other, other, MIN_SAMPLES) != print_
    assert curve_fingerprint(curve[:20], curve[:20], MIN_SAMPLES) is None
    assert above(curve, 400) == max(curve) and above(curve, 3000) is None


def test_fingerprints_survive_a_restart_and_the_same_item_is_no_repeat(
    tmp_path: Path,
) -> None:
    path = tmp_path / "plausibility.sqlite3"
    book = FingerprintBook(path, capacity=100)
    assert book.remember("f1", "ev-a", "INS-1", "B1") is None
    assert book.remember("f1", "ev-a", "INS-1", "B1") is None  # the same record, retried
    seen = book.remember("f1", "ev-a", "INS-1", "B1", attempt=2)  # a retest: same curve
    assert seen is not None and seen.attempt == 1
    book.close()
    book = FingerprintBook(path, capacity=100)
    seen = book.remember("f1", "ev-b", "INS-2", "B1")
    assert seen is not None and (seen.inspection_id, seen.item_code) == ("INS-1", "B1")
    for i in range(150):  # the oldest are forgotten beyond the capacity
        book.remember(f"g{i}", f"ev-{i}", "INS-3", "B1")
    assert book.remember("f1", "ev-c", "INS-4", "B1") is None
    book.close()


# --- end to end: a real daemon and the simulated brake tester ------------------------
@contextlib.asynccontextmanager
async def brake_lane(
    tmp_path: Path, port: int, scenario: str, ranges: dict[str, float] | None = None
) -> AsyncIterator[Station]:
    sims = SimLane(load_scenario(SCENARIOS / scenario), [SimDevice("brake", "jxgt2")])

    def config(lane: SimLane) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        buses, devices = lane_config(lane)
        if ranges:
            devices[0]["identity"] = {"ranges": ranges}
        return buses, devices

    # the simulator's accelerated time makes short curves: judge them from 10 samples
    extra = {"procedure_time_scale": 0.02, "plausibility": {"min_curve_samples": 10}}
    async with running_lane(tmp_path, port, sims, config, extra) as (_, station):
        yield station


def codes(record: dict[str, Any]) -> list[str]:
    return sorted(flag["code"] for flag in record["flags"])


@pytest.mark.mqtt
async def test_a_noise_free_tester_is_flagged_and_its_repeated_curve_too(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """brake-edge-inside.yaml has no noise: its curves are computed, as a rewriting box's
    would be, and every vehicle (two axles, both tested) gets the very same curves."""
    async with brake_lane(tmp_path, mosquitto.port, "brake-edge-inside.yaml") as station:
        first = await inspect(station, mosquitto.port, vehicle_order(1, ["B1", "B2"]))
        second = await inspect(station, mosquitto.port, vehicle_order(2, ["B1", "B2"]))
    for axle in ("B1", "B2"):
        assert codes(first[axle]) == ["no_noise", "no_noise"]  # left and right
        assert codes(second[axle]) == ["identical_curve", "no_noise", "no_noise"]
        repeat = next(f for f in second[axle]["flags"] if f["code"] == "identical_curve")
        assert f"item {axle} of inspection {first[axle]['inspection_id']}" in repeat["message"]
        assert repeat["evidence"] in {e["sha256"] for e in second[axle]["evidence"]}
    # flags never change a verdict; the summary repeats them with their item
    assert [first[c]["verdict"] for c in ("B1", "B2", "summary")] == ["pass"] * 3
    assert second["summary"]["verdict"] == "pass"
    assert codes(second["summary"]) == sorted(codes(second["B1"]) + codes(second["B2"]))
    assert {f["message"][:4] for f in second["summary"]["flags"]} == {"B1: ", "B2: "}


@pytest.mark.mqtt
async def test_an_honest_tester_is_not_flagged_and_a_force_beyond_range_is(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """brake-passing-car.yaml has 1 % noise; its front wheels brake at about 420 daN,
    beyond a (deliberately small) configured range of 400 daN."""
    ranges = {"force_dan": 400.0}
    async with brake_lane(tmp_path, mosquitto.port, "brake-passing-car.yaml", ranges) as st:
        records = await inspect(st, mosquitto.port, vehicle_order(1, ["B1", "B2"]))
    assert codes(records["B2"]) == []
    assert "no_noise" not in codes(records["B1"])
    assert "above_range" in codes(records["B1"])
    assert any("range of 400 daN" in f["message"] for f in records["B1"]["flags"])
