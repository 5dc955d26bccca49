"""Calibration: the fit, and against a running daemon a zero calibration that changes later
values, a refused bad reference, a rollback, and calibration records published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.maintenance.calibration import (
    CalibrationBook,
    CalibrationEntry,
    CalibrationError,
    Linear,
    fit,
)
from simulators.lane import SimDevice, SimLane
from tests.harness import run_cli, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"


def test_linearity_is_judged_against_the_span() -> None:
    """A zero point reading 0.165 kg of a 1000 kg span is 0.006 % after the fit, not 6 %
    (the old "% of the reference, or of 1" refused it)."""
    result = fit([0, 500, 1000], [0.165, 500.0, 1000.2], 2.0)
    assert result.linear_ok and max(map(abs, result.errors_pct)) < 0.02


def test_zero_moves_only_the_offset() -> None:
    result = fit([0.0], [3.0], 3.0, Linear(1.02, 0.0))
    assert result.coefficients == Linear(1.02, -3.06) and result.linear_ok


def test_span_fits_gain_and_offset_and_checks_linearity() -> None:
    result = fit([0, 200, 500], [3.0, 199.0, 493.0], 3.0)
    assert result.coefficients.gain == pytest.approx(1.0204, abs=1e-3)
    assert result.linear_ok
    bent = fit([0, 200, 500], [0.0, 230.0, 500.0], 3.0)
    assert not bent.linear_ok  # 200 reads 15 % high after the best line


@pytest.mark.parametrize(
    ("refs", "raw", "message"),
    [
        ([0, 500], [5.0, 5.0], "readings are equal"),
        ([0, 500], [0.0, 100.0], "outside 0.5-2.0"),
        ([-10.0], [0.0], "must not be negative"),
        ([500, 500], [1.0, 2.0], "two different references"),
    ],
)
def test_unusable_references_are_refused(refs: list[float], raw: list[float], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        fit(refs, raw, 3.0)


async def lanegw(*args: str) -> tuple[int, str, str]:
    """Run the CLI; stdout and stderr with Rich's line wrapping undone."""
    return await run_cli(*args, unwrap=(False, True))


def weigher_lane(lane: SimLane) -> Any:
    bus = {"id": "com1", "url": lane.running["weigher"].url}
    device = {
        "id": "weigher",
        "class": "axle_weigher",
        "protocol": "xk3190",
        "bus": "com1",
        "poll_period_s": 0.2,
        "options": {"mode": "command"},
    }
    return [bus], [device]


async def mean_weight(config: str) -> float:
    _, out, err = await lanegw("monitor", "weigher", "-c", config, "--json", "--seconds", "1.2")
    lines = [json.loads(line) for line in out.splitlines()]
    values = [line["values"]["weight_kg"] for line in lines if "values" in line]
    assert values, err
    return sum(values) / len(values)


async def test_calibration_applies_rolls_back_and_is_recorded(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Guards first: with the car on the plate a live zero is refused (its offset is far
    beyond the plate's bounds); over MQTT a calibration needs its technician and
    certificate and a single reference must be 0. Then a zero (the raw reading given, as
    a script does), a span judged against the span, a rollback, and their records."""
    sims = SimLane(
        scenario_at_speed(SCENARIO, 0.05), [SimDevice("weigher", "xk3190", {"mode": "command"})]
    )
    config = str(tmp_path / "lane.yaml")
    history = tmp_path / "state" / "maintenance" / "calibration" / "weigher.jsonl"
    signed = ("--technician", "T042", "--certificate", "GZJL-2026-2")
    async with running_lane(tmp_path, mosquitto.port, sims, weigher_lane) as (_, station):
        before = await mean_weight(config)
        assert before > 500  # the axle on the plate

        code, _, err = await lanegw(
            "calibrate", "weigher", "weight_kg", "--reference", "0", "--samples", "3",
            "--yes", "-c", config, *signed,
        )  # fmt: skip
        assert code == 1 and "more than 4 % of the 10000 kg range" in err, err
        assert "vehicle on the plate" in err and not history.exists()

        unsigned = {"device": "weigher", "channel": "weight_kg", "apply": True}
        answer = await send_command(
            mosquitto.port, "calibrate", unsigned | {"references": [0], "readings": [3.0]}
        )
        assert not answer["ok"] and "technician and certificate required" in answer["error"]
        answer = await send_command(
            mosquitto.port,
            "calibrate",
            unsigned | {"references": [3.5], "readings": [0.0], "technician": "T042"},
        )
        assert not answer["ok"] and "a single reference must be 0" in answer["error"]
        code, _, err = await lanegw(
            "calibrate", "weigher", "weight_kg", "--reference", "0", "--reading", "3",
            "--yes", "-c", config, "--technician", "T042",
        )  # fmt: skip
        assert code == 2 and "--certificate is required" in err
        assert not history.exists()

        code, out, err = await lanegw(
            "calibrate", "weigher", "weight_kg", "--reference", "0", "--reading", "300",
            "--yes", "-c", config, *signed,
        )  # fmt: skip
        assert code == 0, err
        text = " ".join(out.split())
        assert "offset -300.000 (was gain 1.00000, offset +0.000)" in text
        assert f"saved in {history}" in text and history.exists()
        assert await mean_weight(config) == pytest.approx(before - 300, abs=0.05 * before)

        # a span whose zero point reads 0.165 kg: 0.02 % of the span, not a "16.5 %" error
        code, out, err = await lanegw(
            "calibrate", "weigher", "weight_kg", "--reference", "0", "--reference", "500",
            "--reference", "1000", "--reading", "0.165", "--reading", "500",
            "--reading", "1000.2", "--yes", "--json", "-c", config, *signed,
        )  # fmt: skip
        assert code == 0, err
        span = json.loads(out)
        assert span["applied"] and max(map(abs, span["errors_pct"])) < 0.05
        assert span["previous"] == {"gain": 1.0, "offset": -300.0}

        code, _, err = await lanegw(
            "calibrate", "weigher", "weight_kg", "--reference", "0", "--reference", "1000",
            "--reading", "5", "--reading", "5", "--yes", "-c", config, *signed,
        )  # fmt: skip
        assert code == 1 and "readings are equal" in err  # a bad reference is refused

        code, out, err = await lanegw(
            "calibrate", "weigher", "weight_kg", "--rollback", "--yes", "--json", "-c", config,
            "--technician", "T042",
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["offset"] == -300.0  # the zero is in force again

        await station.wait_for(lambda: len(station.unique_results()) >= 3)
        records = [r for r in station.unique_results() if r["kind"] == "calibration"]
        assert [r["item_code"] for r in records] == [
            "calibration:calibrate",
            "calibration:calibrate",
            "calibration:rollback",
        ]
        assert records[0]["devices"][0]["id"] == "weigher"


def test_records_name_the_calibrations_in_force(tmp_path: Path) -> None:
    """DeviceRef.calibration_ref: the record ids of the calibrations in force, per channel;
    a rollback puts the previous one back in force, and the book survives a restart."""
    book = CalibrationBook(tmp_path)
    assert book.in_force("brake") == []

    def entry(channel: str, action: str, record_id: str | None) -> CalibrationEntry:
        return CalibrationEntry("brake", channel, action, 1.01, -2.0, 0.0, record_id=record_id)

    book.add(entry("force_left_dan", "calibrate", "rec-1"))
    book.add(entry("force_left_dan", "calibrate", "rec-2"))
    book.add(entry("force_right_dan", "calibrate", "rec-3"))
    assert book.in_force("brake") == ["rec-2", "rec-3"]
    book.add(entry("force_left_dan", "rollback", None))
    assert CalibrationBook(tmp_path).in_force("brake") == ["rec-1", "rec-3"]
    assert book.in_force("weigher") == []


def test_bounds_come_from_the_devices_range_and_are_data() -> None:
    """The offset bound is a share of the configured full scale (or of the default); a
    span's gain outside its range and a channel without bounds are refused."""
    from gateway.commands import CommandError
    from gateway.config import DeviceConfig
    from gateway.maintenance.guards import channel_bounds, check_coefficients

    def plate(**identity: Any) -> DeviceConfig:
        return DeviceConfig.model_validate(
            {"id": "weigher", "class": "axle_weigher", "protocol": "xk3190", "bus": "com1",
             "identity": identity}
        )  # fmt: skip

    assert check_coefficients(plate(), "weight_kg", Linear(1.0, -390.0), False)["range"] == 10000
    with pytest.raises(CommandError, match=r"more than 4 % of the 10000 kg range \(±400 kg\)"):
        check_coefficients(plate(), "weight_kg", Linear(1.0, -410.0), False)
    small = plate(ranges={"weight_kg": 3000})  # a 3 t wheel plate: ±120 kg
    with pytest.raises(CommandError, match="3000 kg range"):
        check_coefficients(small, "weight_kg", Linear(1.0, -130.0), False)
    with pytest.raises(CommandError, match=r"gain 1\.0800 is outside 0\.95-1\.05"):
        check_coefficients(plate(), "weight_kg", Linear(1.08, 0.0), True)
    with pytest.raises(CommandError, match="'spread_kg' has no calibration bounds"):
        check_coefficients(plate(), "spread_kg", Linear(1.0, 0.0), False)
    assert all(b.source and b.confidence for b in channel_bounds().values())
