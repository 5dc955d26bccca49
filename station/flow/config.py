"""The ``flow:`` section of the station config (docs/config.md, docs/station-flow.md)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


class FlowConfig(BaseModel):
    """The one-window flow's pages (registration, dispatch, handheld, review, report,
    owner's link), served by ``lanegw station run`` when enabled."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    public_url: str | None = Field(
        default=None,
        description="base URL the slip's and report's QR codes open (default http://host:port)",
    )
    serial_prefix: str | None = Field(
        default=None,
        description="7 characters: 5 机构编号 + 2 终端编号 of the serial numbers (检验流水号); "
        "default: the station id when it has 7 characters",
    )
    station_name: str = "机动车检验机构"
    station_address: str = ""
    station_phone: str = ""
    key_file: Path = Field(
        default=Path("/var/lib/lanegw-station/flow.key"),
        description="Ed25519 key signing the manual results (created 0600 at first start)",
    )
    report_font: Path = Field(default=DEFAULT_FONT, description="a CJK TrueType font (.ttf/.ttc)")
    cookie_secure: bool = Field(
        default=True, description="Secure session cookies (browsers allow them on localhost)"
    )
    session_lifetime_s: float = Field(default=12 * 3600, gt=0)
    owner_link_lifetime_s: float = Field(
        default=24 * 3600, gt=0, description="an owner's link works this long at most"
    )
    owner_link_grace_s: float = Field(
        default=3600, ge=0, description="and this long after the chief inspector's decision"
    )
    dispatch_timeout_s: float = Field(default=10.0, gt=0, description="wait for a lane's answer")
    lanes: list[str] = Field(
        default_factory=list, description="lanes offered for dispatch besides those seen online"
    )
    photo_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    @field_validator("serial_prefix")
    @classmethod
    def _prefix(cls, prefix: str | None) -> str | None:
        if prefix is not None and not re.fullmatch(r"[0-9A-Za-z]{7}", prefix):
            raise ValueError("serial_prefix is 7 letters or digits (5 机构编号 + 2 终端编号)")
        return prefix


def flow_checks(config: FlowConfig) -> list[tuple[str, bool, str]]:
    """(name, ok, detail) of what ``lanegw station check`` tries for the flow: the
    report's font and the signing key's place."""
    font = config.report_font
    if font.is_file():
        font_check = ("report font", True, str(font))
    else:
        hint = "apt-get install fonts-wqy-microhei, or set flow.report_font"
        font_check = ("report font", False, f"{font} missing: {hint}")
    key = config.key_file
    if key.exists():
        private = not key.stat().st_mode & 0o077
        detail = str(key) if private else f"{key} is readable by others: chmod 600 {key}"
        key_check = ("flow key", private, detail)
    else:
        parent = next((p for p in [key.parent, *key.parent.parents] if p.exists()), Path("/"))
        writable = os.access(parent, os.W_OK)
        detail = f"{key} will be created at the first start"
        if not writable:
            detail = f"cannot create {key}: {parent} is not writable"
        key_check = ("flow key", writable, detail)
    return [font_check, key_check]
