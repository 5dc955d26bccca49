"""The local evidence archive: raw data behind records, content-addressed by SHA-256.

Records carry only the hash (and, for curves, the regulator's upload string); the full
raw data (brake curves at the device rate, per-second emission process data, raw frames)
stay here, in ``{state_dir}/evidence/ab/abcdef....json``, written atomically and fsync'd
before the record that references them is produced. A document the disk refuses (full)
is kept in memory; the record producer writes it (``flush``) before it commits a record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import structlog

from gateway.records import Evidence

log = structlog.get_logger("lanegw.evidence")


class EvidenceStore:
    """Write-once store of evidence documents."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending: dict[str, bytes] = {}  # documents the disk refused, by hash

    def put(self, kind: str, document: dict[str, Any], **meta: Any) -> Evidence:
        """Store ``document`` (JSON-able) and return the ``Evidence`` reference to it."""
        data = json.dumps({"kind": kind, **document}, separators=(",", ":"), sort_keys=True)
        raw = data.encode()
        digest = hashlib.sha256(raw).hexdigest()
        try:
            self._write(digest, raw)
        except OSError as exc:  # disk full: kept until ``flush`` can write it
            log.error("evidence_not_stored_kept", sha256=digest, error=str(exc))
            self._pending[digest] = raw
        return Evidence(kind=kind, sha256=digest, **meta)

    def flush(self) -> None:
        """Write the documents the disk refused; raises ``OSError`` while it still does."""
        for digest, raw in list(self._pending.items()):
            self._write(digest, raw)
            del self._pending[digest]

    def _write(self, digest: str, raw: bytes) -> None:
        path = self.path_of(digest)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def path_of(self, digest: str) -> Path:
        """Where the document with this hash lives."""
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> dict[str, Any]:
        """Read a document back, checking its hash."""
        raw = self._pending.get(digest) or self.path_of(digest).read_bytes()
        if hashlib.sha256(raw).hexdigest() != digest:
            raise ValueError(f"evidence {digest} does not match its hash")
        document: dict[str, Any] = json.loads(raw)
        return document
