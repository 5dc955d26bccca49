"""Dyno calibration: the roller speed sampled live through ``lanegw calibrate`` against a
running daemon and the simulated XinCheng dyno (real byte streams), a span fitted and
applied (the monitor's values move), recorded, rolled back; a zero or a span beyond the
channel's bounds refused; the flowmeter's O2 bounded as its own; a device class without
a tolerance refused clearly. And the view the dyno methods read through: corrected force
and speed, the power following."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.devices.base import DeviceClass
from drivers.devices.dyno_api import DynoReading
from gateway.commands import CommandError
from gateway.inspection.calibrated import CalibratedDevice, trace_values
from gateway.maintenance import guards
from gateway.maintenance.calibration import CalibrationBook, CalibrationEntry
from tests.gateway.test_calibration import lanegw
from tests.harness import send_command
from tests.inspection.test_dyno_items import dyno_lane
from tests.mosquitto import Mosquitto

SIGNED = ("--technician", "T042", "--certificate", "GZJL-2026-7")


async def monitored_speed(config: str) -> float:
    """The dyno's speed as ``lanegw monitor`` shows it (calibrated), rollers standing."""
    _, out, err = await lanegw("monitor", "dyno", "-c", config, "--json", "--seconds", "1.6")
    values = [json.loads(line).get("values") or {} for line in out.splitlines()]
    speeds = [v["speed_kmh"] for v in values if "speed_kmh" in v]
    assert speeds, err
    return sum(speeds) / len(speeds)


@pytest.mark.mqtt
async def test_dyno_speed_is_sampled_fitted_applied_recorded_and_rolled_back(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = str(tmp_path / "lane.yaml")
    history = tmp_path / "state" / "maintenance" / "calibration" / "dyno.jsonl"
    async with dyno_lane(tmp_path, mosquitto.port, "dyno-asm-clean.yaml") as lane:
        # a live zero: the rollers stand still, the speed sampled from the dyno reads 0
        code, out, err = await lanegw(
            "calibrate", "dyno", "speed_kmh", "--reference", "0", "--samples", "3",
            "--yes", "--json", "-c", config, *SIGNED,
        )  # fmt: skip
        assert code == 0, err
        zero = json.loads(out)
        assert zero["applied"] and abs(zero["offset"]) < 0.5
        assert zero["bounds"]["range"] == 150 and zero["bounds"]["max_offset"] == 1.5
        assert zero["tolerance_pct"] == 0.5  # the speed channel's own, not the class's 1 %

        # beyond the bounds: a zero of 5 km/h means turning rollers; a span 10 % off
        code, _, err = await lanegw(
            "calibrate", "dyno", "speed_kmh", "--reference", "0", "--reading", "5",
            "--yes", "-c", config, *SIGNED,
        )  # fmt: skip
        assert code == 1 and "more than 1 % of the 150 km/h range" in err, err
        code, _, err = await lanegw(
            "calibrate", "dyno", "speed_kmh", "--reference", "0", "--reference", "50",
            "--reading", "0", "--reading", "45", "--yes", "-c", config, *SIGNED,
        )  # fmt: skip
        assert code == 1 and "outside 0.98-1.02 for speed_kmh" in err, err

        # a span against a reference speed: applied at once, the monitor shows it
        code, out, err = await lanegw(
            "calibrate", "dyno", "speed_kmh", "--reference", "0", "--reference", "50",
            "--reading", "1.0", "--reading", "51.0", "--yes", "--json", "-c", config, *SIGNED,
        )  # fmt: skip
        assert code == 0, err
        span = json.loads(out)
        assert span["applied"] and span["gain"] == pytest.approx(1.0)
        assert span["offset"] == pytest.approx(-1.0)
        assert await monitored_speed(config) == pytest.approx(-1.0, abs=0.2)

        code, out, err = await lanegw(
            "calibrate", "dyno", "speed_kmh", "--rollback", "--yes", "--json", "-c", config,
            "--technician", "T042",
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["offset"] == pytest.approx(zero["offset"])
        assert await monitored_speed(config) == pytest.approx(0.0, abs=0.5)

        # the flowmeter's diluted O2, sampled live on ambient air: not a zero (refused);
        # a span against zero gas and air is fitted with the flowmeter's tolerance
        code, _, err = await lanegw(
            "calibrate", "flowmeter", "o2_diluted_pct_vol", "--reference", "0", "--samples",
            "2", "--yes", "-c", config, *SIGNED,
        )  # fmt: skip
        assert code == 1 and "more than 2 % of the 25 % range" in err, err
        o2 = {"device": "flowmeter", "channel": "o2_diluted_pct_vol"}
        answer = await send_command(
            mosquitto.port, "calibrate", o2 | {"references": [0, 20.9], "readings": [0.1, 20.8]}
        )
        assert answer["ok"] and answer["result"]["tolerance_pct"] == 2.0, answer
        assert not answer["result"]["applied"]

        # a device class without a linearity tolerance: a clear refusal, not a KeyError
        answer = await send_command(
            mosquitto.port, "calibrate",
            {"device": "obd", "channel": "rpm", "references": [0], "readings": [0.0]},
        )  # fmt: skip
        assert not answer["ok"], answer
        assert "device class obd_reader has no linearity tolerance" in answer["error"]

        station = lane.station
        await station.wait_for(lambda: len(station.unique_results()) >= 3)
        records = [r for r in station.unique_results() if r["kind"] == "calibration"]
        assert [r["item_code"] for r in records] == [
            "calibration:calibrate", "calibration:calibrate", "calibration:rollback",
        ]  # fmt: skip
        assert records[1]["devices"][0]["id"] == "dyno"
        lines = [json.loads(line) for line in history.read_text().splitlines()]
        assert [e["action"] for e in lines] == ["calibrate", "calibrate", "rollback"]


def test_tolerances_and_bounds_name_their_sources() -> None:
    """Every class the lane can calibrate has a tolerance from the table, each figure with
    its source (unverified ones with their reasoning); a dyno's speed_kmh is bounded as
    a dyno's, a speedometer tester's as its own."""
    assert set(guards.tolerances()) >= {DeviceClass.CHASSIS_DYNAMOMETER, DeviceClass.FLOWMETER}
    sourced = [*guards.tolerances().values(), *guards.channel_bounds().values()]
    for cls in (DeviceClass.CHASSIS_DYNAMOMETER, DeviceClass.FLOWMETER):
        sourced += guards.channel_bounds(cls).values()
    assert all(s.source and (s.confidence != "unverified" or s.reasoning) for s in sourced)
    assert guards.bounds_for("speed_kmh", DeviceClass.CHASSIS_DYNAMOMETER).full_scale == 150
    assert guards.bounds_for("speed_kmh", DeviceClass.SPEEDOMETER_TESTER).full_scale == 120
    assert guards.tolerance_for(DeviceClass.CHASSIS_DYNAMOMETER, "force_n") == 1.0
    with pytest.raises(CommandError, match="device class obd_reader has no linearity"):
        guards.tolerance_for(DeviceClass.OBD_READER, "rpm")


class _Dyno:
    device_id = "dyno"
    base_inertia_kg = 907.2

    async def read_state(self) -> DynoReading:
        return DynoReading(40.0, 1000.0, 11.111, False, True, "power", 11.1)


async def test_the_dyno_methods_read_corrected_force_speed_and_power(tmp_path: Path) -> None:
    book = CalibrationBook(tmp_path)
    book.add(CalibrationEntry("dyno", "force_n", "calibrate", 1.02, 0.0, 0.0))
    book.add(CalibrationEntry("dyno", "speed_kmh", "calibrate", 1.0, -0.4, 0.0))
    view = CalibratedDevice(_Dyno(), lambda values: book.correct("dyno", values))
    reading = await view.read_state()
    assert (reading.speed_kmh, reading.force_n) == (39.6, 1020.0)
    assert reading.power_kw == pytest.approx(11.111 * 1.02 * 39.6 / 40, abs=1e-3)
    assert reading.target == 11.1 and view.base_inertia_kg == 907.2  # passes through
    uncalibrated = CalibratedDevice(_Dyno(), lambda values: values)
    assert (await uncalibrated.read_state()).power_kw == 11.111


def test_the_trace_values_judge_the_speed_alone() -> None:
    """ASM's in_tolerance also judges the power: the trace's in_band is the speed's."""
    asm = {"speed_kmh": 24.0, "target_kmh": 25.0, "band_low_kmh": 23.0,
           "band_high_kmh": 27.0, "in_tolerance": False, "hc_ppm": 80}  # fmt: skip
    assert trace_values(asm) == {
        "speed_kmh": 24.0, "target_kmh": 25.0, "band_low_kmh": 23.0, "band_high_kmh": 27.0,
        "in_band": True,
    }  # fmt: skip
    assert trace_values({"hc_ppm": 80}) == {}
