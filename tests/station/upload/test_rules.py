"""The pure parts: how values are written (rounding, clamping, codes, refusing what does
not fit), what is pending, the order of an inspection's calls, and which lane devices the
environmental platform would lock. Plus the gateway's side of a lock: kept across a
restart, merged into its lockouts, lifted with an empty set."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import LaneConfig
from gateway.maintenance.lockouts import CheckLog, RegulatorLocks, lockout_reasons
from gateway.records import ResultRecord
from station.upload.locks import regulator_locks
from station.upload.plan import Platforms, plan_inspection, sample_serial, sample_steps
from station.upload.render import Inputs, Pending, RenderError, render
from station.upload.store import Upload
from station.upload.tables import FieldSpec, TablesError, load_tables, packaged

HERE = Path(__file__).parent
CAPTURE = json.loads((HERE / "data" / "lane-capture.json").read_text())
PSB = packaged("psb.yaml")
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")


def spec(**fields: object) -> FieldSpec:
    base = {"field": "x", "from": "sample.v", "format": "number", "source": "t",
            "confidence": "spec"}  # fmt: skip
    return FieldSpec.model_validate(base | fields)


def write(field: FieldSpec, value: object) -> tuple[str, list[str]]:
    done = render((field,), Inputs(now=NOW, zone=ZONE, sample={"v": value}), PSB)
    return done.values[0][1], done.notes


def test_numbers_are_rounded_half_up_to_their_decimals_and_clamped_to_their_width() -> None:
    assert write(spec(width=4, decimals=1), 88.85)[0] == "88.9"  # half up, not to even
    assert write(spec(width=4, decimals=1), 0.05)[0] == "0.1"
    assert write(spec(width=6, decimals=0), 421.5)[0] == "422"
    value, notes = write(spec(width=4, decimals=1), 1234.56)
    assert value == "999.9" and notes == ["x: 1234.6 clamped to 999.9 (width 4)"]
    assert write(spec(), 0.04)[0] == "0.04"  # process data: as measured
    assert write(spec(), 2503)[0] == "2503"
    assert write(spec(width=6, decimals=0), None)[0] == ""
    with pytest.raises(RenderError, match="needs a number"):
        write(spec(width=6, decimals=0), True)
    with pytest.raises(RenderError, match="needs a number"):
        write(spec(width=6, decimals=0), "front")


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.integers(2, 8),
       st.integers(0, 2))  # fmt: skip
def test_a_written_number_always_fits_its_declared_width(
    value: float, width: int, dec: int
) -> None:
    text, _ = write(spec(width=width, decimals=dec), value)
    whole, _, decimals = text.lstrip("-").partition(".")
    assert len(decimals) == dec and len(whole) <= max(1, width - dec)


def test_text_is_never_cut_and_mandatory_values_must_be_there() -> None:
    with pytest.raises(RenderError, match="do not fit its 4000"):
        write(spec(format="text", width=4000), "10@" + "1#1$" * 1000)
    with pytest.raises(RenderError, match="mandatory"):
        write(spec(format="text", required=True), None)
    assert write(spec(format="code:verdict"), "fail")[0] == "2"
    with pytest.raises(RenderError, match="not in code table"):
        write(spec(format="code:hpzl"), "tractor")
    assert write(spec(format="verdict"), None)[0] == "0"  # not judged: 0 未检


def test_what_is_not_known_yet_is_pending() -> None:
    b1 = ResultRecord.model_validate(next(r for r in CAPTURE["results"] if r["item_code"] == "B1"))
    inputs = Inputs(now=NOW, zone=ZONE, record=b1)
    with pytest.raises(Pending, match="identity"):
        render(PSB.fields_for("18C55", "B1"), inputs, PSB)
    env = packaged("env.yaml")
    with pytest.raises(Pending, match="inspregid"):
        render(env.fields_for("uploadInspResult", "TSI"), inputs, env)


def test_a_field_table_with_a_silent_gap_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((Path(__file__).parents[3] / "station/upload/psb.yaml").read_text())
    data["calls"]["18C55"]["fields"].append({"field": "zzz", "from": "none", "format": "text",
                                             "source": "x", "confidence": "mem"})  # fmt: skip
    path = tmp_path / "province.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(TablesError, match="must say why"):
        load_tables(path, "psb.yaml")
    data["calls"]["18C55"]["fields"][-1] |= {"why": "not known", "from": "measurement"}
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(TablesError, match="from 'measurement'"):
        load_tables(path, "psb.yaml")


def test_an_inspection_is_planned_in_test_order_and_its_end_waits_for_its_items() -> None:
    records = [r for r in CAPTURE["results"] if r["inspection_id"] == "44010012026112001"]
    ids = {r["record_id"] for r in records}
    plan = plan_inspection(records, ids, Platforms())
    psb = sorted((s for s in plan.steps if s.platform == "psb"), key=lambda s: s.ord)
    assert [(s.call, s.item_code) for s in psb][:3] == [("18C55", "B1"), ("18C81", "B1"),
                                                         ("18C58", "B1")]  # fmt: skip
    assert [s.call for s in psb][-2:] == ["18C82", "18C59"]
    env = sorted((s for s in plan.steps if s.platform == "env"), key=lambda s: s.ord)
    assert [s.call for s in env] == ["downInspRegInfo", "uploadInspResult"]
    # the summary waits while an item it lists is not stored
    without_h4 = [r for r in records if r["item_code"] != "H4"]
    waiting = plan_inspection(without_h4, ids, Platforms())
    assert list(waiting.waiting.values()) == ["items H4 not stored yet"]
    assert not [s for s in waiting.steps if s.call in ("18C82", "18C59")]
    # a live sample lands between the registration and the result
    live = next(p for p in CAPTURE["progress"] if p["step"] == "tsi_live")
    reg, sample = sample_steps("44010012026112001", "L1", "TSI", 1,
                               datetime.fromisoformat(live["ts"]), live["values"])  # fmt: skip
    assert reg.ord < sample.ord < env[-1].ord


def upload(device: str, kind: str, status: str, verdict: str, at: datetime, n: int) -> Upload:
    inputs = {"device": device, "kind": kind, "verdict": verdict, "finished_at": at.isoformat()}
    return Upload(f"u{n}", f"k{n}", "env", f"c{n}", int(at.timestamp() * 1000),
                  "uploadInspStmDeviceRecord", None, "L1", f"check:{kind}", None, inputs, status,
                  1, "", None, "0" if status == "refused" else "1", "设备未备案", None, None, "",
                  "", None)  # fmt: skip


def test_the_platform_locks_a_device_without_an_accepted_passed_recent_check() -> None:
    lane = [("L1", [{"id": "analyser", "device_class": "gas_analyser"},
                    {"id": "brake", "device_class": "brake_tester"}])]  # fmt: skip
    required = {"gas_analyser": ["leak", "zero"]}

    def locks(*checks: Upload) -> dict[str, list[str]]:
        return regulator_locks(lane, checks, required, 24, NOW)["L1"]

    hour = timedelta(hours=1)
    assert locks() == {
        "analyser": [
            "daily leak check not uploaded to the environmental platform",
            "daily zero check not uploaded to the environmental platform",
        ]
    }
    ok = [
        upload("analyser", "leak", "accepted", "pass", NOW - hour, 1),
        upload("analyser", "zero", "accepted", "pass", NOW - hour, 2),
    ]
    assert locks(*ok) == {}
    assert locks(ok[0], upload("analyser", "zero", "accepted", "fail", NOW - hour, 3)) == {
        "analyser": ["zero check failed (uploaded to the environmental platform)"]
    }
    assert locks(ok[0], upload("analyser", "zero", "accepted", "pass", NOW - 25 * hour, 4))[
        "analyser"
    ][0].startswith("zero check expired")
    refused = upload("analyser", "zero", "refused", "pass", NOW, 5)
    assert locks(*ok, refused) == {
        "analyser": ["zero check refused by the environmental platform: 0 设备未备案"]
    }
    # a newer check on its way does not lock while the last accepted one still holds
    assert locks(*ok, upload("analyser", "zero", "queued", "pass", NOW, 6)) == {}
    assert locks(ok[0], upload("analyser", "zero", "retrying", "pass", NOW, 7)) == {
        "analyser": ["zero check not yet accepted by the environmental platform (retrying)"]
    }


def test_the_gateway_keeps_a_regulator_lock_across_a_restart(tmp_path: Path) -> None:
    config = LaneConfig.model_validate({
        "station": "4401001", "lane": "L1", "state_dir": str(tmp_path),
        "buses": [{"id": "b", "url": "tcp://127.0.0.1:1"}],
        "devices": [{"id": "analyser", "class": "gas_analyser", "protocol": "nha503", "bus": "b"}],
    })  # fmt: skip
    path = tmp_path / "regulator-locks.json"
    RegulatorLocks(path).replace("environmental", {"analyser": ["daily leak check not uploaded"]})
    again = RegulatorLocks(path)  # a restarted gateway
    log = CheckLog(tmp_path / "checks.jsonl")
    assert lockout_reasons(config, log, regulator=again.reasons()) == {
        "analyser": ["environmental: daily leak check not uploaded"]
    }
    again.replace("environmental", {})
    assert lockout_reasons(config, log, regulator=RegulatorLocks(path).reasons()) == {}
    path.write_text("{not json")
    assert RegulatorLocks(path).reasons() == {}  # the station sends its locks again


XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@given(st.lists(st.tuples(st.sampled_from(["hphm", "jylsh", "bz", "clsbdh"]), XML_TEXT),
                min_size=1, max_size=6))  # fmt: skip
def test_any_value_survives_the_document_and_the_envelope(values: list[tuple[str, str]]) -> None:
    """Chinese, markup characters, spaces: what the platform reads back is what was meant;
    non-ASCII values travel URL-encoded, everything else as is."""
    from urllib.parse import unquote

    from lxml import etree

    from station.upload.psb import SOAP_NS, document, envelope

    soap = envelope(PSB, "write", "18C55", "K" * 64, document(PSB, "write", values))
    call = etree.fromstring(soap).find(f"{{{SOAP_NS}}}Body")[0]  # type: ignore[index]
    doc = {etree.QName(c).localname: c.text for c in call}["UTF8XmlDoc"] or ""
    assert doc.startswith('<?xml version="1.0" encoding="GBK"?>')
    root = etree.fromstring(doc.split("?>", 1)[1])
    sent = [(e.tag, e.text or "") for e in root.find("vehispara")]  # type: ignore[union-attr]
    assert all(text.isascii() for _, text in sent)
    assert [(tag, unquote(text) if not value.isascii() else text)
            for (tag, text), (_, value) in zip(sent, values, strict=True)] == values  # fmt: skip


@given(st.sampled_from(["1", "-8105", "$E", "0", "-1001"]), XML_TEXT)
def test_a_reply_is_read_back_whatever_its_message(code: str, message: str) -> None:
    from urllib.parse import quote

    from lxml import etree

    from station.upload.psb import SOAP_NS, read_reply
    from station.upload.wire import Outcome, classify

    root = etree.Element("root")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "code").text = code
    etree.SubElement(head, "message").text = message
    inner = '<?xml version="1.0" encoding="GBK"?>' + etree.tostring(root, encoding="unicode")
    env = etree.Element(f"{{{SOAP_NS}}}Envelope")
    answer = etree.SubElement(etree.SubElement(env, f"{{{SOAP_NS}}}Body"), "writeObjectOutResponse")
    etree.SubElement(answer, "writeObjectOutReturn").text = quote(inner, safe="")
    reply = read_reply(PSB, "write", etree.tostring(env, encoding="unicode"))
    assert (reply.code, reply.message) == (code, message.strip())
    expected = {"1": Outcome.ACCEPTED, "$E": Outcome.RETRY}.get(code, Outcome.REFUSED)
    assert classify(reply, PSB.service.success_codes, PSB.service.retry_codes) is expected


def test_a_check_record_is_written_with_its_values_in_numbered_slots() -> None:
    from station.upload.render import ext_values

    check = ResultRecord.model_validate(
        next(r for r in CAPTURE["results"] if r["item_code"] == "check:leak")
    )
    env = packaged("env.yaml")
    inputs = Inputs(now=NOW, zone=ZONE, record=check, config={"device_code": "FQ-1"},
                    check={"kind": "leak", "device": "analyser"})  # fmt: skip
    values = dict(render(env.fields_for("uploadInspStmDeviceRecord"), inputs, env).values)
    assert (values["deviceCode"], values["typecode"], values["opcode"], values["result"]) == (
        "FQ-1",
        "1",
        "1",
        "1",
    )
    slots = env.call("uploadInspStmDeviceRecord").ext_slots or {}
    assert ext_values(check, slots) == [("extn01", "1")]  # leak_free: true
    many = check.model_copy(update={"measurements": [
        m.model_copy(update={"name": f"v{n}", "value": n / 10}) for n, m in
        enumerate(check.measurements * 20)]})  # fmt: skip
    written = ext_values(many, slots)
    assert len(written) == 20 and written[9] == ("extn10", "0.9")
    too_many = many.model_copy(update={"measurements": many.measurements * 2})
    with pytest.raises(RenderError, match="do not fit 20 extn slots"):
        ext_values(too_many, slots)


def test_the_plate_type_is_the_registered_one_or_the_categorys_usual_one() -> None:
    from station.upload.render import vehicle_view

    assert vehicle_view(None, PSB.codes) is None
    started = {"plate": "粤A12345", "category": "trailer"}
    assert (vehicle_view(started, PSB.codes) or {})["hpzl"] == "15"  # 挂车
    registered = started | {"plate_type": "52"}  # 小型新能源汽车, from the window
    assert (vehicle_view(registered, PSB.codes) or {})["hpzl"] == "52"
    assert (vehicle_view({"plate": "粤A12345"}, PSB.codes) or {})["hpzl"] is None


DYNO = json.loads((HERE / "data" / "dyno-capture.json").read_text())


def test_a_dyno_inspection_plans_the_obd_result_before_the_method_and_no_psb_obd() -> None:
    (asm,) = [r for r in DYNO["results"] if r["item_code"] == "ASM"]
    records = [r for r in DYNO["results"] if r["inspection_id"] == asm["inspection_id"]]
    plan = plan_inspection(records, {r["record_id"] for r in records}, Platforms())
    unique = {s.step_key: s for s in plan.steps if s.platform == "env"}  # one row per key
    env = sorted(unique.values(), key=lambda s: s.ord)
    assert [(s.call, s.item_code) for s in env] == [
        ("downInspRegInfo", None), ("uploadInspResultOBD", "OBD"), ("uploadInspResult", "ASM"),
    ]  # fmt: skip
    psb = [(s.call, s.item_code) for s in plan.steps if s.platform == "psb"]
    assert ("18C83", "ASM") in psb and ("18C83", "OBD") not in psb
    assert [c for c, _ in psb][-2:] == ["18C82", "18C59"]


def test_per_second_rows_count_from_the_first_sample_and_vmas_from_its_cycle() -> None:
    # 1 Hz with jitter: the seconds since the first sample, half up, from 1
    assert [sample_serial("ASM", {"t_s": t}, 6.543) for t in (6.543, 7.532, 8.49, 9.61)] == [
        1, 2, 3, 4]  # fmt: skip
    # 4 Hz: four samples per second, the first of each is its row (same serial, one step)
    serials = [sample_serial("LUG", {"t_s": 5.0 + n / 4}, 5.0) for n in range(9)]
    assert serials == [1, 1, 2, 2, 2, 2, 3, 3, 3]
    # VMAS: the cycle second 1..195; its start instant and beyond 195 s are no rows
    assert [sample_serial("VMAS", {"cycle_s": c}, None) for c in (0.01, 1.004, 195.0, 196.2)] == [
        None, 1, 195, None]  # fmt: skip
    assert sample_steps("i", "L1", "VMAS", 1, NOW, {"cycle_s": 0.0, "t_s": 4.0}) == []
    one = sample_steps("i", "L1", "LUG", 1, NOW, {"t_s": 5.2}, 5.0)[1]
    again = sample_steps("i", "L1", "LUG", 1, NOW, {"t_s": 5.45}, 5.0)[1]
    assert one.step_key == again.step_key and one.inputs["origin_t_s"] == 5.0


def test_code_keys_from_several_values_and_ranges() -> None:
    env = packaged("env.yaml")
    (opcode,) = [f for f in env.fields_for("uploadInspProcess", "ASM") if f.field == "opcode"]
    for mode, phase, code in (("5025", "sync", "2"), ("2540", "testing", "6")):
        done = render((opcode,), Inputs(now=NOW, zone=ZONE, sample={"mode": mode, "phase": phase}),
                      env)  # fmt: skip
        assert done.values == [("opcode", code)]
    with pytest.raises(RenderError, match="not in code table asm_opcode"):
        render((opcode,), Inputs(now=NOW, zone=ZONE, sample={"mode": "5025", "phase": "x"}), env)
    (opno,) = [f for f in env.fields_for("uploadInspProcess", "VMAS") if f.field == "opno"]
    got = [render((opno,), Inputs(now=NOW, zone=ZONE, sample={"serial": s}), env).values[0][1]
           for s in (1, 11, 12, 96, 97, 195)]  # fmt: skip
    assert got == ["1", "1", "2", "12", "13", "25"]
    with pytest.raises(RenderError, match="not in code table vmas_opno"):
        render((opno,), Inputs(now=NOW, zone=ZONE, sample={"serial": 196}), env)


def test_a_dyno_lane_is_locked_until_its_coast_down_is_accepted() -> None:
    devices = [{"id": "dyno", "device_class": "chassis_dynamometer"},
               {"id": "flowmeter", "device_class": "flowmeter"}]  # fmt: skip
    required = {"chassis_dynamometer": ["coast_down"], "flowmeter": ["flowmeter"]}
    day = NOW - timedelta(hours=2)
    none = regulator_locks([("L1", devices)], [], required, 24, NOW)
    assert none == {
        "L1": {
            "dyno": ["daily coast_down check not uploaded to the environmental platform"],
            "flowmeter": ["daily flowmeter check not uploaded to the environmental platform"],
        }
    }
    refused = [
        upload("dyno", "coast_down", "refused", "pass", day, 1),
        upload("flowmeter", "flowmeter", "accepted", "pass", day, 2),
    ]
    locks = regulator_locks([("L1", devices)], refused, required, 24, NOW)
    assert locks == {
        "L1": {"dyno": ["coast_down check refused by the environmental platform: 0 设备未备案"]}
    }
    accepted = [upload("dyno", "coast_down", "accepted", "pass", day, 3), refused[1]]
    assert regulator_locks([("L1", devices)], accepted, required, 24, NOW) == {"L1": {}}
