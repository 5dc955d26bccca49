"""Is the gateway's state directory consistent? Checked at every start, and by
``lanegw state check``.

The state that makes records trustworthy is three things: the outbox
(``outbox.sqlite3``: the records waiting, the last seq and chain hash), the high-water
record (``sequence.json``, ``gateway.sequence``: how far the chain got, written outside
the outbox at each commit) and the signing key (``gateway.key``). Evidence
(``evidence/``) shows that records were made. If one of them is lost or replaced, a
daemon that starts anyway reuses sequence numbers, restarts the chain, or signs with a
key the station never saw, and undelivered records vanish without a word. So the daemon
refuses to start (exit 2, a message naming the file and what to do) when:

- ``outbox_damaged``: the outbox is not a sound SQLite database (truncated, overwritten);
- ``outbox_missing``: the outbox is missing or empty while ``sequence.json``, the key or
  evidence show that this gateway has produced records;
- ``sequence_behind``: the outbox's last seq is lower than the last one produced (a
  deleted ``-wal`` after a crash, an outbox restored from an old backup);
- ``outbox_replaced``: the outbox is at the same seq but on another chain;
- ``sequence_damaged``: ``sequence.json`` cannot be read;
- ``key_missing``: the key is gone while records were signed; ``key_mismatch``: it is
  not the key they were signed with; ``key_unusable``: it cannot be loaded;
  ``key_exposed``: readable by others, ``key_unreadable``: not readable by this user
  (fixed with chmod or chown, not by a recovery).

A technician recovers explicitly (``gateway.state_recovery``, ``lanegw state recover``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import GatewayError
from gateway.integrity import (
    GENESIS_HASH,
    KeyFileError,
    load_key,
    public_key_from_text,
    public_key_text,
    signature_valid,
)
from gateway.outbox_store import OutboxDamaged, OutboxStore
from gateway.sequence import SEQUENCE_FILE, HighWater, SequenceFileError, read_high_water

OUTBOX_FILE: Final = "outbox.sqlite3"
KEY_FILE: Final = "gateway.key"
EVIDENCE_DIR: Final = "evidence"
LOCK_FILE: Final = "lanegw.lock"
#: problems ``lanegw state recover`` cannot repair (a chmod or chown does)
NOT_RECOVERABLE: Final = frozenset({"key_exposed", "key_unreadable"})

RECOVER = "`lanegw state recover --accept-loss --technician NAME -c CONFIG`"


class StateInconsistent(GatewayError):
    """The state directory is not consistent: the daemon must not start on it."""

    def __init__(self, problems: list[Problem]) -> None:
        lines = [f"{p.file}: {p.message}. {p.remedy}" for p in problems]
        super().__init__(
            "the gateway's state is inconsistent; refusing to start:\n  - "
            + "\n  - ".join(lines)
            + "\nSee `lanegw state check -c CONFIG` and docs/security.md."
        )
        self.problems = problems


class StateBusy(GatewayError):
    """Another process (a running daemon, a recovery) holds the state directory."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One inconsistency: its code, the file concerned, what is wrong, what to do."""

    code: str
    file: Path
    message: str
    remedy: str


@dataclass(slots=True)
class OutboxFacts:
    """What the outbox says (an absent or 0-byte file: nothing, and ``present`` False)."""

    present: bool
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    depth: int = 0
    public_key: str | None = None
    newest: bytes | None = None
    damaged: str | None = None

    @classmethod
    def of(cls, store: OutboxStore) -> OutboxFacts:
        """The facts of an open outbox."""
        return cls(
            True,
            store.last_seq,
            store.last_hash,
            store.depth,
            store.public_key,
            store.newest_payload(),
        )


@dataclass(slots=True)
class StateReport:
    """What was found in a state directory, and what is wrong with it."""

    state_dir: Path
    outbox: OutboxFacts
    high_water: HighWater | None
    high_water_damaged: str | None
    key_present: bool
    public_key: str | None
    evidence_present: bool
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the daemon may start on this state."""
        return not self.problems

    @property
    def codes(self) -> list[str]:
        """The problems' codes."""
        return [p.code for p in self.problems]

    def codes_of(self, codes: set[str] | frozenset[str]) -> set[str]:
        """Which of ``codes`` were found."""
        return set(codes) & set(self.codes)

    def path(self, name: str) -> Path:
        """A file of the state directory."""
        return self.state_dir / name


def outbox_present(path: Path) -> bool:
    """Whether the outbox file exists with content (a 0-byte file counts as absent)."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def has_evidence(state_dir: Path) -> bool:
    """Whether any evidence document was ever written (stops at the first one)."""
    root = state_dir / EVIDENCE_DIR
    return root.is_dir() and next(root.rglob("*.json"), None) is not None


def assess(
    state_dir: Path, store: OutboxStore | None = None, *, open_outbox: bool = True
) -> StateReport:
    """Look at a state directory and list its problems; changes nothing in it.

    ``store``: the outbox, already open (the daemon's). Without it the outbox is opened
    here when ``open_outbox`` and the file has content (and closed again); when not
    opened, only its presence is judged.
    """
    outbox_path = state_dir / OUTBOX_FILE
    if store is not None:
        outbox = OutboxFacts.of(store)
    elif not outbox_present(outbox_path):
        outbox = OutboxFacts(False)
    elif open_outbox:
        outbox = _read_outbox(outbox_path)
    else:
        outbox = OutboxFacts(True, last_seq=-1)  # present, not read: seq rules skipped
    high_water, hw_damaged = _read_sequence(state_dir / SEQUENCE_FILE)
    key, key_problem = _read_key(state_dir / KEY_FILE)
    report = StateReport(
        state_dir,
        outbox,
        high_water,
        hw_damaged,
        key_present=(state_dir / KEY_FILE).exists(),
        public_key=None if key is None else public_key_text(key.public_key()),
        evidence_present=has_evidence(state_dir),
    )
    if key_problem is not None:
        report.problems.append(key_problem)
    report.problems[:0] = _outbox_problems(report)
    report.problems += _key_problems(report, key)
    return report


def _read_outbox(path: Path) -> OutboxFacts:
    try:
        store = OutboxStore(path, max_bytes=1 << 62)
    except OutboxDamaged as exc:
        return OutboxFacts(True, damaged=exc.detail)
    try:
        return OutboxFacts.of(store)
    finally:
        store.close()


def _read_sequence(path: Path) -> tuple[HighWater | None, str | None]:
    try:
        return read_high_water(path), None
    except SequenceFileError as exc:
        return None, str(exc)


def _read_key(path: Path) -> tuple[Ed25519PrivateKey | None, Problem | None]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None, None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        message = f"the signing key is readable by others (mode {mode & 0o777:o})"
        return None, Problem("key_exposed", path, message, f"Run `chmod 600 {path}`.")
    try:
        with path.open("rb"):
            pass
    except PermissionError:
        message = "the signing key cannot be read by this user"
        remedy = f"Run as the gateway's user (or root), or give it back: `chown lanegw {path}`."
        return None, Problem("key_unreadable", path, message, remedy)
    try:
        return load_key(path), None
    except KeyFileError as exc:
        remedy = f"Restore the key from a backup, or run {RECOVER} (a new key is made)."
        return None, Problem("key_unusable", path, str(exc), remedy)


def _outbox_problems(report: StateReport) -> list[Problem]:
    outbox, hw = report.outbox, report.high_water
    path = report.path(OUTBOX_FILE)
    problems: list[Problem] = []
    if report.high_water_damaged is not None:
        problems.append(
            Problem(
                "sequence_damaged",
                report.path(SEQUENCE_FILE),
                f"the high-water record cannot be read ({report.high_water_damaged})",
                f"Restore it from a backup, or run {RECOVER}.",
            )
        )
    if outbox.damaged is not None:
        message = f"the outbox is damaged ({outbox.damaged}); the records waiting in it are lost"
        problems.append(Problem("outbox_damaged", path, message, _restore(hw)))
        return problems
    if outbox.last_seq < 0:  # present, not read
        return problems
    if outbox.last_seq == 0:
        return problems + _empty_outbox(report, path)
    if hw is None:
        return problems
    if hw.last_seq > outbox.last_seq:
        message = (
            f"the outbox's last seq is {outbox.last_seq}, but this gateway already produced"
            f" seq {hw.last_seq} ({SEQUENCE_FILE}): records {outbox.last_seq + 1}..{hw.last_seq}"
            " were committed and are gone (a deleted -wal, an outbox restored from an old"
            " backup), and new records would reuse their numbers"
        )
        problems.append(Problem("sequence_behind", path, message, _restore(hw)))
    elif hw.last_seq == outbox.last_seq and hw.last_hash != outbox.last_hash:
        message = (
            f"the outbox is at seq {outbox.last_seq} but on another chain than this"
            f" gateway's ({SEQUENCE_FILE} holds another hash): it is not this gateway's outbox"
        )
        problems.append(Problem("outbox_replaced", path, message, _restore(hw)))
    return problems


def _restore(hw: HighWater | None) -> str:
    which = f" (one that holds seq {hw.last_seq})" if hw and hw.last_seq else ""
    return f"Restore the outbox from a backup{which}, or run {RECOVER}."


def _empty_outbox(report: StateReport, path: Path) -> list[Problem]:
    """An outbox that is missing, 0 bytes, or holds no sequence: fine on a fresh state."""
    hw, what = report.high_water, "missing" if not report.outbox.present else "empty"
    if hw is not None:
        if hw.last_seq == 0:
            return []
        message = (
            f"the outbox is {what}, but this gateway has produced records up to seq"
            f" {hw.last_seq} ({SEQUENCE_FILE}); those not yet delivered are lost, and new"
            " records would reuse their numbers"
        )
        return [Problem("outbox_missing", path, message, _restore(hw))]
    if report.high_water_damaged is not None:
        return [Problem("outbox_missing", path, f"the outbox is {what}", _restore(None))]
    signs = [text for text, there in (
        (f"the signing key ({KEY_FILE})", report.key_present),
        (f"the evidence archive ({EVIDENCE_DIR}/)", report.evidence_present),
    ) if there]  # fmt: skip
    if not signs:
        return []  # a fresh state directory: the first start
    message = (
        f"the outbox is {what} and {SEQUENCE_FILE} is missing, but {' and '.join(signs)}"
        f" {'show' if len(signs) > 1 else 'shows'} that this gateway has produced records"
        " before (how many is unknown)"
    )
    return [Problem("outbox_missing", path, message, _restore(None))]


def _key_problems(report: StateReport, key: Ed25519PrivateKey | None) -> list[Problem]:
    if any(p.code.startswith("key_") for p in report.problems):
        return []
    path, hw, outbox = report.path(KEY_FILE), report.high_water, report.outbox
    expected = {k for k in (hw.public_key if hw else None, outbox.public_key) if k}
    if key is None:
        produced = max(outbox.last_seq, hw.last_seq if hw else 0)
        if not expected and produced <= 0:
            return []  # created at this start
        known = f" ({', '.join(sorted(expected))})" if expected else ""
        message = (
            f"the signing key is missing, but records up to seq {produced} were signed"
            f" with it{known}; a new key would sign records the station cannot verify"
        )
        remedy = f"Restore gateway.key from a backup, or run {RECOVER} (a new key is made)."
        return [Problem("key_missing", path, message, remedy)]
    public = report.public_key
    wrong = sorted(k for k in expected if k != public)
    if not wrong and not expected and outbox.newest is not None:
        wrong = [] if _newest_verifies(outbox.newest, key) else ["the newest waiting record's"]
    if not wrong:
        return []
    message = (
        f"the signing key (public {public}) is not the one the records were signed with"
        f" ({', '.join(wrong)})"
    )
    remedy = (
        "Put back this gateway's own key (from its backup), or run"
        f" {RECOVER} (the key found is set aside, a new one is made)."
    )
    return [Problem("key_mismatch", path, message, remedy)]


def _newest_verifies(payload: bytes, key: Ed25519PrivateKey) -> bool:
    try:
        record = json.loads(payload)
    except ValueError:
        return False
    public = public_key_from_text(public_key_text(key.public_key()))
    return isinstance(record, dict) and signature_valid(record, public)


class StateLock:
    """An exclusive ``flock`` on ``{state_dir}/lanegw.lock``: one daemon (or recovery)
    per state directory. The kernel drops it when the process dies."""

    def __init__(self, state_dir: Path, owner: str) -> None:
        self.path = state_dir / LOCK_FILE
        self._owner = owner
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``StateBusy`` naming who holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StateBusy(
                f"{self.path.parent} is in use by {holder}: stop it first (systemctl stop lanegw)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{self._owner} (pid {os.getpid()})\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def held_elsewhere(self) -> str | None:
        """Who holds the lock, when another process does (None: nobody)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.read(fd, 200).decode(errors="replace").strip() or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
