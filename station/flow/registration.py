"""A registration at the window: the form's fields checked one by one, each problem
said in Chinese next to its field (``FieldErrors``), never a traceback."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from station.flow.rules import Vehicle, kinds, plate_types
from station.flow.vin import vin_problem

PLATE: Final = re.compile(r"^[\u4e00-\u9fa5][A-Z][A-Z0-9]{4,6}[\u4e00-\u9fa5]?$")
FUELS: Final = {
    "petrol": "汽油",
    "diesel": "柴油",
    "electric": "纯电动",
    "hybrid": "混合动力",
    "other": "其他",
}
#: inspection types (检验类别): jylb of 18C51, and the retest (复检) of an earlier serial
INSPECTION_TYPES: Final = {
    "periodic": ("01", "在用定检"),
    "new_registration": ("00", "注册登记"),
    "retest": ("01", "复检"),
}
SERIAL: Final = re.compile(r"^[0-9A-Za-z]{17}$")
TEXT_MAX: Final = 64


class FieldErrors(ValueError):
    """Problems per field: {field: message}."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Registration:
    """A vehicle as registered (the fields of the form)."""

    plate: str
    plate_type: str
    vin: str
    kind: str
    fuel: str
    curb_mass_kg: int
    gross_mass_kg: int
    reference_mass_kg: int
    axles: int
    headlamps: int
    emission: bool
    inspection_type: str
    booking_code: str | None = None
    owner: str | None = None
    brand_model: str | None = None
    engine_no: str | None = None

    @property
    def vehicle(self) -> Vehicle:
        """What the item rules look at."""
        return Vehicle(
            self.kind, self.plate_type, self.fuel, self.axles, self.headlamps, self.emission
        )

    def to_json(self) -> dict[str, Any]:
        """As stored and as the API returns it."""
        return asdict(self)


class _Reader:
    """Reads one form (or JSON object), collecting an error per bad field."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, str] = {}

    def text(self, name: str, required: bool = True, upper: bool = False) -> str | None:
        value = self.data.get(name)
        text = "" if value is None else str(value).strip()
        text = text.upper() if upper else text
        if not text:
            if required:
                self.errors[name] = "必填"
            return None
        if len(text) > TEXT_MAX:
            self.errors[name] = f"最多{TEXT_MAX}个字符"
            return None
        return text

    def number(self, name: str, low: int, high: int, default: int | None = None) -> int:
        value = self.data.get(name)
        if value in (None, "") and default is not None:
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            self.errors[name] = "必填，应为整数" if value in (None, "") else "应为整数"
            return 0
        if not low <= number <= high:
            self.errors[name] = f"应在{low}至{high}之间"
        return number

    def choice(self, name: str, choices: Mapping[str, Any], what: str) -> str:
        value = self.text(name)
        if value is not None and value not in choices:
            self.errors[name] = f"未知的{what}：{value}"
        return value or ""

    def flag(self, name: str) -> bool:
        return str(self.data.get(name, "")).lower() in ("1", "true", "on", "yes")


def parse_registration(data: Mapping[str, Any]) -> Registration:
    """A registration from a form or JSON object; raises ``FieldErrors``."""
    r = _Reader(data)
    plate = r.text("plate", upper=True)
    if plate is not None and not PLATE.match(plate):
        r.errors["plate"] = "号牌号码格式不对（例：粤A12345）"
    plate_type = r.choice("plate_type", plate_types().codes, "号牌种类")
    vin = r.text("vin", upper=True)
    if vin is not None and (problem := vin_problem(vin)) is not None:
        r.errors["vin"] = problem
    kind = r.choice("kind", kinds(), "车辆类型")
    fuel = r.choice("fuel", FUELS, "燃料种类")
    curb = r.number("curb_mass_kg", 100, 100_000)
    gross = r.number("gross_mass_kg", 100, 100_000)
    if "gross_mass_kg" not in r.errors and "curb_mass_kg" not in r.errors and gross < curb:
        r.errors["gross_mass_kg"] = "总质量不能小于整备质量"
    # 基准质量: curb mass + 100 kg (GB 18352 / GB 18285), unless the certificate says so
    reference = r.number("reference_mass_kg", 100, 100_100, default=curb + 100)
    axles = r.number("axles", 1, 6)
    headlamps = r.number("headlamps", 2, 4, default=2)
    if headlamps not in (2, 4):
        r.errors["headlamps"] = "前照灯为二灯制或四灯制"
    inspection_type = r.choice("inspection_type", INSPECTION_TYPES, "检验类别")
    if inspection_type == "retest":
        r.errors["inspection_type"] = "复检请选择复检并填写原检验流水号"
    if r.errors:
        raise FieldErrors(r.errors)
    assert plate is not None
    assert vin is not None
    return Registration(
        plate=plate,
        plate_type=plate_type,
        vin=vin,
        kind=kind,
        fuel=fuel,
        curb_mass_kg=curb,
        gross_mass_kg=gross,
        reference_mass_kg=reference,
        axles=axles,
        headlamps=headlamps,
        emission=r.flag("emission"),
        inspection_type=inspection_type,
        booking_code=r.text("booking_code", required=False),
        owner=r.text("owner", required=False),
        brand_model=r.text("brand_model", required=False),
        engine_no=r.text("engine_no", required=False, upper=True),
    )


def is_retest(data: Mapping[str, Any]) -> bool:
    """Whether the form asks for the retest (复检) of an earlier inspection."""
    return str(data.get("inspection_type", "")).strip() == "retest"


def parse_retest(data: Mapping[str, Any]) -> str:
    """The serial number (检验流水号) of the inspection to retest; raises ``FieldErrors``."""
    serial = str(data.get("previous_serial") or "").strip().upper()
    if not SERIAL.match(serial):
        message = "必填" if not serial else "检验流水号为17位数字或字母"
        raise FieldErrors({"previous_serial": message})
    return serial
