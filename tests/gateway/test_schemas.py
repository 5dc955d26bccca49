"""The published JSON Schemas in schemas/ match the models (regenerate them with
``lanegw schema --export schemas``), and ``lanegw schema`` prints them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.schemas import SCHEMA_MODELS, render

SCHEMAS = Path(__file__).parents[2] / "schemas"


@pytest.mark.parametrize("name", sorted(SCHEMA_MODELS))
def test_exported_schema_is_current(name: str) -> None:
    stored = (SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8")
    assert stored == render(name), f"stale: run lanegw schema --export schemas ({name})"


def test_schema_command_prints_one_and_refuses_unknown() -> None:
    cmd = [sys.executable, "-m", "gateway", "schema"]
    one = subprocess.run([*cmd, "result-record"], capture_output=True, text=True, timeout=60)
    assert one.returncode == 0
    assert json.loads(one.stdout)["$id"] == "lanegw:result-record"
    bad = subprocess.run([*cmd, "nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "unknown schema" in bad.stderr and "Traceback" not in bad.stderr
