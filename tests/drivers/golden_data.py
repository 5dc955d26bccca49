"""Loads the golden frames of tests/drivers/golden/*.yaml (protocols.md worked examples,
and frames derived by hand where the document has none) and feeds decoders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from drivers.framing import NEED_DATA, FrameDecoder

GOLDEN = Path(__file__).parent / "golden"
M = TypeVar("M")


@dataclass(frozen=True)
class Golden:
    """One golden frame: its bytes and what they mean."""

    protocol: str
    name: str
    source: str  # "doc": literal from protocols.md; "derived": by hand from its layout
    section: str
    kind: str
    data: bytes  # ``hex`` in the file, or ``text`` (ASCII protocols)
    values: dict[str, Any]
    extra: dict[str, Any]


def load(protocol: str) -> list[Golden]:
    """Every frame of ``golden/<protocol>.yaml``."""
    document = yaml.safe_load((GOLDEN / f"{protocol}.yaml").read_text(encoding="utf-8"))
    assert document["protocol"] == protocol
    frames = []
    for entry in document["frames"]:
        known = {"name", "source", "section", "kind", "hex", "text", "values"}
        extra = {key: value for key, value in entry.items() if key not in known}
        assert entry["source"] in ("doc", "derived"), entry["name"]
        assert entry["section"].startswith("§"), entry["name"]  # every frame cites its section
        frames.append(
            Golden(
                protocol,
                entry["name"],
                entry["source"],
                entry["section"],
                entry.get("kind", ""),
                bytes.fromhex(entry["hex"]) if "hex" in entry else entry["text"].encode("ascii"),
                entry["values"],
                extra,
            )
        )
    return frames


def params(protocol: str, *kinds: str) -> pytest.MarkDecorator:
    """``pytest.mark.parametrize`` over the frames of ``protocol`` (of ``kinds``, if given)."""
    frames = [g for g in load(protocol) if not kinds or g.kind in kinds]
    assert frames, f"no golden frames of {kinds} in {protocol}.yaml"
    return pytest.mark.parametrize("golden", frames, ids=[g.name for g in frames])


def decode_one(decoder: FrameDecoder[M], data: bytes) -> M:
    """The single message ``data`` decodes to (it must leave nothing behind)."""
    decoder.feed(data)
    message = decoder.next_message()
    assert message is not NEED_DATA, "the decoder wants more bytes than the golden frame"
    assert decoder.next_message() is NEED_DATA, "the golden frame decoded to more than one"
    return message
