"""Config files: the example is valid; broken files get clear, located messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "config" / "lane.example.yaml"


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_example_config_is_valid_and_summarised() -> None:
    config = load_config(EXAMPLE)
    assert (config.station, config.lane) == ("4401001", "L1")
    result = run_check(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "station 4401001, lane L1" in result.stdout
    assert "speedometer" in result.stdout


BROKEN = {
    "unknown key": ('lane: "L1"', 'lane: "L1"\nlanee: L2', "lanee", "Extra inputs"),
    "bad type": ("  port: 1883", "  port: eighteen", "mqtt.port", "valid integer"),
    "unknown protocol": ("protocol: tlch10", "protocol: tlch99", "devices[", "unknown protocol"),
    "missing bus": ("    bus: com-speed\n", "    bus: com-nowhere\n", "", "no bus named"),
    "class mismatch": (
        "class: speedometer_tester",
        "class: gas_analyser",
        "devices[",
        "drives a speedometer",
    ),
    "bad yaml": ('lane: "L1"', "lane: [L1", "", "not valid YAML"),
    "duplicate id": ("  - id: headlamp\n", "  - id: brake\n", "", "duplicate device id"),
    "rfc2217 url": (
        "url: socket://192.168.10.21:4001",
        "url: rfc2217://192.168.10.21:4001",
        "buses[",
        "rfc2217:// is not supported",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_is_reported_with_field_and_line(tmp_path: Path, case: str) -> None:
    old, new, field, message = BROKEN[case]
    text = EXAMPLE.read_text()
    assert old in text, f"test case {case} no longer matches the example"
    path = tmp_path / "lane.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert any(message in p.message and p.field.startswith(field) for p in problems), problems
    assert all(p.line is not None for p in problems), problems
    result = run_check(path)
    assert result.returncode == 2
    assert message in result.stderr and "line " in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_check(tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert "cannot read file" in result.stderr
    assert "Traceback" not in result.stderr
