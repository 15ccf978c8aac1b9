"""Unpadded base64, content and reference hashes, and hash-derived event and room IDs."""
from __future__ import annotations

import base64
import hashlib

import pytest

from pocketserver.rooms.canonical import encode_canonical_json
from pocketserver.rooms.hashing import (
    compute_content_hash, compute_event_id, compute_reference_hash, compute_room_id, decode_base64,
    encode_unpadded_base64, encode_url_safe_unpadded_base64,
)
from pocketserver.rooms.redaction import redact
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS

V1, V3, V4, V11, V12 = (KNOWN_ROOM_VERSIONS[v] for v in ("1", "3", "4", "11", "12"))


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [(b"", ""), (b"f", "Zg"), (b"fo", "Zm8"), (b"foo", "Zm9v"), (b"foob", "Zm9vYg"), (b"fooba", "Zm9vYmE"),
     (b"foobar", "Zm9vYmFy")],
)
def test_unpadded_base64_examples(raw: bytes, encoded: str) -> None:
    """appendices, "Unpadded Base64" examples, both ways."""
    assert encode_unpadded_base64(raw) == encoded
    assert decode_base64(encoded) == raw


def test_decode_accepts_padding_and_url_safe() -> None:
    """appendices, "Unpadded Base64": decoders SHOULD accept padded input; URL-safe uses - and _."""
    data = bytes([0xFB, 0xFF, 0xBF])
    assert encode_unpadded_base64(data) == "+/+/"
    assert encode_url_safe_unpadded_base64(data) == "-_-_"
    assert decode_base64("Zm8=") == b"fo"
    assert decode_base64("-_-_") == data


@pytest.mark.parametrize("bad", ["Z", "Zm9v!", "Zm 9"])
def test_decode_rejects_garbage(bad: str) -> None:
    """appendices, "Binary data": a value that is not base64 may be rejected."""
    with pytest.raises(ValueError):
        decode_base64(bad)


def test_content_hash_of_test_vector_event() -> None:
    """appendices, "Cryptographic Test Vectors" ("Event Signing"): hashes.sha256 of the minimal event."""
    event = {
        "room_id": "!x:domain", "sender": "@a:domain", "origin": "domain", "origin_server_ts": 1000000,
        "signatures": {}, "hashes": {}, "type": "X", "content": {}, "prev_events": [], "auth_events": [],
        "depth": 3, "unsigned": {"age_ts": 1000000},
    }
    assert encode_unpadded_base64(compute_content_hash(event)) == "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"


def test_content_hash_ignores_unsigned_signatures_hashes() -> None:
    """server-server-api, "Calculating the content hash for an event"."""
    event = {"type": "X", "content": {"a": 1}}
    noisy = dict(event, unsigned={"age": 5}, signatures={"x": {}}, hashes={"sha256": "abc"})
    assert compute_content_hash(event) == compute_content_hash(noisy)
    assert compute_content_hash(event) == hashlib.sha256(b'{"content":{"a":1},"type":"X"}').digest()


def _event() -> dict:
    return {
        "room_id": "!r:domain", "sender": "@u:domain", "type": "m.room.message", "origin_server_ts": 5,
        "content": {"body": "secret"}, "prev_events": [], "auth_events": [], "depth": 1,
        "hashes": {"sha256": "x"}, "signatures": {"domain": {"ed25519:1": "sig"}}, "unsigned": {"age": 1},
    }


def test_reference_hash_covers_redacted_form_only() -> None:
    """server-server-api, "Calculating the reference hash for an event": redact, drop signatures and unsigned."""
    event = _event()
    expected_input = redact(event, V11)
    del expected_input["signatures"]
    assert compute_reference_hash(event, V11) == hashlib.sha256(encode_canonical_json(expected_input)).digest()
    changed = dict(event, content={"body": "other"}, signatures={}, unsigned={})
    assert compute_reference_hash(changed, V11) == compute_reference_hash(event, V11)
    assert compute_reference_hash(dict(event, depth=2), V11) != compute_reference_hash(event, V11)


def test_event_id_formats_per_version() -> None:
    """rooms/v3 "Event IDs" (base64) and rooms/v4 "Event IDs" (URL-safe base64)."""
    event = _event()
    digest = compute_reference_hash(event, V4)
    assert compute_event_id(event, V3) == "$" + base64.b64encode(compute_reference_hash(event, V3)).decode().rstrip("=")
    assert compute_event_id(event, V4) == "$" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert len(compute_event_id(event, V4)) == 44
    with pytest.raises(ValueError):
        compute_event_id(event, V1)


def test_room_id_from_create_event() -> None:
    """appendices, "Room IDs": the v12 room ID is the create event ID with `!` for `$`."""
    create = {"type": "m.room.create", "state_key": "", "sender": "@u:domain", "content": {"room_version": "12"},
              "origin_server_ts": 1, "depth": 1, "prev_events": [], "auth_events": [], "hashes": {"sha256": "x"},
              "signatures": {}}
    assert compute_room_id(create, V12) == "!" + compute_event_id(create, V12)[1:]
    with pytest.raises(ValueError):
        compute_room_id(create, V11)
