"""The flow's pure parts: the VIN check digit, the registration's field errors, the rules
and code tables as data, the review of attempts, the station-signed manual records (on
both databases) and the report's font error."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.inspection.order import VehicleCategory
from gateway.inspection.procedures import PROCEDURES
from gateway.integrity import public_key_from_text, record_hash, signature_valid
from station.flow.config import FlowConfig, flow_checks
from station.flow.manual import ItemResult, ManualSigner, PhotoRef, Submission, manual_results
from station.flow.registration import FieldErrors, parse_registration, parse_retest
from station.flow.report import ReportData, ReportError, render_report
from station.flow.review import build_review
from station.flow.rules import Vehicle, derive, kinds, lane_table, manual_table, plate_types
from station.flow.store import Attempt
from station.flow.vin import VIN_PATTERN, check_digit, vin_problem
from station.store import RecordStore
from tests.station.flow_client import VIN, registration

VIN_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"


def test_known_vins() -> None:
    assert check_digit("1M8GDM9AXKP042788") == "X"  # the usual worked example
    assert vin_problem("1M8GDM9AXKP042788") is None and vin_problem(VIN) is None
    assert vin_problem("1M8GDM9A1KP042788") == "校验位（第9位）错误：应为X，现为1"
    assert vin_problem("LSVAU218XN218329") == "车辆识别代号应为17位，现为16位"
    assert "不含I、O、Q" in (vin_problem("LSVAU218XN21832O4") or "")


@given(body=st.text(alphabet=VIN_CHARS, min_size=17, max_size=17), other=st.sampled_from(VIN_CHARS))
def test_a_vin_passes_with_its_check_digit_only(body: str, other: str) -> None:
    vin = body[:8] + check_digit(body) + body[9:]
    assert VIN_PATTERN.match(vin) and vin_problem(vin) is None
    wrong = vin[:8] + other + vin[9:]
    assert (vin_problem(wrong) is None) == (other == vin[8])


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"plate_type": "99"}, "plate_type", "未知的号牌种类：99"),
        ({"vin": "LSVAU2180N2183294"}, "vin", "校验位（第9位）错误：应为X，现为0"),
        ({"plate": "A12345"}, "plate", "号牌号码格式不对（例：粤A12345）"),
        ({"kind": "tank"}, "kind", "未知的车辆类型：tank"),
        ({"gross_mass_kg": 1000}, "gross_mass_kg", "总质量不能小于整备质量"),
        ({"axles": 9}, "axles", "应在1至6之间"),
        ({"axles": "two"}, "axles", "应为整数"),
        ({"headlamps": 3}, "headlamps", "前照灯为二灯制或四灯制"),
        ({"vin": ""}, "vin", "必填"),
        ({"inspection_type": "retest"}, "inspection_type", "复检请选择复检并填写原检验流水号"),
    ],
)
def test_field_errors(changes: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(FieldErrors) as caught:
        parse_registration(registration(**changes))
    assert caught.value.errors == {field: message}


def test_a_registration_and_a_retest_request() -> None:
    parsed = parse_registration(registration(plate=" 粤a12345 ", vin=VIN.lower()))
    assert (parsed.plate, parsed.vin, parsed.reference_mass_kg) == ("粤A12345", VIN, 1400)
    assert parse_retest({"previous_serial": "44010012612030001"}) == "44010012612030001"
    with pytest.raises(FieldErrors):
        parse_retest({"previous_serial": "123"})


def test_the_tables_hang_together() -> None:
    """Every kind named in the rules exists, every lane item is one the gateway runs and has a
    name, every category is a limit category of the order."""
    known = set(kinds())
    table = manual_table()
    for entry in [*table.items, *table.photos]:
        assert set(entry.kinds or []) <= known, entry
    for rule in lane_table().rules:
        assert set(rule.kinds or []) | set(rule.not_kinds or []) <= known, rule
    assert {k.category for k in kinds().values()} <= {c.value for c in VehicleCategory}
    assert sorted(i.n for i in table.items) == list(range(1, 52))
    assert set(table.groups) == {i.group for i in table.items}
    assert {"02", "15", "52"} <= set(plate_types().codes)
    for kind, fuel, axles, lamps, emission in itertools.product(
        known, ["petrol", "diesel", "electric"], range(1, 6), [2, 4], [False, True]
    ):
        derived = derive(Vehicle(kind, "02", fuel, axles, lamps, emission))
        assert set(derived.lane_items) <= set(PROCEDURES), derived
        assert all(code in lane_table().names for code in derived.lane_items)
        assert {1, 2, 4, 15, 18} <= set(derived.manual_items)  # every vehicle: NQ, UC, tyres
        assert {"0111", "0112", "0113"} <= set(derived.photos)


def test_items_by_vehicle() -> None:
    car = derive(Vehicle("small_passenger", "02", "petrol", 2, 2, False))
    assert car.lane_items == ["B1", "B2", "B0", "H1", "H4"]
    trailer = derive(Vehicle("trailer", "15", "other", 3, 2, True))
    assert trailer.lane_items == ["B1", "B2", "B3", "B0"]  # no lamps, no emissions
    assert 5 not in trailer.manual_items and 43 not in trailer.manual_items
    coach = derive(Vehicle("small_passenger", "16", "petrol", 2, 2, False))
    assert 38 in coach.manual_items and 38 not in car.manual_items  # 副制动踏板


def attempt(n: int, lane: list[str], manual: list[int], state: str = "done") -> Attempt:
    return Attempt("44010012612030001", n, lane, manual, [], "L1", "sent", None, None, state, "")


def record(
    code: str, attempt_no: int, verdict: str, lane: str = "L1", **extra: Any
) -> dict[str, Any]:
    return {"lane": lane, "kind": "item", "item_code": code, "attempt": attempt_no,
            "verdict": verdict, "measurements": [], "finished_at": f"{attempt_no}", **extra}  # fmt: skip


def manual(attempt_no: int, *results: tuple[int, str, str]) -> dict[str, Any]:
    measurements = [{"name": f"{n:02d}.x", "value": d, "verdict": v} for n, v, d in results]
    return record("F1", attempt_no, "pass", lane="PDA", measurements=measurements)


def test_the_latest_attempt_of_an_item_counts() -> None:
    attempts = [attempt(1, ["B1", "H1"], [18, 19]), attempt(2, ["B1"], [18])]
    stored = [
        ("ok", record("B1", 1, "fail")),
        ("ok", record("H1", 1, "pass")),
        ("ok", {**record("summary", 1, "fail"), "kind": "summary"}),
        ("ok", manual(1, (18, "fail", "胎纹过浅"), (19, "pass", ""))),
    ]
    review = build_review("44010012612030001", attempts, stored)
    assert not review.lane_done and review.manual_done and not review.ready
    assert {i.key for i in review.failed} == {"B1", "18", "summary"}
    stored += [("ok", record("B1", 2, "pass")), ("suspect", manual(2, (18, "pass", "")))]
    stored.append(("ok", {**record("summary", 2, "pass"), "kind": "summary"}))
    review = build_review("44010012612030001", attempts, stored)
    assert review.ready and review.verdict == "pass"
    (tyres,) = [i for i in review.manual if i.key == "18"]
    assert [(r.attempt, r.verdict, r.reason) for r in tyres.results] == [
        (1, "fail", "胎纹过浅"), (2, "pass", None),
    ]  # fmt: skip
    assert any("suspect" in flag for flag in review.flags)
    aborted = build_review("x", [attempt(1, ["H1"], [], "none")],
                           [("ok", record("H1", 1, "aborted", reason="headlamp offline"))])  # fmt: skip
    assert aborted.verdict == "fail" and any("headlamp offline" in f for f in aborted.flags)


async def test_manual_records_are_signed_chained_and_stored(
    store: RecordStore, tmp_path: Path
) -> None:
    signer = ManualSigner(store, "4401001", tmp_path / "flow.key")
    await signer.start()
    results = [ItemResult(1, True), ItemResult(18, False, "胎面磨损"), ItemResult(47, True)]
    photos = [PhotoRef("0111", "ab" * 32)]
    first = await signer.submit(Submission("44010012612030001", 1, "insp", "李", results, photos))
    assert [r["item_code"] for r in first] == ["NQ", "F1", "C1"]
    assert [r["verdict"] for r in first] == ["pass", "fail", "pass"]
    assert first[1]["reason"] == "18 轮胎：胎面磨损"
    assert first[0]["evidence"] == [{"kind": "photo:0111", "sha256": "ab" * 32, "samples": None,
                                     "interval_ms": None, "upload_string": None}]  # fmt: skip
    second = await signer.submit(Submission("44010012612030001", 2, "insp", "李",
                                            [ItemResult(18, True)]))  # fmt: skip
    key = public_key_from_text(signer.public_key)
    chain = [*first, *second]
    assert [r["seq"] for r in chain] == [1, 2, 3, 4]
    for previous, current in itertools.pairwise(chain):
        assert current["prev_hash"] == record_hash(previous)
    assert all(signature_valid(r, key) for r in chain)
    stored = await store.inspection_records("44010012612030001")
    assert [status for status, _ in stored] == ["ok"] * 4
    assert manual_results([r for _, r in stored])[18] == ("pass", "", 2)
    # a second server process with the same key file continues the same chain
    again = ManualSigner(store, "4401001", tmp_path / "flow.key")
    await again.start()
    (third,) = await again.submit(Submission("44010012612030002", 1, "insp", "李",
                                             [ItemResult(2, True)]))  # fmt: skip
    assert third["seq"] == 5 and third["prev_hash"] == record_hash(chain[-1])


def test_a_missing_font_is_said_plainly(tmp_path: Path) -> None:
    review = build_review("x", [attempt(1, [], [1])], [])
    data = ReportData("站", "", "", {"plate": "粤A1"}, "2026-12-03", "张", "http://x/verify", "")
    with pytest.raises(ReportError, match="install Debian's fonts-wqy-microhei"):
        render_report(review, data, tmp_path / "missing.ttc")


def test_station_check_tries_the_flow_font_and_key(tmp_path: Path) -> None:
    ok = FlowConfig(enabled=True, key_file=tmp_path / "k" / "flow.key")
    assert [(name, good) for name, good, _ in flow_checks(ok)] == [
        ("report font", True), ("flow key", True),
    ]  # fmt: skip
    bad = FlowConfig(enabled=True, report_font=tmp_path / "none.ttf", key_file=tmp_path / "key")
    (tmp_path / "key").write_text("x")
    (tmp_path / "key").chmod(0o644)
    font, key = flow_checks(bad)
    assert not font[1] and "fonts-wqy-microhei" in font[2]
    assert not key[1] and "chmod 600" in key[2]
