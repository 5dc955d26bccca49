"""Golden files of the dyno methods: what the uploader writes for one ASM, one VMAS and
one lug-down inspection, the OBD result and the daily coast-down check (records and live
progress captured from a gateway on the simulated dyno lane, data/dyno-capture.json, by
capture_dyno.py), compared byte for byte with golden/, and checked field by field
against regulator.md §2.2 (family A), standards.md §2-§3 (phase codes, limits) and §1.4
(18C83 jyfs): the expectations are written from those, not from env.yaml. Regenerate
after a deliberate change: LANEGW_REGOLDEN=1 pytest this file."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import pytest

from gateway.records import ResultRecord
from station.upload import plan as planning
from station.upload.env import request_body
from station.upload.render import Inputs, ext_values, render
from tests.station.upload.fakes import ENV_TIME, FakeEnv
from tests.station.upload.test_golden import (
    CONFIG,
    ENV,
    HERE,
    NOW,
    VEHICLE,
    ZONE,
    fields_of,
    golden,
    local,
    psb_doc,
)

CAPTURE = json.loads((HERE / "data" / "dyno-capture.json").read_text())
CONTEXT = {"inspregid": "REG00000001"}
LIVE = {"ASM": "asm_live", "VMAS": "vmas_live", "LUG": "lug_live"}
CALLS = {"ASM": "ASM", "VMAS": "VMAS", "LUG": "LUGDOWN"}  # JH's method names (ASM: [inf])


def record(item: str) -> ResultRecord:
    (found,) = [r for r in CAPTURE["results"] if r["item_code"] == item]
    return ResultRecord.model_validate(found)


def value(rec: ResultRecord, name: str) -> Any:
    (m,) = [m for m in rec.measurements if m.name == name]
    return m


def env_row(call: str, item: str, name: str, inputs: Inputs, golden_name: str) -> dict[str, str]:
    values = render(ENV.fields_for(call, item), inputs, ENV).values
    body = request_body(name, "HB440100", values).decode()
    golden(golden_name, body)
    sent = json.loads(body)
    assert (sent["jkid"], sent["jksqm"]) == (name, "HB440100")
    (row,) = sent["data"][0]["body"]
    # and as the fake platform reads it: names, order, widths, decimals, codes of the table
    fake = FakeEnv()
    jkid, method = fake.names.get(name, (name, None))
    slots = ENV.call(jkid).ext_slots
    checked = [(k, v) for k, v in row.items() if not (slots and k.startswith(slots["prefix"]))]
    assert fake._check(jkid, method, checked, ENV_TIME) == []
    return dict(row)


def result_row(item: str) -> tuple[ResultRecord, dict[str, str]]:
    rec = record(item)
    inputs = Inputs(now=NOW, zone=ZONE, config=CONFIG, record=rec, vehicle=VEHICLE,
                    context=CONTEXT)  # fmt: skip
    name = f"uploadInspResult{CALLS[item]}"
    row = env_row("uploadInspResult", item, name, inputs, f"dyno-{name}.json")
    # the result head (JH): identity, times, method, verdict
    assert (row["License"], row["VIN"], row["inspregid"]) == (
        VEHICLE["plate"], VEHICLE["vin"], CONTEXT["inspregid"])  # fmt: skip
    assert row["Teststime"] == rec.started_at.astimezone(ZONE).strftime("%Y%m%d%H%M%S")
    assert row["Testetime"] == rec.finished_at.astimezone(ZONE).strftime("%Y%m%d%H%M%S")
    assert row["TestJudge"] == "1" and rec.verdict.value == "pass"
    return rec, row


def live_samples(item: str) -> list[dict[str, Any]]:
    return [p for p in CAPTURE["progress"] if p["step"] == LIVE[item]]


def process_row(item: str, n: int, tag: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The per-second row of the ``n``-th live sample (origin: the first sample)."""
    samples = live_samples(item)
    live, origin = samples[n], samples[0]["values"]["t_s"]
    ts = datetime.fromisoformat(live["ts"])
    (_, step) = planning.sample_steps("44010012026112001", "L1", item, 1, ts, live["values"],
                                      origin)  # fmt: skip
    sample = {**step.inputs["sample"], "serial": step.inputs["serial"], "id": step.inputs["id"],
              "ts": ts}  # fmt: skip
    inputs = Inputs(now=NOW, zone=ZONE, config=CONFIG, sample=sample, context=CONTEXT)
    name = f"uploadInspProcess{CALLS[item]}"
    row = env_row("uploadInspProcess", item, name, inputs, f"dyno-{name}-{tag}.json")
    assert row["optime"] == ts.astimezone(ZONE).strftime("%Y%m%d%H%M%S")
    assert row["tsno"] == CONFIG["station_code"] and row["inspregid"] == CONTEXT["inspregid"]
    assert row["samplingdepth"] == row["testingid"] == ""  # not measured / not issued yet
    return live["values"], row


def test_asm_result_and_row() -> None:
    rec, row = result_row("ASM")
    assert (row["TestType"], row["FuelType"]) == ("5", "A")  # JH TestType 5 ASM; petrol
    limits_a = {"HC": 90, "CO": 0.50, "NO": 700}  # standards.md §2.1, 5025 limit a
    for gas, name, decimals in (("HC", "hc_ppm", 0), ("CO", "co_pct", 2), ("NO", "no_ppm", 0)):
        m = value(rec, f"asm_5025_{name}")
        assert row[f"{gas}5025"] == f"{m.value:.{decimals}f}"
        assert row[f"{gas}5025Limit"] == f"{limits_a[gas]:.{decimals}f}"
        assert row[f"{gas}5025Judge"] == "1"
        # 2540 not run (the fast pass at 5025 ends the test): empty, never judged 0
        assert row[f"{gas}2540"] == row[f"{gas}2540Limit"] == row[f"{gas}2540Judge"] == ""
    # the PSB: 18C83 with jyfs 2 稳态 (regulator.md §1.4)
    fields = fields_of(doc := psb_doc("18C83", rec))
    golden("dyno-18C83-ASM.xml", doc)
    assert (fields["jyfs"], fields["pfjypd"], fields["jysj"]) == ("2", "1", local(rec.finished_at))


def test_asm_per_second_row() -> None:
    samples = live_samples("ASM")
    n = next(i for i, p in enumerate(samples) if p["values"]["phase"] == "fast_check")
    v, row = process_row("ASM", n, "fast_check")
    origin = samples[0]["values"]["t_s"]
    assert row["serialno"] == str(math.floor(v["t_s"] - origin + 0.5) + 1)
    # GKLX (standards.md §2.2): 2 = 5025 快速工况
    assert v["mode"] == "5025" and row["opcode"] == "2"
    measured = {"vehiclespeed": "speed_kmh", "enginespeed": "rpm", "volhc": "hc_ppm",
                "volco": "co_pct", "volco2": "co2_pct", "volnox": "no_ppm", "volo2": "o2_pct",
                "dynpa": "power_kw", "dynn": "force_n", "dcf": "df", "kh": "kh"}  # fmt: skip
    for field, name in measured.items():  # as measured, never rounded (CS-ENV §7)
        assert row[field] == str(v[name]), field
    first = process_row("ASM", 0, "first")[1]
    assert first["serialno"] == "1" and first["opcode"] == "1"  # 5025 加速


def test_vmas_result_and_rows() -> None:
    rec, row = result_row("VMAS")
    assert (row["TestType"], row["FuelType"]) == ("6", "A")
    for field, name in (("HC", "vmas_hc_g_km"), ("CO", "vmas_co_g_km"), ("NOx", "vmas_nox_g_km"),
                        ("HCNOx", "vmas_hc_nox_g_km")):  # fmt: skip
        assert row[field] == f"{value(rec, name).value:.3f}", field
    assert (row["COLimit"], row["HCNOxLimit"]) == ("8.00", "1.60")  # limit a, standards §2.1
    assert row["COJudge"] == row["HCNOxJudge"] == "1"
    assert row["HCLimit"] == row["NOxLimit"] == ""  # HC and NOx are limited together
    assert fields_of(psb_doc("18C83", rec))["jyfs"] == "3"  # 简易瞬态 under 瞬态
    # exactly the 195 cycle seconds, 25 segments / 15 modes (JH: s1-11 -> 1/1, s189-195 -> 25/15)
    serials = [planning.sample_serial("VMAS", p["values"], None) for p in live_samples("VMAS")]
    assert sorted(s for s in serials if s is not None) == list(range(1, 196))
    v, first = process_row("VMAS", serials.index(1), "s1")  # the cycle's start instant is no row
    assert (first["serialno"], first["opno"], first["opcode"]) == ("1", "1", "1")
    v, last = process_row("VMAS", serials.index(195), "s195")
    assert (last["serialno"], last["opno"], last["opcode"]) == ("195", "25", "15")
    for field, name in (("vehiclespeed", "speed_kmh"), ("volo2raw", "o2_pct"),
                        ("volo2dil", "o2_diluted_pct"), ("flowstd", "flow_standard_l_s"),
                        ("flowexhaust", "exhaust_flow_l_s"), ("dr", "dilution_ratio"),
                        ("massco", "co_g_s"), ("masshc", "hc_g_s"), ("massnox", "nox_g_s")):  # fmt: skip
        assert last[field] == str(v[name]), field


def test_lug_down_result_and_row() -> None:
    rec, row = result_row("LUG")
    assert (row["TestType"], row["FuelType"]) == ("7", "B")  # JH TestType 7 JZJS; diesel
    assert row["K100"] == f"{value(rec, 'k100_m1').value:.2f}"
    assert row["K80"] == f"{value(rec, 'k80_m1').value:.2f}"
    assert row["NOx80"] == f"{value(rec, 'nox80_ppm').value:.0f}"
    # limit a (standards.md §3): k 1.2 m^-1, NOx 1500; power at least 40 % of rated 100 kW
    assert (row["K100Limit"], row["K80Limit"], row["NOx80Limit"]) == ("1.20", "1.20", "1500")
    assert row["MaxhpLimit"] == "40.0" and row["MaxhpJudge"] == "1"
    assert row["CorMaxhp"] == f"{value(rec, 'max_wheel_power_kw').value:.1f}"
    assert row["ActMaxhp"] == f"{value(rec, 'max_wheel_power_raw_kw').value:.1f}"
    assert row["ActVelMaxhp"] == f"{value(rec, 'vel_max_hp_kmh').value:.1f}"
    assert row["MaxRPM"] == f"{value(rec, 'engine_speed_100_rpm').value:.0f}"
    assert row["pcf"] == f"{value(rec, 'power_correction_factor').value:.4f}"
    assert fields_of(psb_doc("18C83", rec))["jyfs"] == "6"  # 加载减速
    # a row at the 80 % point: ENV-IF-v2.10 §9.16 4 = 80%点检验
    samples = live_samples("LUG")
    n = next(i for i, p in enumerate(samples)
             if (p["values"]["phase"], p["values"]["point"]) == ("sampling", "80"))  # fmt: skip
    v, row = process_row("LUG", n, "sampling80")
    assert row["opcode"] == "4"
    for field, name in (("vehiclespeed", "speed_kmh"), ("enginespeed", "rpm"),
                        ("enginepower", "power_kw"), ("sfk", "k_m1"), ("sfn", "n_pct"),
                        ("dynpa", "power_raw_kw"), ("dynn", "force_n"), ("volnox", "nox_ppm"),
                        ("volco2", "co2_pct")):  # fmt: skip
        assert row[field] == str(v[name]), field
    # 4 Hz live: one row per second, the first sample of each
    serials = [planning.sample_serial("LUG", p["values"], samples[0]["values"]["t_s"])
               for p in samples]  # fmt: skip
    assert serials[0] == 1 and sorted(set(serials)) == list(range(1, max(serials) + 1))


def test_obd_result() -> None:
    rec = record("OBD")
    inputs = Inputs(now=NOW, zone=ZONE, config=CONFIG, record=rec, vehicle=VEHICLE,
                    context=CONTEXT)  # fmt: skip
    row = env_row("uploadInspResultOBD", "OBD", "uploadInspResultOBD", inputs,
                  "dyno-uploadInspResultOBD.json")  # fmt: skip
    assert (row["inspregid"], row["VIN"]) == (CONTEXT["inspregid"], VEHICLE["vin"])
    assert row["judge"] == "1" and row["indicatorCheck"] == "1"  # MIL off
    assert row["communicationCheck"] == "1" and row["communicationFalseRes"] == ""
    assert row["calid1"] == value(rec, "obd_calibration_ids").value
    assert row["cvn1"] == value(rec, "obd_cvns").value and row["faultCodes"] == ""


def test_coast_down_check() -> None:
    rec = record("check:coast_down")
    inputs = Inputs(now=NOW, zone=ZONE, config=CONFIG, record=rec,
                    check={"kind": "coast_down", "device": "dyno"})  # fmt: skip
    call = "uploadInspStmDeviceRecord"
    values = render(ENV.fields_for(call), inputs, ENV).values
    values += ext_values(rec, ENV.call(call).ext_slots or {})
    body = request_body(call, "HB440100", values).decode()
    golden("dyno-uploadInspStmDeviceRecord-coast_down.json", body)
    (row,) = json.loads(body)["data"][0]["body"]
    assert (row["typecode"], row["opcode"], row["result"]) == ("1", "7", "1")  # 自检, coast
    assert row["optime"] == rec.finished_at.astimezone(ZONE).strftime("%Y%m%d%H%M%S")
    # the dyno's values (regulator.md §2.2: inertia, per band parasitic power, theoretical
    # vs actual coast time, deviation) in extn01.. in the record's order
    assert [row[f"extn{n:02d}"] for n in range(1, len(rec.measurements) + 1)] == [
        str(m.value) for m in rec.measurements
    ]


@pytest.mark.parametrize("item", ["ASM", "VMAS", "LUG", "OBD"])
def test_no_dyno_value_is_dropped_without_a_word(item: str) -> None:
    """Every measurement of the record and every live value is sent or listed (with why)."""
    rec = record(item)
    call = "uploadInspResultOBD" if item == "OBD" else "uploadInspResult"
    specs = ENV.fields_for(call, item)
    sent = {s.source_expr.partition(".")[2] for s in specs} | {
        s.source_expr.split(".")[1] for s in specs if s.source_expr.startswith("limit.")
    }
    listed = {u.name for u in ENV.unmapped_for(call, item)}
    for m in rec.measurements:
        assert m.name in sent | listed, f"{item}: {m.name} neither uploaded nor listed"
    if item == "OBD":
        return
    specs = ENV.fields_for("uploadInspProcess", item)
    sent = set()
    for s in specs:
        if s.source_expr.startswith("sample."):
            sent |= set(s.source_expr.removeprefix("sample.").split("/"))
    listed = {u.name for u in ENV.unmapped_for("uploadInspProcess", item)}
    for name in live_samples(item)[-1]["values"]:
        assert name in sent | listed, f"{item} live: {name} neither uploaded nor listed"
