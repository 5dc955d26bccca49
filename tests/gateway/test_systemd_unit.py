"""The service unit as systemd reads it: `systemd-analyze verify` accepts it (with the
installed executable's path, as the README's install steps put it) and its offline
security exposure stays low. systemd-analyze comes with Debian's systemd package
(scripts/test installs it when missing)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

UNIT = Path(__file__).parents[2] / "systemd" / "lanegw.service"
STATION_UNIT = UNIT.with_name("lanegw-station.service")
INSTALLED_AT = "/opt/lanegw/bin/lanegw"  # the README's install location


def installed_unit(tmp_path: Path, unit: Path = UNIT) -> Path:
    """The unit with its executable pointing at this checkout's lanegw."""
    lanegw = Path(sys.executable).parent / "lanegw"
    assert lanegw.exists(), "the lanegw console script is installed in the venv"
    path = tmp_path / unit.name
    path.write_text(unit.read_text().replace(INSTALLED_AT, str(lanegw)))
    return path


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze missing: apt-get install systemd (scripts/test does)"
    return subprocess.run([tool, *args], capture_output=True, text=True, check=False)


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert INSTALLED_AT in UNIT.read_text()
    result = analyze("verify", str(installed_unit(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lanegw.service" not in result.stderr  # no warning about our unit either


def test_the_unit_is_a_hardened_notify_service_with_a_watchdog(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "StateDirectory=lanegw", "User=lanegw",
                 "SupplementaryGroups=dialout", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "RestrictAddressFamilies=", "CapabilityBoundingSet=",
                 "RestartPreventExitStatus=2"):  # fmt: skip
        assert re.search(rf"^{re.escape(line)}", text, re.MULTILINE), line
    result = analyze("security", "--offline=true", str(installed_unit(tmp_path)))
    match = re.search(r"Overall exposure level for lanegw\.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 5.0, result.stdout  # "OK" on systemd's scale of 0-10


def test_the_station_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    assert INSTALLED_AT in STATION_UNIT.read_text()
    unit = installed_unit(tmp_path, STATION_UNIT)
    verify = analyze("verify", str(unit))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "lanegw-station.service" not in verify.stderr
    result = analyze("security", "--offline=true", str(unit))
    match = re.search(
        r"Overall exposure level for lanegw-station\.service: ([\d.]+)", result.stdout
    )
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 3.0, result.stdout  # no devices needed: tighter than a lane
