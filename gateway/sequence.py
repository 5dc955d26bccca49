"""The high-water record: the last sequence number and chain hash this gateway produced.

The outbox (``outbox.sqlite3``) numbers and chains records, but a damaged, truncated,
deleted or rolled-back outbox forgets how far it got: a deleted ``-wal`` after a SIGKILL
takes the last committed records with it, and the next record would reuse their seqs.
So every commit also writes this small file *outside* the outbox,
``{state_dir}/sequence.json``::

    {"format": 1, "last_seq": 42, "last_hash": "…", "waiting_from": 40,
     "public_key": "…", "updated_at": "2026-12-03T14:00:00+00:00"}

``waiting_from`` is the oldest record still in the outbox at that commit (the records
that could be lost with the outbox start there; ``null``: none was waiting);
``public_key`` the key the records are signed with. The file is replaced atomically
(written, fsync'd, renamed) after the outbox's transaction committed: a crash between
the two leaves it one record *behind* the outbox, which the start-up check accepts; it
is never ahead of what was committed. It costs one fsync per record (about 4 ms on the
test machine's disk), on the outbox's thread. See gateway.state.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from gateway.errors import GatewayError

SEQUENCE_FILE: Final = "sequence.json"
FORMAT: Final = 1


class SequenceFileError(GatewayError):
    """``sequence.json`` exists but cannot be read."""


@dataclass(frozen=True, slots=True)
class HighWater:
    """How far this gateway's record chain got."""

    last_seq: int
    last_hash: str
    waiting_from: int | None = None
    public_key: str | None = None
    updated_at: str = ""


def read_high_water(path: Path) -> HighWater | None:
    """The record in ``path``; None when there is none. ``SequenceFileError`` if damaged."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SequenceFileError(f"{path} cannot be read: {exc.strerror}") from None
    try:
        data: Any = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a format {FORMAT} sequence record")
        waiting = data.get("waiting_from")
        key = data.get("public_key")
        record = HighWater(
            last_seq=_int(data["last_seq"]),
            last_hash=str(data["last_hash"]),
            waiting_from=None if waiting is None else _int(waiting),
            public_key=None if key is None else str(key),
            updated_at=str(data.get("updated_at", "")),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SequenceFileError(f"{path} is damaged: {exc}") from None
    if record.last_seq < 0 or len(record.last_hash) != 64:
        raise SequenceFileError(f"{path} is damaged: impossible values")
    return record


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not an integer")
    return value


def write_high_water(path: Path, record: HighWater) -> None:
    """Replace ``path`` atomically and durably (raises ``OSError`` when the disk refuses)."""
    stamped = HighWater(
        record.last_seq,
        record.last_hash,
        record.waiting_from,
        record.public_key,
        datetime.now(UTC).isoformat(timespec="milliseconds"),
    )
    data = json.dumps({"format": FORMAT, **asdict(stamped)}, indent=1).encode() + b"\n"
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # no fsync of the directory: a rename lost in a power cut leaves the previous record,
    # which is behind the outbox, and that is accepted (it costs an fsync per record)
