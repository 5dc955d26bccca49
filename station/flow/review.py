"""What the chief inspector reviews and the report prints: the instrument and manual
results of every attempt of one inspection, the latest attempt of an item deciding its
verdict, with the plausibility flags and the evidence behind them. Pure: it takes the
stored records and attempts and computes; no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from station.flow.manual import MANUAL_LANE
from station.flow.rules import item_name, manual_item, value_name
from station.flow.store import Attempt

VERDICT_TEXT: Final = {
    "pass": "合格",
    "fail": "不合格",
    "aborted": "未检（中止）",
    "not_judged": "不判定",
    None: "未检",
}
_OK: Final = ("pass", "not_judged")


def verdict_text(verdict: str | None) -> str:
    """The Chinese word for a verdict."""
    return VERDICT_TEXT.get(verdict, str(verdict))


@dataclass(frozen=True, slots=True)
class Value:
    """One measured value of an instrument item."""

    name: str
    value: Any
    unit: str | None
    limit: str
    verdict: str | None

    @property
    def label(self) -> str:
        """The value's name in Chinese where known."""
        return value_name(self.name)

    @property
    def shown(self) -> str:
        """Value and unit as printed."""
        unit = "%" if (self.unit or "").startswith("%") else (self.unit or "")
        return f"{self.value}{' ' + unit if unit and unit != '%' else unit}"


@dataclass(slots=True)
class Result:
    """One attempt of one item."""

    attempt: int
    verdict: str
    values: list[Value] = field(default_factory=list)
    reason: str | None = None
    flags: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    suspect: bool = False

    @property
    def judged(self) -> list[Value]:
        """The values with a verdict (the rest is context, shown folded)."""
        return [v for v in self.values if v.verdict]

    @property
    def context(self) -> list[Value]:
        """The values without a verdict."""
        return [v for v in self.values if not v.verdict]


@dataclass(slots=True)
class Item:
    """An item (instrument code or manual number) with every attempt at it."""

    key: str
    name: str
    group: str
    results: list[Result] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Code and name ("B1 一轴制动"); the whole-vehicle summary by its name only."""
        return self.name if self.key == "summary" else f"{self.key} {self.name}"

    @property
    def final(self) -> Result | None:
        """The latest attempt: the one that counts."""
        return self.results[-1] if self.results else None

    @property
    def verdict(self) -> str | None:
        """The item's verdict (its latest attempt's)."""
        return None if self.final is None else self.final.verdict


@dataclass(slots=True)
class Review:
    """An inspection as the review page and the report show it."""

    serial: str
    attempt: int
    lane: list[Item]
    manual: list[Item]
    flags: list[str]
    lane_done: bool
    manual_done: bool

    @property
    def ready(self) -> bool:
        """Every item of the current attempt has its result."""
        return self.lane_done and self.manual_done

    @property
    def failed(self) -> list[Item]:
        """Items whose latest result is a fail (or an abort: measured again)."""
        return [i for i in self.lane + self.manual if i.verdict not in _OK]

    @property
    def verdict(self) -> str:
        """pass when every item's latest result passed."""
        return "pass" if not self.failed else "fail"


def _limit_text(limit: dict[str, Any] | None) -> str:
    if not limit:
        return ""
    low, high, unit = limit.get("low"), limit.get("high"), limit.get("unit") or ""
    if low is not None and high is not None:
        return f"{low}–{high}{unit}"
    if low is not None:
        return f"≥{low}{unit}"
    if high is not None:
        return f"≤{high}{unit}"
    return ""


def build_review(
    serial: str, attempts: Sequence[Attempt], stored: Sequence[tuple[str, dict[str, Any]]]
) -> Review:
    """The review of ``serial`` from its attempts and its stored (status, record)s."""
    current = attempts[-1]
    lane: dict[str, Item] = {}
    for attempt in attempts:
        for code in attempt.lane_items:
            lane.setdefault(code, Item(code, item_name(code), "lane"))
    manual: dict[int, Item] = {}
    for attempt in attempts:
        for n in attempt.manual_items:
            manual.setdefault(n, Item(str(n), manual_item(n).name, manual_item(n).group))
    flags: list[str] = []
    lane_codes_now: set[str] = set()
    summary = False
    ordered = sorted(stored, key=lambda s: (s[1].get("attempt", 1), s[1].get("finished_at", "")))
    for status, record in ordered:
        attempt_no = int(record.get("attempt", 1))
        if status != "ok":
            flags.append(f"{record['item_code']} 第{attempt_no}次：记录链断裂（suspect），见告警")
        if record.get("lane") == MANUAL_LANE:
            _take_manual(manual, record, attempt_no, status != "ok")
            continue
        if record.get("kind") == "summary":
            code = "summary"
            lane.setdefault(code, Item(code, item_name(code), "lane"))
            summary = summary or attempt_no == current.attempt
        else:
            code = str(record["item_code"])
            if code not in lane:
                flags.append(f"{code}：未登记的项目（车道自行检测）")
                lane[code] = Item(code, item_name(code), "lane")
        if attempt_no == current.attempt:
            lane_codes_now.add(code)
        result = _lane_result(record, attempt_no, status != "ok")
        for text in result.flags:
            flags.append(f"{code} 第{attempt_no}次：{text}")
        _replace_attempt(lane[code], result)
    missing = [c for c in current.lane_items if c not in lane_codes_now]
    lane_done = not current.lane_items or summary or not missing
    manual_done = current.manual_state in ("done", "none")
    for item in lane.values():
        if item.verdict == "aborted":
            why = item.final.reason if item.final else ""
            flags.append(f"{item.key} {item.name}：中止，未能测量（{why}）")
    return Review(serial, current.attempt, list(lane.values()),
                  [manual[n] for n in sorted(manual)], flags, lane_done, manual_done)  # fmt: skip


def _lane_result(record: dict[str, Any], attempt: int, suspect: bool) -> Result:
    values = [
        Value(
            str(m.get("name")),
            m.get("value"),
            m.get("unit"),
            _limit_text(m.get("limit")),
            m.get("verdict"),
        )
        for m in record.get("measurements", [])
    ]
    flags = [f"{f.get('code')}: {f.get('message')}" for f in record.get("flags", [])]
    evidence = [f"{e.get('kind')} {str(e.get('sha256'))[:12]}" for e in record.get("evidence", [])]
    return Result(attempt, str(record["verdict"]), values, record.get("reason"), flags,
                  evidence, suspect)  # fmt: skip


def _take_manual(
    manual: dict[int, Item], record: dict[str, Any], attempt: int, suspect: bool
) -> None:
    evidence = [str(e.get("kind")) for e in record.get("evidence", [])]
    for m in record.get("measurements", []):
        number, _, _ = str(m.get("name", "")).partition(".")
        if not number.isdigit() or not m.get("verdict"):
            continue
        n = int(number)
        item = manual.get(n)
        if item is None:
            item = manual[n] = Item(str(n), manual_item(n).name, manual_item(n).group)
        reason = str(m.get("value") or "") or None
        _replace_attempt(
            item, Result(attempt, str(m["verdict"]), [], reason, [], evidence, suspect)
        )


def _replace_attempt(item: Item, result: Result) -> None:
    """A later record of the same attempt (resubmitted) replaces the earlier one."""
    item.results = [r for r in item.results if r.attempt != result.attempt] + [result]
    item.results.sort(key=lambda r: r.attempt)
