"""The inspection report (机动车安全技术检验报告) as a PDF, in the layout of the national
report (regulator.md §4.1: basic data, conclusion, manual results, instrument results,
advice and remarks), with a QR code (segno) that opens the station's verification page.
Drawn with reportlab in a CJK font (Debian's fonts-wqy-microhei by default)."""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import segno
from reportlab.graphics.shapes import Drawing, Rect
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from gateway.errors import GatewayError
from station.flow.registration import FUELS, INSPECTION_TYPES
from station.flow.review import Item, Review, Value, verdict_text
from station.flow.rules import kinds, plate_types

DEFAULT_FONT: Final = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
FONT: Final = "LanegwCJK"
STICKER: Final = "机动车安全技术检验合格后请及时向公安机关交通管理部门申领检验合格标志。"


class ReportError(GatewayError):
    """The report cannot be drawn (its font is missing)."""


@functools.cache
def _register_font(path: Path) -> str:
    if not path.is_file():
        raise ReportError(
            f"CJK font for the report not found at {path}: install Debian's "
            "fonts-wqy-microhei (apt-get install fonts-wqy-microhei) or set flow.report_font"
        )
    try:
        font = (
            TTFont(FONT, str(path), subfontIndex=0)
            if path.suffix == ".ttc"
            else TTFont(FONT, str(path))
        )
    except Exception as exc:  # noqa: BLE001 (reportlab raises TTFError and plain errors alike)
        raise ReportError(f"{path} is not a usable TrueType font: {exc}") from None
    pdfmetrics.registerFont(font)
    return FONT


@dataclass(frozen=True, slots=True)
class ReportData:
    """What the report prints besides the review."""

    station_name: str
    station_address: str
    station_phone: str
    registration: dict[str, Any]
    inspected_on: str
    signatory: str
    verify_url: str
    next_inspection: str


class _Qr(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """A QR code drawn as squares (no image library needed)."""

    def __init__(self, text: str, size: float) -> None:
        super().__init__()
        self.qr = segno.make(text, error="m")
        self.size = size
        self.width = self.height = size

    def draw(self) -> None:
        matrix = [list(row) for row in self.qr.matrix]
        count = len(matrix) + 8  # a quiet zone of 4 modules each side
        cell = self.size / count
        drawing = Drawing(self.size, self.size)
        for y, row in enumerate(matrix):
            for x, dark in enumerate(row):
                if dark:
                    top = self.size - (y + 4 + 1) * cell
                    drawing.add(Rect((x + 4) * cell, top, cell, cell, fillColor=colors.black,
                                     strokeColor=None))  # fmt: skip
        drawing.drawOn(self.canv, 0, 0)


def _styles(font: str) -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=font, fontSize=9, leading=12)
    return {
        "base": base,
        "title": ParagraphStyle("title", parent=base, fontSize=16, leading=22, alignment=1),
        "h": ParagraphStyle("h", parent=base, fontSize=11, leading=16, spaceBefore=6),
        "cell": ParagraphStyle("cell", parent=base, fontSize=8.5, leading=11),
        "verdict": ParagraphStyle("verdict", parent=base, fontSize=14, leading=18),
    }


def _grid(font: str, header: bool = True) -> TableStyle:
    commands: list[tuple[Any, ...]] = [
        ("FONTNAME", (0, 0), (-1, -1), font),
        ("FONTSIZE", (0, 0), (-1, -1), 8.5),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")))
    return TableStyle(commands)


def _attempts_note(item: Item) -> str:
    """Every attempt of a retested item, e.g. '第1次：不合格；第2次：合格'."""
    if len(item.results) < 2:
        return ""
    return "；".join(f"第{r.attempt}次：{verdict_text(r.verdict)}" for r in item.results)


def render_report(review: Review, data: ReportData, font_path: Path = DEFAULT_FONT) -> bytes:
    """The report of a reviewed inspection as PDF bytes."""
    font = _register_font(font_path)
    st = _styles(font)
    reg = data.registration
    P = functools.partial(Paragraph, style=st["cell"])
    story: list[Flowable] = []
    head = Table(
        [[Paragraph("机动车安全技术检验报告", st["title"]), _Qr(data.verify_url, 26 * mm)]],
        colWidths=[150 * mm, 30 * mm],
    )
    head.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE")]))
    story += [head, Paragraph(f"检验报告编号：{review.serial}-{review.attempt:02d}", st["base"])]

    story.append(Paragraph("一、基本信息", st["h"]))
    kind = kinds().get(str(reg.get("kind")))
    basic = [
        ("检验机构名称", data.station_name, "检验流水号", review.serial),
        ("号牌号码", reg.get("plate"), "号牌种类",
         plate_types().codes.get(str(reg.get("plate_type")), reg.get("plate_type"))),
        ("所有人", reg.get("owner") or "—", "车辆类型", kind.name if kind else reg.get("kind")),
        ("品牌/型号", reg.get("brand_model") or "—", "燃料种类", FUELS.get(str(reg.get("fuel")))),
        ("车辆识别代号", reg.get("vin"), "发动机号码", reg.get("engine_no") or "—"),
        ("检验类别", INSPECTION_TYPES.get(str(reg.get("inspection_type")), ("", "—"))[1],
         "检验次数", str(review.attempt)),
        ("检验日期", data.inspected_on, "整备质量/总质量",
         f"{reg.get('curb_mass_kg')} / {reg.get('gross_mass_kg')} kg"),
    ]  # fmt: skip
    table = Table([[P(str(c)) for c in row] for row in basic],
                  colWidths=[28 * mm, 62 * mm, 28 * mm, 62 * mm])  # fmt: skip
    table.setStyle(_grid(font, header=False))
    story.append(table)

    story.append(Paragraph("二、检验结论", st["h"]))
    conclusion = Table(
        [
            [P("检验结论"), Paragraph(verdict_text(review.verdict), st["verdict"])],
            [P("授权签字人"), P(data.signatory)],
            [P("单位名称（盖章）"), P(data.station_name)],
        ],
        colWidths=[40 * mm, 140 * mm],
    )
    conclusion.setStyle(_grid(font, header=False))
    story.append(conclusion)

    story.append(Paragraph("三、人工检验结果", st["h"]))
    rows = [[P("序号"), P("检验项目"), P("结果判定"), P("具体不合格项目情况说明"), P("备注")]]
    for item in review.manual:
        final = item.final
        reasons = "；".join(
            f"第{r.attempt}次：{r.reason}" if len(item.results) > 1 else r.reason
            for r in item.results if r.reason
        )  # fmt: skip
        rows.append([P(item.key), P(item.name), P(verdict_text(final.verdict if final else None)),
                     P(reasons), P(_attempts_note(item))])  # fmt: skip
    table = Table(rows, colWidths=[12 * mm, 52 * mm, 20 * mm, 60 * mm, 36 * mm], repeatRows=1)
    table.setStyle(_grid(font))
    story.append(table)

    story.append(Paragraph("四、仪器设备检验结果", st["h"]))
    rows = [[P("序号"), P("检验项目"), P("结果"), P("标准限值"), P("结果判定"), P("备注")]]
    number = 0
    for item in review.lane:
        for result in item.results:
            values: list[Value | None] = [*result.judged] or [None]
            for value in values:
                number += 1
                note = f"第{result.attempt}次" + (f"；{result.reason}" if result.reason else "")
                if value is None:
                    rows.append([P(str(number)), P(item.label), P("—"), P(""),
                                 P(verdict_text(result.verdict)), P(note)])  # fmt: skip
                    continue
                verdict = verdict_text(value.verdict or result.verdict)
                rows.append([P(str(number)), P(f"{item.label} {value.label}"),
                             P(value.shown), P(value.limit), P(verdict), P(note)])  # fmt: skip
    table = Table(rows, colWidths=[12 * mm, 62 * mm, 28 * mm, 28 * mm, 20 * mm, 30 * mm],
                  repeatRows=1)  # fmt: skip
    table.setStyle(_grid(font))
    story.append(table)

    story.append(Paragraph("五、建议", st["h"]))
    failed = "；".join(i.label for i in review.failed)
    advice = f"不合格项目：{failed}。请维修后申请复检。" if failed else "无。"
    story.append(Paragraph(advice, st["base"]))
    story.append(Paragraph("备注", st["h"]))
    remarks = [
        f"下次检验时间：{data.next_inspection}" if review.verdict == "pass" else "",
        STICKER,
        f"地址：{data.station_address}　电话：{data.station_phone}",
        f"验证：扫描右上角二维码或访问 {data.verify_url}",
    ]
    story += [Paragraph(text, st["base"]) for text in remarks if text]
    story.append(Spacer(1, 4 * mm))

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=12 * mm, bottomMargin=12 * mm,
                            title=f"机动车安全技术检验报告 {review.serial}",
                            author=data.station_name)  # fmt: skip
    doc.build(story)
    return buffer.getvalue()


def attempts_summary(items: Sequence[Item]) -> str:
    """A line per retested item (for logs and the review page)."""
    return "\n".join(f"{i.key} {i.name}: {_attempts_note(i)}" for i in items if len(i.results) > 1)
