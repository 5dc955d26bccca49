"""The display-string catalogue (``display.yaml``): how values, steps, items and verdicts
are named for people. zh-CN first, English second, units with the values. The live page
gets it whole (``/catalogue.json``); ``lanegw monitor`` takes the English names and units.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict


class Label(BaseModel):
    """One string in both languages; a value's unit when it has one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zh: str
    en: str
    unit: str | None = None


class Catalogue(BaseModel):
    """The whole catalogue (see display.yaml for what each section is)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: dict[str, Label]
    items: dict[str, Label]
    steps: dict[str, Label]
    verdicts: dict[str, Label]
    statuses: dict[str, Label]
    availability: dict[str, Label]
    device_classes: dict[str, Label]
    categories: dict[str, Label]
    units: dict[str, Label]
    words: dict[str, Label]
    families: dict[str, str]
    explain: dict[str, dict[str, Label]]
    ui: dict[str, Label]


@cache
def catalogue() -> Catalogue:
    """The catalogue shipped with lanegw."""
    text = resources.files("gateway").joinpath("display.yaml").read_text(encoding="utf-8")
    return Catalogue.model_validate(yaml.safe_load(text))


def value_label(name: str) -> Label:
    """The label of a value; an unknown name reads as its words (never as ``lambda_``)."""
    known = catalogue().values.get(name)
    if known is not None:
        return known
    words = name.strip("_").replace("_", " ")
    return Label(zh=words, en=words)
