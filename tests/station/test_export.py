"""The inspection export (station/export): records built as the product builds them, then
mapped to the regulator's layout.

Measurements come from the product's own judging code (brake_judge, the limit tables,
headlamp_calc, emissions_petrol/diesel), curves from gateway.inspection.curve, records are
real ``ResultRecord`` objects dumped to JSON as a store returns them. A passenger car,
in-use: B1, B2, B0, H1, H4, S1, TSI and the summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uuid6 import uuid7

from drivers.devices.jxgt2_brake import BrakeSample, BrakeTestResult
from gateway.inspection import brake_judge
from gateway.inspection.curve import parse_upload_string, upload_string
from gateway.inspection.emissions_calc import WindowMeans, high_idle_band_key, limit_key
from gateway.inspection.emissions_diesel import details
from gateway.inspection.emissions_petrol import Speed, State
from gateway.inspection.emissions_petrol import judge as judge_tsi
from gateway.inspection.headlamp_calc import TOTAL_KEY, intensity_key, offset_measurements
from gateway.inspection.items import overall
from gateway.inspection.order import InspectionOrder, VehicleCategory
from gateway.inspection.procedures import PROCEDURES
from gateway.limits import load_table, measured
from gateway.records import Evidence, Flag, Measurement, ResultRecord, Verdict
from station.export import ExportError, export_inspection, load_layout

BRAKE = load_table("gb7258-2017")
IID = "44010012026110001"
T0 = datetime(2026, 11, 2, 1, 59, 59, 700_000, tzinfo=UTC)  # 09:59:59 in Shanghai
ORDER = InspectionOrder(
    inspection_id=IID, plate="粤A12345", vin="LSVAU2180N2183294",
    category=VehicleCategory.PASSENGER_CAR, inspection_type="in_use", axle_count=2,
    curb_mass_kg=1300, gross_mass_kg=1700, items=["B1", "B2", "B0", "H1", "H4", "S1", "TSI"],
)  # fmt: skip


def brake_test(peak: tuple[float, float], diff: tuple[float, float]) -> BrakeTestResult:
    """A 100 Hz test: 20 samples of drag, then both sides rise to their peaks."""
    samples = tuple(
        BrakeSample(i, i / 100, i / 100, 4.0 + peak[0] * max(0, i - 20) / 40,
                    4.0 + peak[1] * max(0, i - 20) / 40, i >= 20)
        for i in range(61)
    )  # fmt: skip
    return BrakeTestResult(*peak, *diff, "device", 4.0, 4.2, 20, False, False, samples)


def curve(result: BrakeTestResult) -> Evidence:
    left = [s.force_left_dan for s in result.samples]
    right = [s.force_right_dan for s in result.samples]
    text, _ = upload_string(left, right, 10.0)
    return Evidence(kind="brake_curve", sha256="c" * 64, samples=61, interval_ms=10.0,
                    upload_string=text)  # fmt: skip


RAW = Evidence(kind="raw_frames", sha256="f" * 64, samples=12)
LOADS = {1: brake_judge.StaticLoads(820.0, "weigher", 412.0, 408.0),
         2: brake_judge.StaticLoads(680.0, "weigher", 342.0, 338.0)}  # fmt: skip
TESTS = {
    1: brake_test((334.0, 301.0), (286.5, 245.4)),
    2: brake_test((150.0, 141.0), (120.0, 111.0)),
}
PARKING = brake_test((160.0, 152.0), (131.0, 120.0))


def axle(n: int) -> list[Measurement]:
    return brake_judge.axle_measurements(BRAKE, ORDER, n, LOADS[n], TESTS[n])


def headlamp(intensity: float) -> list[Measurement]:
    key = intensity_key("car", "in_use", 2)
    return [measured("lamp_system", 2), BRAKE.judge(key, "high_beam_intensity", intensity),
            *offset_measurements("high", 35.0, -60.0, 720, None),
            *offset_measurements("low", -20.0, -150.0, 700, 0.79)]  # fmt: skip


def tsi() -> list[Measurement]:
    high = WindowMeans(30, 0.12, 25, 14.6, 0.4, 1.01, 2480, 88.0)
    idle = WindowMeans(30, 0.18, 40, 14.3, 0.6, 1.02, 820, 90.0)
    speed = Speed("high_idle", "high idle", "", high_idle_band_key(1700), State.TO_HIGH_IDLE,
                  State.HIGH_IDLE_STABILISING, State.HIGH_IDLE_MEASURING)  # fmt: skip
    return judge_tsi(load_table("gb18285-2018"), "a", speed, high, idle)


@dataclass
class Peak:
    k_m1: float
    engine_speed_rpm: int


def free_acceleration() -> list[Measurement]:
    diesel = load_table("gb3847-2018")
    judged = diesel.judge(limit_key("free_accel_k_m1", "a"), "free_accel_k_avg_m1", 0.86)
    return [judged, *details([Peak(0.8, 2900), Peak(0.9, 2950), Peak(0.88, 2940)], [])]


#: item code -> (measurements, evidence): what each procedure records
ITEMS: dict[str, tuple[list[Measurement], list[Evidence]]] = {
    "B1": (axle(1), [curve(TESTS[1]), RAW]),
    "B2": (axle(2), [curve(TESTS[2]), RAW]),
    "B0": (brake_judge.parking_measurements(BRAKE, ORDER, 2, 1500.0, PARKING), [curve(PARKING)]),
    "H1": (headlamp(16500.0), []),
    "H4": (headlamp(15800.0), []),
    "S1": ([BRAKE.judge("speedometer_actual_at_40_kmh", "actual_speed_at_indicated_40", 36.4)], []),
    "TSI": (tsi(), []),
    "FA": (free_acceleration(), []),
}


def summary_measurements(verdicts: dict[str, Verdict]) -> list[Measurement]:
    loads = {n: (LOADS[n].left_kg or 0.0, LOADS[n].right_kg or 0.0) for n in (1, 2)}
    forces = {n: (TESTS[n].max_force_left_dan, TESTS[n].max_force_right_dan) for n in (1, 2)}
    return [
        *(Measurement(name=f"{code}_verdict", value=v.value) for code, v in verdicts.items()),
        *brake_judge.vehicle_measurements(BRAKE, ORDER, loads, forces, set()),
        BRAKE.judge(TOTAL_KEY, "headlamp_high_beam_total", 32300.0),
    ]


_seq = iter(range(1, 1_000_000))


def record(code: str, *, attempt: int = 1, minute: int = 0, **fields: Any) -> dict[str, Any]:
    """A stored record of ``code`` (or of the summary), started ``minute`` after T0."""
    measurements, evidence = ITEMS.get(code, ([], []))
    fields.setdefault("measurements", measurements)
    body: dict[str, Any] = {
        "record_id": str(uuid7()), "seq": next(_seq), "session_id": "s-1",
        "gateway_id": "gw-4401001-L1", "station": "4401001", "lane": "L1",
        "inspection_id": IID, "attempt": attempt, "item_code": code, "evidence": evidence,
        "verdict": overall([m.verdict for m in fields["measurements"]]),
        "started_at": T0 + timedelta(minutes=minute),
        "finished_at": T0 + timedelta(minutes=minute, seconds=42),
    } | fields  # fmt: skip
    return ResultRecord(**body).model_dump(mode="json")


def inspection() -> list[dict[str, Any]]:
    codes = ["B1", "B2", "B0", "H1", "H4", "S1", "TSI"]
    items = [record(code, minute=i) for i, code in enumerate(codes)]
    verdicts = {r["item_code"]: Verdict(r["verdict"]) for r in items}
    summary = record(
        "summary", kind="summary", minute=0, measurements=summary_measurements(verdicts)
    )
    return [*items, summary]


def by_code(export: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["jyxm"]: e for e in export["items"]}


# --- the mapping --------------------------------------------------------------------------
def test_b1_maps_the_process_difference_forces_and_the_curve() -> None:
    export = export_inspection(inspection())
    b1 = by_code(export)["B1"]
    assert (b1["jyxm"], b1["jycs"], b1["jcxdh"]) == ("B1", 1, "L1")
    assert (b1["yzqczzdl"], b1["yqqcyzdl"]) == (287, 245)  # daN = 10 N, whole, half up
    assert b1["yzzdlqx"] == ITEMS["B1"][1][0].upload_string
    interval, pairs = parse_upload_string(b1["yzzdlqx"])
    assert interval == 10 and len(pairs) == 61 and pairs[-1] == (338, 305)
    assert b1["verdict_code"] == 1 and b1["verdict"] == "pass"
    assert b1["verdict_codes"] == {"drag_ratio_left": 1, "drag_ratio_right": 1,
                                   "axle_brake_ratio": 1, "unbalance": 1}  # fmt: skip
    unmapped = b1["unmapped"]
    assert "diff_force_left" not in unmapped and "brake_curve" not in unmapped
    # regulator.md §1.6 names the loads, maximum forces, ratio and unbalance too
    assert (b1["yzqhzzdl"], b1["yzqhyzdl"]) == (334, 301)
    assert b1["yzdll"] == pytest.approx((334 + 301) / (820 * 0.98) * 100, abs=0.05)
    assert b1["yzdll"] == round(b1["yzdll"], 1) and "max_force_left" not in unmapped
    assert unmapped["static_axle_load"] == 820.0 and b1["units"]["static_axle_load"] == "kg"


def test_other_axles_parking_lamps_and_speedometer_use_their_named_fields() -> None:
    items = by_code(export_inspection(inspection()))
    b2, b0, h1, h4, s1 = (items[c] for c in ("B2", "B0", "H1", "H4", "S1"))
    assert not {k for k in b2 if k.startswith("yz")}  # the axle-1 names are not reused
    assert b2["ezzdlqx"] == ITEMS["B2"][1][0].upload_string and b2["ezqczzdl"] == 120
    assert "ezqcyzdl" in b2 and "brake_curve" not in b2["unmapped"]
    assert b0["tczdl"] == pytest.approx(312 / (1500 * 0.98) * 100, abs=0.05)
    assert b0["zczczdl"] == 312
    assert b0["unmapped"]["brake_curve"].startswith("10@")  # no curve field in B0
    assert h1["zwygqd"] == 16500 and "ywygqd" in h4 and h1["units"]["lamp_height"] == "mm"
    assert h1["unmapped"]["low_beam_height_ratio"] == 0.79  # offsets: deleted in 2020
    assert s1["csdscz"] == 36.4 and s1["unmapped"] == {}
    assert s1["verdict_codes"] == {"actual_speed_at_indicated_40": 1}


def test_header_summary_and_what_the_caller_fills() -> None:
    export = export_inspection(inspection())
    assert (export["jylsh"], export["jyjgbh"], export["jcxdh"]) == (IID, "4401001", "L1")
    summary = export["summary"]
    ratio = (334 + 301 + 150 + 141) / ((820 + 680) * 0.98) * 100
    assert summary["zczdl"] == pytest.approx(ratio, abs=0.05)
    assert (
        summary["zczdl"] == round(summary["zczdl"], 1)
        and "vehicle_brake_ratio" not in summary["unmapped"]
    )
    assert summary["unmapped"]["B1_verdict"] == "pass"
    assert summary["verdict_codes"]["headlamp_high_beam_total"] == 1
    assert set(export["not_from_records"]) == {"jylb", "gwjysbbh"}
    assert export["source"]["layout"] == load_layout().name
    assert (export["source"]["records_used"], export["source"]["records_ignored"]) == (8, 0)


def test_times_are_the_station_wall_clock() -> None:
    late = record("H1", minute=14 * 60 + 30)  # 16:29:59.7 UTC: past midnight in Shanghai
    export = export_inspection([record("B1"), late])
    b1, h1 = by_code(export)["B1"], by_code(export)["H1"]
    assert (b1["kssj"], b1["jssj"]) == ("2026-11-02 09:59:59", "2026-11-02 10:00:41")
    assert h1["kssj"] == "2026-11-03 00:29:59"
    assert (
        by_code(export_inspection([record("B1")], tz="UTC"))["B1"]["kssj"] == "2026-11-02 01:59:59"
    )


def test_fail_aborted_and_not_judged_verdict_codes() -> None:
    failing = axle(1)
    failing[[m.name for m in failing].index("unbalance")] = BRAKE.judge(
        "brake_unbalance_front_in_use", "unbalance", 26.1
    )
    aborted = record("H4", measurements=[], verdict="aborted", reason="no lamp found")
    unjudged = record("S1", measurements=[measured("actual_speed_at_indicated_40", 38.0)])
    items = by_code(export_inspection([record("B1", measurements=failing), aborted, unjudged]))
    assert items["B1"]["verdict_code"] == 2 and items["B1"]["verdict_codes"]["unbalance"] == 2
    assert (items["H4"]["verdict_code"], items["H4"]["reason"]) == (0, "no lamp found")
    assert items["S1"]["verdict_code"] == 0 and items["S1"]["verdict_codes"] == {}


def test_a_retest_exports_the_latest_attempt_and_lists_the_earlier() -> None:
    first = record("B1", measurements=axle(2), verdict="fail")  # whatever: superseded
    second = record("B1", attempt=2, minute=30)
    summaries = [record("summary", kind="summary", attempt=a, measurements=[]) for a in (1, 2)]
    export = export_inspection([second, *summaries, first, dict(second)])  # stored twice
    (b1,) = export["items"]
    assert (b1["jycs"], b1["record_id"], b1["earlier_record_ids"]) == (
        2,
        second["record_id"],
        [first["record_id"]],
    )
    assert b1["yzqczzdl"] == 287
    assert export["summary"]["attempt"] == 2
    assert export["summary"]["earlier_record_ids"] == [summaries[0]["record_id"]]


def test_emission_items_export_under_their_method_names() -> None:
    export = export_inspection([record("TSI"), record("FA"), record("A1", measurements=[])])
    assert export["items"] == [] and export["summary"] is None
    tsi_entry, fa_entry = export["emissions"]
    assert (tsi_entry["method"], tsi_entry["standard"]) == ("TSI", "GB 18285-2018")
    assert tsi_entry["unmapped"]["high_idle_co_pct"] == 0.12
    assert tsi_entry["value_verdicts"]["high_idle_lambda"] == "pass"
    assert tsi_entry["started"] == "2026-11-02 09:59:59" and "jyxm" not in tsi_entry
    assert fa_entry["unmapped"]["free_accel_k2_m1"] == 0.9
    assert [e["item_code"] for e in export["other_items"]] == ["A1"]


def test_calibration_and_check_records_are_ignored_and_flags_kept() -> None:
    flag = Flag(code="no_noise", message="left curve without noise", evidence="c" * 64)
    flagged = record("B1", flags=[flag])
    calibration = record("calibration:brake_force", kind="calibration", inspection_id=None)
    check = record("check:leak", kind="check", inspection_id="another-inspection")
    export = export_inspection([calibration, flagged, check])
    assert [e["jyxm"] for e in export["items"]] == ["B1"]
    assert export["items"][0]["flags"] == [flag.model_dump(mode="json")]
    assert export["source"]["records_ignored"] == 2


def test_export_is_json_and_round_trips() -> None:
    export = export_inspection(inspection())
    assert json.loads(json.dumps(export, ensure_ascii=False)) == export


# --- errors -------------------------------------------------------------------------------
def test_nothing_to_export_is_an_error() -> None:
    with pytest.raises(ExportError, match="no item or summary records"):
        export_inspection([])
    with pytest.raises(ExportError, match=r"\(1 ignored\)"):
        export_inspection([record("calibration:x", kind="calibration", inspection_id=None)])


def test_records_of_different_inspections_or_stations_are_refused() -> None:
    with pytest.raises(
        ExportError, match="different inspections: 44010012026110001, 44010012026110002"
    ):
        export_inspection([record("B1"), record("H1", inspection_id="44010012026110002")])
    with pytest.raises(ExportError, match="different stations"):
        export_inspection([record("B1"), record("H1", station="4401002")])
    with pytest.raises(ExportError, match="without an inspection id"):
        export_inspection([record("B1", inspection_id=None)])


def test_bad_records_give_clear_errors() -> None:
    broken = record("B1")
    del broken["verdict"]
    with pytest.raises(ExportError, match=r"record 0 \(.*\): verdict: Field required"):
        export_inspection([broken])
    with pytest.raises(ExportError, match="record 0: expected a JSON object, got list"):
        export_inspection([[1, 2]])  # type: ignore[list-item]
    text = record("B1", measurements=[measured("diff_force_left", "n/a")])
    with pytest.raises(ExportError, match="yzqczzdl needs a number, got 'n/a'"):
        export_inspection([text])
    twice = record("H1", measurements=[measured("lamp_system", 2), measured("lamp_system", 4)])
    with pytest.raises(ExportError, match="measurement lamp_system given twice"):
        export_inspection([twice])
    naive = record("B1") | {"started_at": "2026-11-02T01:59:59"}
    with pytest.raises(ExportError, match="has no UTC offset"):
        export_inspection([naive])
    with pytest.raises(ExportError, match="unknown time zone 'Mars/Olympus'"):
        export_inspection([record("B1")], tz="Mars/Olympus")


# --- the layout -------------------------------------------------------------------------
def test_the_layout_covers_every_item_the_lane_runs() -> None:
    layout = load_layout()
    assert set(layout.items) | set(layout.emissions.methods) == set(PROCEDURES)
    mapped = {f.field for f in (*layout.header, *layout.item)}
    mapped |= {f.field for item in (*layout.items.values(), layout.summary) for f in item.fields}
    # only names the domain notes give (standards.md §1.1, §5.1; regulator.md §1.6):
    # adding one must be a deliberate change
    axles = {f"{p}{suffix}" for p in ("yz", "ez", "sanz", "siz", "wz")
             for suffix in ("zlz", "ylz", "qhzzdl", "qhyzdl", "qczzdl", "qcyzdl", "dll", "bphl",
                            "zdlqx")} - {"yzqcyzdl"} | {"yqqcyzdl"}  # fmt: skip
    assert mapped == {"jylsh", "jyjgbh", "jcxdh", "jyxm", "jycs", "kssj", "jssj", "zczdl",
                      "zczczdl", "tczdl", "zwygqd", "znygqd", "ynygqd", "ywygqd",
                      "csdscz"} | axles  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([*ITEMS, "A1", "summary"]), st.integers(1, 3),
                  st.sampled_from(list(Verdict)), st.integers(0, 600)),
        min_size=1, max_size=14,
    )
)  # fmt: skip
def test_any_record_set_exports_one_entry_per_item(
    rows: list[tuple[str, int, Verdict, int]],
) -> None:
    records = [
        record(code, attempt=attempt, minute=minute, verdict=verdict,
               kind="summary" if code == "summary" else "item")
        for code, attempt, verdict, minute in rows
    ]  # fmt: skip
    export = export_inspection(records)
    assert json.loads(json.dumps(export)) == export
    listed = [*export["items"], *export["emissions"], *export["other_items"]]
    entries = {e.get("jyxm") or e.get("method") or e["item_code"]: e for e in listed}
    if export["summary"] is not None:
        entries["summary"] = export["summary"]
    codes = {code for code, *_ in rows}
    assert set(entries) == codes and len(listed) == len(codes - {"summary"})
    for code, entry in entries.items():
        attempts = [a for c, a, *_ in rows if c == code]
        assert entry.get("jycs", entry.get("attempt")) == max(attempts)
        assert len(entry["earlier_record_ids"]) == len(attempts) - 1
