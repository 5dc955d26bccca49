"""``python -m bench.imports``: the daemon's resident memory charged per imported package,
run for a moment on one bench meter so that the tool cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.procs import REPO


def test_memory_per_import_adds_up(tmp_path: Path) -> None:
    out = tmp_path / "imports.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.imports", "--devices", "1", "--seconds", "0.5",
         "--json", str(out)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    packages = figures["packages"]
    # the daemon's own parts and its named dependencies were measured ...
    assert {"gateway", "drivers", "pydantic", "cryptography", "aiomqtt"} <= set(packages)
    # ... and what the launcher keeps out was not imported at all
    assert not {"typer", "rich", "station"} & set(packages)
    assert "gateway.app" in figures["modules"] and "typer" not in figures["modules"]
    imported = sum(packages.values())
    assert imported > 10  # MB: the daemon's imports are most of its memory
    assert figures["end_mb"] > figures["start_mb"] + imported - 1
    assert "VmRSS at the end" in result.stdout and "cryptography" in result.stdout
