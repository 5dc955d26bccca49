"""OBD check machine on plain replies: a clean car passes; MIL on, a VIN mismatch or too
many incomplete monitors fail; no VIN reported is recorded, not judged; no communication
fails; an unsupported optional read is recorded and the check goes on."""

from __future__ import annotations

from typing import Any

from drivers.devices.dyno_api import MilStatus
from drivers.errors import NotSupported
from gateway.inspection.obd_check import ObdCheckMachine
from gateway.limits import load_table
from gateway.records import Verdict
from tests.inspection.machine_driver import FakeLane

TABLE = load_table("obd-checks")
VIN = "LSVAU2180N2183294"
COMPLETE = {"catalyst": "complete", "oxygen_sensor": "complete", "evaporative_system": "complete",
            "egr_system": "not_supported", "misfire": "complete"}  # fmt: skip


def replies(**over: Any) -> dict[tuple[str, str], Any]:
    base = {
        "connect": "ISO 15765-4 (CAN 11/500)",
        "read_vin": VIN,
        "read_mil": MilStatus(False, 0),
        "read_readiness": COMPLETE,
        "read_dtcs": [],
        "read_calibration_ids": ["JMB*36761500"],
        "read_cvns": ["1791BC82"],
    }
    base.update(over)
    return {("obd", k): v for k, v in base.items()}


def run(**over: Any) -> tuple[Any, dict[str, Any]]:
    fake = FakeLane(speed=lambda t, ln: 0.0, replies=replies(**over))
    m = ObdCheckMachine(TABLE, VIN)
    finish = fake.run(m)
    return finish, {x.name: x for x in finish.measurements}


def test_clean_car_passes() -> None:
    finish, got = run()
    assert finish.verdict is Verdict.PASS and finish.reason is None
    assert got["obd_vin_mismatch"].value == 0 and got["obd_mil_on"].verdict is Verdict.PASS
    assert got["obd_calibration_ids"].value == "JMB*36761500"
    assert got["obd_readiness_incomplete"].limit is not None
    assert got["obd_readiness_incomplete"].limit.confidence == "mem"


def test_mil_on_fails() -> None:
    finish, got = run(read_mil=MilStatus(True, 2), read_dtcs=["P0301", "P0420"])
    assert finish.verdict is Verdict.FAIL and finish.reason == "failed: obd_mil_on"
    assert got["obd_dtcs"].value == "P0301,P0420" and got["obd_dtc_count"].value == 2


def test_vin_mismatch_fails() -> None:
    finish, got = run(read_vin="LSVAU2180N2999999")
    assert finish.verdict is Verdict.FAIL
    assert got["obd_vin_mismatch"].verdict is Verdict.FAIL
    assert got["obd_vin"].value == "LSVAU2180N2999999"


def test_no_vin_reported_is_recorded_not_judged() -> None:
    finish, got = run(read_vin=None)
    assert finish.verdict is Verdict.PASS
    assert got["obd_vin_reported"].value is False and got["obd_vin_reported"].verdict is None


def test_three_incomplete_monitors_fail() -> None:
    readiness = {**COMPLETE, "catalyst": "incomplete", "oxygen_sensor": "incomplete",
                 "evaporative_system": "incomplete"}  # fmt: skip
    finish, got = run(read_readiness=readiness)
    assert finish.verdict is Verdict.FAIL
    assert got["obd_readiness_incomplete"].value == 3
    assert (
        got["obd_readiness_incomplete_monitors"].value
        == "catalyst,evaporative_system,oxygen_sensor"
    )


def test_no_communication_fails() -> None:
    finish, got = run(connect=TimeoutError("UNABLE TO CONNECT"))
    assert finish.verdict is Verdict.FAIL
    assert finish.reason == "no OBD communication (connect: UNABLE TO CONNECT)"
    assert got["obd_communication"].value is False


def test_unsupported_optional_read_is_recorded() -> None:
    finish, got = run(read_cvns=NotSupported("mode 09 PID 06 not supported"))
    assert finish.verdict is Verdict.PASS
    assert got["obd_cvns"].value is None
    assert got["obd_cvns_error"].value == "mode 09 PID 06 not supported"
