"""Record integrity: every record is signed and chained, so tampering is detectable.

- The gateway's Ed25519 key is created at first start in ``{state_dir}/gateway.key``
  (mode 0600); the daemon refuses to start if the file is readable by group or others,
  and if it is missing or another key than the one earlier records were signed with
  (``gateway.state``: only a technician's recovery replaces it).
  Its public key is announced in the birth message.
- A record's *body* is its canonical JSON without the ``signature`` and ``replayed``
  fields. ``signature`` is the Ed25519 signature of the body; the record's hash is
  SHA-256 of the body.
- ``prev_hash`` is the hash of the previous record of the same gateway (``seq - 1``),
  so a deleted, reordered or altered record breaks the chain. The first record ever
  carries 64 zeros.

Canonical JSON is RFC 8785 (JCS: keys sorted by UTF-16 code units, numbers as
ECMAScript prints them, minimal string escapes, UTF-8), computed from the parsed JSON,
so a verifier in any language (a regulator's in Java or C#) rebuilds the same bytes with
any JCS library. Records signed so carry ``"canon": "rfc8785"`` inside the signed body.
Records signed before that (no ``canon`` field) used Python's ``json.dumps`` with sorted
keys, whose float formatting is Python's own; they still verify, with that rule.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.errors import GatewayError

GENESIS_HASH: Final = "0" * 64
UNSIGNED_FIELDS: Final = ("signature", "replayed")
#: the record field naming its canonicalization, and the value of RFC 8785's
CANON_FIELD: Final = "canon"
CANON_JCS: Final = "rfc8785"


class KeyFileError(GatewayError):
    """The gateway key file cannot be used safely."""


class NotCanonicalizable(GatewayError, ValueError):
    """A record holds a value JCS cannot represent (NaN, an integer beyond 2**53)."""


def canonical_body(record: dict[str, Any]) -> bytes:
    """The signed bytes of a record (parsed JSON object), by the record's own rule."""
    body = {k: v for k, v in record.items() if k not in UNSIGNED_FIELDS}
    if record.get(CANON_FIELD) == CANON_JCS:
        try:
            return rfc8785.dumps(body)
        except rfc8785.CanonicalizationError as exc:
            raise NotCanonicalizable(f"record cannot be canonicalized: {exc}") from None
    # records signed before RFC 8785 (no canon field): Python's sorted-keys JSON
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_message(message: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``message`` with a ``signature`` over its RFC 8785 form (an ack, say)."""
    body = rfc8785.dumps({k: v for k, v in message.items() if k != "signature"})
    return {**message, "signature": base64.b64encode(key.sign(body)).decode()}


def message_signed_by(message: dict[str, Any], keys: list[Ed25519PublicKey]) -> bool:
    """Whether one of ``keys`` made the message's ``signature`` (see ``sign_message``)."""
    try:
        signature = base64.b64decode(str(message.get("signature") or ""), validate=True)
        body = rfc8785.dumps({k: v for k, v in message.items() if k != "signature"})
    except (ValueError, rfc8785.CanonicalizationError):
        return False
    for key in keys:
        try:
            key.verify(signature, body)
        except InvalidSignature:
            continue
        return True
    return False


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of the record's body: what the next record's ``prev_hash`` holds."""
    return hashlib.sha256(canonical_body(record)).hexdigest()


def load_key(path: Path) -> Ed25519PrivateKey | None:
    """The gateway's signing key from ``path``; None when the file does not exist.

    Raises ``KeyFileError`` for a key readable by group or others, or one that is not a
    usable Ed25519 private key.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path} is readable by others (mode {mode & 0o777:o}): chmod 600 {path}"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a usable private key: {exc}") from None
    except OSError as exc:
        raise KeyFileError(f"{path} cannot be read: {exc.strerror}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return key


def create_key(path: Path) -> Ed25519PrivateKey:
    """Create a new signing key at ``path`` (mode 0600; fails if the file exists)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The gateway's signing key; created (0600) when there is none.

    The daemon calls this only after ``gateway.state`` found that no record was ever
    signed in this state directory: a key that went missing is never replaced silently.
    """
    key = load_key(path)
    return create_key(path) if key is None else key


def public_key_text(key: Ed25519PublicKey) -> str:
    """The public key as base64 of its 32 raw bytes (as announced in the birth message)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse a base64 raw public key."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))


@dataclass(frozen=True, slots=True)
class Sealed:
    """A record ready for the outbox: its stored JSON and its hash."""

    payload: bytes
    hash: str


class Sealer:
    """Signs records with the gateway key and links them into the chain."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = public_key_text(key.public_key())

    def sign(self, message: dict[str, Any]) -> dict[str, Any]:
        """``message`` with this gateway's ``signature`` (a state, say: see sign_message)."""
        return sign_message(message, self._key)

    def sign_json(self, text: str | bytes) -> bytes:
        """A JSON object (a state, say) with this gateway's ``signature``, as published."""
        signed = self.sign({k: v for k, v in json.loads(text).items() if k != "signature"})
        return json.dumps(signed, separators=(",", ":"), ensure_ascii=False).encode()

    def seal(self, record: dict[str, Any], prev_hash: str) -> Sealed:
        """Add ``prev_hash`` and ``signature`` to a record (parsed JSON, no ``replayed``)."""
        record = {**record, CANON_FIELD: CANON_JCS, "prev_hash": prev_hash}
        body = canonical_body(record)
        record["signature"] = base64.b64encode(self._key.sign(body)).decode()
        payload = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        return Sealed(payload, hashlib.sha256(body).hexdigest())


def signature_valid(record: dict[str, Any], key: Ed25519PublicKey) -> bool:
    """Whether the record's signature matches its body under ``key``."""
    try:
        key.verify(base64.b64decode(record.get("signature") or ""), canonical_body(record))
    except (InvalidSignature, ValueError):  # NotCanonicalizable is a ValueError too
        return False
    return True
