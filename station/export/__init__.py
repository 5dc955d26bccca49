"""One inspection's result records in the regulator's item layout (no I/O).

``export_inspection`` takes the stored ``ResultRecord`` JSON dicts of one inspection and
returns a JSON-able dict for ``lanegw station export --inspection ID``::

    {"jylsh", "jyjgbh", "jcxdh",            # header (PSB field names)
     "items": [...],                        # PSB items B1..B5, B0, H1..H4, S1
     "summary": {...} | None,               # 18C82 whole-vehicle fields
     "emissions": [...],                    # TSI, FA: under method names, our value names
     "other_items": [...],                  # item codes the layout does not list
     "not_from_records": {...},             # PSB fields the caller must fill (jylb, ...)
     "source": {...}}                       # layout name/version, time zone, counts

A PSB item holds ``jyxm``, ``jycs``, ``jcxdh``, ``kssj``, ``jssj`` (local time) and the
fields ``psb-items.yaml`` maps (e.g. B1: ``yzqczzdl``, ``yqqcyzdl``, ``yzzdlqx``), then
our keys: ``verdict_code`` (0 untested / 1 pass / 2 fail) and ``verdict_codes`` per
judged measurement, ``verdict``, ``reason``, ``unmapped`` (every value with no field name
in standards.md, under our measurement name; brake curves under ``brake_curve``),
``units`` (of the unmapped values), ``devices``, ``record_id``, ``earlier_record_ids``
(superseded attempts, see ``select``) and ``flags``. Calibration and check records are
skipped; records of another inspection, or none at all, raise ``ExportError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from station.export import render
from station.export.errors import ExportError
from station.export.layout import LAYOUT_FILE, Layout, load_layout
from station.export.select import Selection, select

__all__ = ["ExportError", "Layout", "export_inspection", "load_layout"]


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExportError(f"unknown time zone {tz!r}") from None


def _header(selection: Selection, layout: Layout) -> dict[str, Any]:
    values = {
        "inspection_id": selection.inspection_id,
        "station": selection.station,
        # one lane for the header; a multi-lane inspection names its lane per item
        "lane": selection.lanes[0] if len(selection.lanes) == 1 else None,
    }
    return {spec.field: values[spec.record] for spec in layout.header}


def _source(selection: Selection, layout: Layout, tz: str) -> dict[str, Any]:
    return {
        "layout": layout.name,
        "layout_version": layout.version,
        "layout_file": LAYOUT_FILE,
        "time_zone": tz,
        "records_used": selection.used,
        "records_ignored": selection.ignored,
        "emissions_note": layout.emissions.note,
    }


def export_inspection(
    records: Sequence[Mapping[str, Any]], *, tz: str = "Asia/Shanghai"
) -> dict[str, Any]:
    """The inspection's records in the regulator's item layout (see the module doc).

    ``tz``: the station's time zone, for ``kssj`` / ``jssj`` (records are in UTC).
    Raises ``ExportError`` for no records, records of several inspections or stations,
    an invalid record, or an unknown time zone.
    """
    zone = _zone(tz)
    layout = load_layout()
    selection = select(records)
    items, emissions, others = [], [], []
    for chosen in selection.items:
        code = chosen.record.item_code
        if code in layout.items:
            items.append(render.psb_item(chosen, layout.items[code], layout, zone))
        elif code in layout.emissions.methods:
            method = layout.emissions.methods[code]
            entry = render.unlisted(chosen, "method", layout, zone)
            emissions.append(entry | {"title": method.title, "standard": method.standard})
        else:
            others.append(render.unlisted(chosen, "item_code", layout, zone))
    summary = selection.summary
    return {
        **_header(selection, layout),
        "items": items,
        "summary": render.summary(summary, layout, zone) if summary else None,
        "emissions": emissions,
        "other_items": others,
        "not_from_records": dict(layout.not_from_records),
        "source": _source(selection, layout, tz),
    }
