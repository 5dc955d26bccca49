"""Lockouts: a device whose certificate has expired, or whose required daily check is
missing, failed or stale, must not test vehicles. The reasons are computed from the
config (certificates, the policy) and the check log, so a lock clears as soon as its
cause does (a passing check, a renewed certificate in the config)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gateway.config import LaneConfig


@dataclass(frozen=True, slots=True)
class CheckEntry:
    """One check result as logged."""

    device: str
    kind: str
    passed: bool
    ts: float
    record_id: str
    technician: str | None = None
    #: what the check measured (name, value, unit, verdict), as in its record
    measurements: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class CheckLog:
    """Append-only, fsync'd JSON-lines log of checks in the state directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._latest: dict[tuple[str, str], CheckEntry] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = CheckEntry(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a torn last line after a power cut
                self._latest[(entry.device, entry.kind)] = entry

    def append(self, entry: CheckEntry) -> None:
        """Log a check durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(_as_dict(entry)) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._latest[(entry.device, entry.kind)] = entry

    def latest(self, device: str, kind: str) -> CheckEntry | None:
        """The last check of this kind on this device."""
        return self._latest.get((device, kind))


#: the five-point check: five runs (one cylinder each) make one check
FIVE_POINT, FIVE_POINTS = "five_point", 5
#: the five points must be done within this time of each other to count as one check
FIVE_POINT_WINDOW_S = 2 * 3600


def log_five_point(log: CheckLog, entry: CheckEntry, point: int) -> None:
    """Log one point as ``five_point:N``; a failed point fails the five-point check at once,
    the last of five passed points (all within the window) passes it."""
    log.append(dataclasses.replace(entry, kind=f"{FIVE_POINT}:{point}"))
    if not entry.passed:
        log.append(entry)
        return
    points = [log.latest(entry.device, f"{FIVE_POINT}:{n}") for n in range(1, FIVE_POINTS + 1)]
    if all(p is not None and p.passed and entry.ts - p.ts <= FIVE_POINT_WINDOW_S for p in points):
        log.append(entry)


class RegulatorLocks:
    """Locks a regulator's platform imposes, as the station server passes them on (the
    ``regulator_lock`` command): per source (e.g. ``environmental``), device -> reasons.
    Kept in a JSON file in the state directory (written atomically), so a restarted
    gateway stays locked until the station lifts the lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._locks: dict[str, dict[str, list[str]]] = {}
        if path.exists():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                self._locks = {str(k): {str(d): [str(r) for r in v] for d, v in locks.items()}
                               for k, locks in loaded.items()}  # fmt: skip
            except (ValueError, AttributeError, TypeError):
                self._locks = {}  # unreadable: the station sends its locks again

    def replace(self, source: str, locks: dict[str, list[str]]) -> None:
        """Set a source's locks (an empty dict lifts them), durably."""
        self._locks[source] = {
            device: list(reasons) for device, reasons in locks.items() if reasons
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(self._locks, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def reasons(self) -> dict[str, list[str]]:
        """device -> reasons, every source's, each prefixed with its source."""
        out: dict[str, list[str]] = {}
        for source, locks in sorted(self._locks.items()):
            for device, reasons in locks.items():
                out.setdefault(device, []).extend(f"{source}: {r}" for r in reasons)
        return out


def _as_dict(entry: CheckEntry) -> dict[str, Any]:
    return {f: getattr(entry, f) for f in entry.__slots__}


def lockout_reasons(
    config: LaneConfig,
    log: CheckLog,
    now: float | None = None,
    today: date | None = None,
    regulator: dict[str, list[str]] | None = None,
) -> dict[str, list[str]]:
    """Why each locked device is locked (devices without reasons are not listed);
    ``regulator``: the locks the station passed on (``RegulatorLocks.reasons``)."""
    now = time.time() if now is None else now
    today = today or date.today()
    policy = config.lockouts
    validity_s = policy.check_validity_h * 3600
    locked: dict[str, list[str]] = {}
    for device in config.devices:
        reasons = []
        cert = device.identity.certificate
        if policy.certificate_expiry and cert is not None and cert.expires < today:
            reasons.append(f"certificate {cert.number} expired on {cert.expires.isoformat()}")
        for kind in policy.daily_checks.get(device.device_class, []):
            entry = log.latest(device.id, kind)
            if entry is None:
                reasons.append(f"daily {kind} check missing")
            elif not entry.passed:
                reasons.append(f"{kind} check failed at {_when(entry.ts)}")
            elif now - entry.ts > validity_s:
                reasons.append(f"{kind} check expired (last passed {_when(entry.ts)})")
        reasons += (regulator or {}).get(device.id, [])
        if reasons:
            locked[device.id] = reasons
    return locked


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
