"""Canonical JSON is RFC 8785 (JCS), checked against the RFC's own examples, so a
verifier in another language rebuilds the signed bytes; records signed before it (no
``canon`` field, Python's sorted-keys JSON) still verify."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.integrity import (
    GENESIS_HASH,
    NotCanonicalizable,
    Sealer,
    canonical_body,
    public_key_from_text,
    record_hash,
    signature_valid,
)
from gateway.verify import verify

# RFC 8785 §3.2.2: the sample input and its canonical form (as UTF-8)
SAMPLE_INPUT = (
    '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
    ' "literals": [null, true, false]}'
)
SAMPLE_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)
# RFC 8785 appendix B: IEEE 754 doubles (hex) and how JCS writes them
NUMBERS = {
    "0000000000000000": "0",
    "8000000000000000": "0",
    "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324",
    "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308",
    "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992",
    "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22",
    "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23",
    "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000",
    "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7",
    "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332",
    "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333",
    "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343",
    "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


def test_the_rfc_sample_canonicalizes_as_the_rfc_says() -> None:
    record = {"canon": "rfc8785", **json.loads(SAMPLE_INPUT), "signature": "x"}
    expected = '{"canon":"rfc8785",' + SAMPLE_OUTPUT[1:]
    assert canonical_body(record) == expected.encode()


@pytest.mark.parametrize(("bits", "text"), sorted(NUMBERS.items()))
def test_numbers_are_written_as_ecmascript_does(bits: str, text: str) -> None:
    (value,) = struct.unpack(">d", bytes.fromhex(bits))
    body = canonical_body({"canon": "rfc8785", "v": value})
    assert body == ('{"canon":"rfc8785","v":' + text + "}").encode()


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16, after it by code point
    record = {"canon": "rfc8785", "\ufb33": 1, "\U0001f600": 2}
    assert canonical_body(record).decode() == '{"canon":"rfc8785","\U0001f600":2,"\ufb33":1}'


def test_a_sealed_record_verifies_with_plain_jcs(tmp_path: Path) -> None:
    """What a regulator's verifier does: parse, drop signature and replayed, JCS, Ed25519."""
    sealer = Sealer(Ed25519PrivateKey.generate())
    record = {"seq": 1, "value": 37.6, "tiny": 1e-7, "text": "粤A12345", "replayed": False}
    sealed = sealer.seal(record, GENESIS_HASH)
    received = json.loads(sealed.payload)
    assert received["canon"] == "rfc8785"
    body = {k: v for k, v in received.items() if k not in ("signature", "replayed")}
    rebuilt = rfc8785.dumps(body)  # the independent rebuild: the library, not ours
    assert hashlib.sha256(rebuilt).hexdigest() == sealed.hash == record_hash(received)
    key = public_key_from_text(sealer.public_key)
    key.verify(base64.b64decode(received["signature"]), rebuilt)
    assert signature_valid(received, key)
    received["value"] = 37.7
    assert not signature_valid(received, key)


def test_records_signed_before_rfc8785_still_verify() -> None:
    """A record of an older gateway: no canon field, Python's sorted-keys JSON signed."""
    private = Ed25519PrivateKey.generate()
    old = {"seq": 1, "record_id": "r1", "gateway_id": "g", "value": 1e-7, "prev_hash": GENESIS_HASH}
    legacy_body = json.dumps(old, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    old["signature"] = base64.b64encode(private.sign(legacy_body.encode())).decode()
    key = public_key_from_text(Sealer(private).public_key)
    assert signature_valid(old, key)
    assert record_hash(old) == hashlib.sha256(legacy_body.encode()).hexdigest()
    # a chain may cross the upgrade: the first new record links to the old one's hash
    new = json.loads(
        Sealer(private)
        .seal({"seq": 2, "record_id": "r2", "gateway_id": "g"}, record_hash(old))
        .payload
    )
    (report,) = verify([old, new], {}, Sealer(private).public_key)
    assert report.ok, report


def test_a_value_jcs_cannot_hold_is_refused_not_signed_wrongly() -> None:
    with pytest.raises(NotCanonicalizable):
        canonical_body({"canon": "rfc8785", "n": 2**60})
    assert not signature_valid(
        {"canon": "rfc8785", "n": 2**60, "signature": ""},
        public_key_from_text(Sealer(Ed25519PrivateKey.generate()).public_key),
    )
