"""Flag a record whose raw data look manipulated or impossible (never block, never judge).

The checks read the evidence documents a record names (the full brake curves, the
per-second emission data) and the configured measuring ranges of its devices:

- ``no_noise``: a brake curve whose braking part has no sensor jitter;
- ``identical_curve``: a brake curve equal to one recorded for another item;
- ``above_range``: a force or gas value beyond the device's full scale (``identity.ranges``);
- ``diluted_sample``: a second of a measuring window with CO+CO2 below the dilution
  minimum (the procedure judges the window's mean; a single diluted second inside a
  passing window is what a rewritten stream or a slipping probe leaves behind).

Thresholds are config (``plausibility``), the dilution minimum comes from the limit table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from drivers.devices.base import DeviceClass
from gateway.config import DeviceConfig, PlausibilityConfig
from gateway.limits import load_table
from gateway.plausibility.fingerprints import FingerprintBook
from gateway.plausibility.signals import above, curve_fingerprint, is_noise_free
from gateway.records import Evidence, Flag

#: where the dilution minimum lives (GB 18285-2018 two-speed idle)
DILUTION_TABLE, DILUTION_KEY = "gb18285-2018", "tsi_co_plus_co2_pct_min"
#: the per-second gas columns checked against the analyser's ranges
GAS_RANGE_COLUMNS = ("co_pct", "hc_ppm", "co2_pct")

Document = dict[str, Any]


class PlausibilityChecker:
    """Looks at a record's evidence; returns the flags it deserves."""

    def __init__(
        self,
        config: PlausibilityConfig,
        devices: Sequence[DeviceConfig],
        book: FingerprintBook,
        read_evidence: Callable[[str], Document],
    ) -> None:
        self._cfg = config
        self._devices = {d.id: d for d in devices}
        self._book = book
        self._read = read_evidence

    def check(
        self,
        evidence: Sequence[Evidence],
        device_ids: Sequence[str],
        inspection_id: str | None,
        item_code: str,
        attempt: int = 1,
    ) -> list[Flag]:
        """Flags for a record made of ``evidence`` by ``device_ids``."""
        if not self._cfg.enabled:
            return []
        flags: list[Flag] = []
        for ref in evidence:
            if ref.kind == "brake_curve":
                doc = self._read(ref.sha256)
                ranges = self._ranges(device_ids, DeviceClass.BRAKE_TESTER)
                flags += self._brake_curve(ref, doc, ranges)
                flags += self._repeated(ref, doc, (inspection_id, item_code, attempt))
            elif ref.kind == "emission_process":
                ranges = self._ranges(device_ids, DeviceClass.GAS_ANALYSER)
                flags += self._gas_process(ref, self._read(ref.sha256), ranges)
        return flags

    def _ranges(self, device_ids: Sequence[str], device_class: DeviceClass) -> dict[str, float]:
        for device_id in device_ids:
            device = self._devices.get(device_id)
            if device is not None and device.device_class is device_class:
                return device.identity.ranges
        return {}

    def _brake_curve(
        self, ref: Evidence, doc: Document, ranges: dict[str, float]
    ) -> Iterator[Flag]:
        where = f"axle {doc.get('axle')} {doc.get('mode', '')}".strip()
        for side in ("left", "right"):
            values: list[float] = doc.get(f"{side}_dan", [])
            if is_noise_free(values, self._cfg.min_curve_samples, self._cfg.noise_free_fraction):
                yield Flag(
                    code="no_noise",
                    message=f"{where}: the {side} brake force curve has no sensor noise",
                    evidence=ref.sha256,
                )
            full_scale = ranges.get("force_dan")
            peak = above(values, full_scale) if full_scale else None
            if peak is not None:
                yield Flag(
                    code="above_range",
                    message=f"{where}: {side} force {peak:g} daN beyond the tester's "
                    f"range of {full_scale:g} daN",
                    evidence=ref.sha256,
                )

    def _repeated(
        self, ref: Evidence, doc: Document, item: tuple[str | None, str, int]
    ) -> Iterator[Flag]:
        fingerprint = curve_fingerprint(
            doc.get("left_dan", []), doc.get("right_dan", []), self._cfg.min_curve_samples
        )
        if fingerprint is None:
            return
        seen = self._book.remember(fingerprint, ref.sha256, *item)
        if seen is not None:
            yield Flag(
                code="identical_curve",
                message=f"brake curve identical to that of item {seen.item_code} of "
                f"inspection {seen.inspection_id} (attempt {seen.attempt}, {seen.seen_at})",
                evidence=ref.sha256,
            )

    def _gas_process(
        self, ref: Evidence, doc: Document, ranges: dict[str, float]
    ) -> Iterator[Flag]:
        columns: list[str] = doc.get("columns", [])
        rows: list[list[Any]] = doc.get("rows", [])
        if not {"phase", "co_pct", "co2_pct"} <= set(columns):
            return  # not a petrol gas process (a diesel opacity one has no CO/CO2)
        col = {name: i for i, name in enumerate(columns)}
        yield from self._diluted(ref, rows, col)
        for name in GAS_RANGE_COLUMNS:
            full_scale = ranges.get(name)
            peak = above([row[col[name]] for row in rows], full_scale) if full_scale else None
            if peak is not None:
                yield Flag(
                    code="above_range",
                    message=f"{name} {peak:g} beyond the analyser's range of {full_scale:g}",
                    evidence=ref.sha256,
                )

    def _diluted(self, ref: Evidence, rows: list[list[Any]], col: dict[str, int]) -> Iterator[Flag]:
        minimum = load_table(DILUTION_TABLE).limits[DILUTION_KEY].low
        if minimum is None:
            return
        diluted = [
            row
            for row in rows
            if str(row[col["phase"]]).endswith("_measuring")
            and row[col["co_pct"]] + row[col["co2_pct"]] < minimum
        ]
        if diluted:
            worst = min(diluted, key=lambda row: row[col["co_pct"]] + row[col["co2_pct"]])
            total = worst[col["co_pct"]] + worst[col["co2_pct"]]
            yield Flag(
                code="diluted_sample",
                message=f"{len(diluted)} s of measuring with CO+CO2 below {minimum:g} % "
                f"(lowest {total:.2f} % at t={worst[col['t_s']]} s)",
                evidence=ref.sha256,
            )
