"""Signing and verifying JSON and events, against the appendices' Cryptographic Test Vectors."""
from __future__ import annotations

import copy

import nacl.signing
import pytest

from pocketserver.rooms.signing import (
    SignatureError, SigningKey, check_content_hash, required_signature_servers, sign_event, sign_json,
    verify_event_signatures, verify_json_signature, verify_signed_by,
)
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS

from roomgraph import BOB, make_room, signing_key_for, verify_keys_for

SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
V1, V5, V8, V12 = (KNOWN_ROOM_VERSIONS[v] for v in ("1", "5", "8", "12"))


@pytest.fixture
def key() -> SigningKey:
    """appendices, "Cryptographic Test Vectors" ("Signing Key"): the fixed seed, key ID ed25519:1."""
    return SigningKey.from_base64_seed(SEED, "1")


def test_key_from_seed(key: SigningKey) -> None:
    """appendices, "Signing Key": the seed is 32 bytes and the key ID is ed25519:1."""
    assert key.key_id == "ed25519:1"
    assert len(key.seed) == 32
    assert SigningKey.from_seed(key.seed, "1").verify_key_base64 == key.verify_key_base64
    assert SigningKey.generate("x").key_id == "ed25519:x"


def test_sign_empty_object(key: SigningKey) -> None:
    """appendices, "JSON Signing": the empty object."""
    assert sign_json({}, "domain", key) == {
        "signatures": {"domain": {"ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}
    }


def test_sign_data_object(key: SigningKey) -> None:
    """appendices, "JSON Signing": the object with data values."""
    assert sign_json({"one": 1, "two": "Two"}, "domain", key) == {
        "one": 1,
        "signatures": {"domain": {"ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}},
        "two": "Two",
    }


def test_sign_json_keeps_unsigned_and_other_signatures(key: SigningKey) -> None:
    """appendices, "Signing Details": unsigned and existing signatures are not covered and are kept."""
    signed = sign_json({"one": 1, "unsigned": {"age_ts": 5}, "signatures": {"other": {"ed25519:9": "x"}}}, "domain", key)
    assert signed["unsigned"] == {"age_ts": 5}
    assert signed["signatures"]["other"] == {"ed25519:9": "x"}
    assert signed["signatures"]["domain"] == sign_json({"one": 1}, "domain", key)["signatures"]["domain"]


def test_verify_json(key: SigningKey) -> None:
    """appendices, "Checking for a Signature": a good signature passes, a changed object fails."""
    signed = sign_json({"one": 1, "two": "Two"}, "domain", key)
    verify_json_signature(signed, "domain", "ed25519:1", key.verify_key)
    verify_json_signature(dict(signed, unsigned={"x": 1}), "domain", "ed25519:1", key.verify_key)
    with pytest.raises(SignatureError):
        verify_json_signature(dict(signed, one=2), "domain", "ed25519:1", key.verify_key)
    with pytest.raises(SignatureError):
        verify_json_signature(signed, "other", "ed25519:1", key.verify_key)
    with pytest.raises(SignatureError):
        verify_json_signature(signed, "domain", "ed25519:2", key.verify_key)
    broken = copy.deepcopy(signed)
    broken["signatures"]["domain"]["ed25519:1"] = "!!!"
    with pytest.raises(SignatureError):
        verify_json_signature(broken, "domain", "ed25519:1", key.verify_key)


def test_verify_signed_by_ignores_unknown_algorithms(key: SigningKey) -> None:
    """appendices, "Checking for a Signature" steps 2-3: unknown algorithms are dropped; none left fails."""
    signed = sign_json({"a": 1}, "domain", key)
    signed["signatures"]["domain"]["curve25519:1"] = "whatever"
    verify_signed_by(signed, "domain", {"ed25519:1": key.verify_key})
    with pytest.raises(SignatureError):
        verify_signed_by(signed, "domain", {})


def test_sign_minimal_event(key: SigningKey) -> None:
    """appendices, "Event Signing": the minimally-sized event."""
    event = {
        "room_id": "!x:domain", "sender": "@a:domain", "origin": "domain", "origin_server_ts": 1000000,
        "signatures": {}, "hashes": {}, "type": "X", "content": {}, "prev_events": [], "auth_events": [],
        "depth": 3, "unsigned": {"age_ts": 1000000},
    }
    assert sign_event(event, "domain", key, V1) == {
        "auth_events": [], "content": {}, "depth": 3,
        "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
        "origin": "domain", "origin_server_ts": 1000000, "prev_events": [], "room_id": "!x:domain",
        "sender": "@a:domain",
        "signatures": {"domain": {"ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"}},
        "type": "X", "unsigned": {"age_ts": 1000000},
    }


def test_sign_event_with_redactable_content(key: SigningKey) -> None:
    """appendices, "Event Signing": the event containing redactable content."""
    event = {
        "content": {"body": "Here is the message content"}, "event_id": "$0:domain", "origin": "domain",
        "origin_server_ts": 1000000, "type": "m.room.message", "room_id": "!r:domain", "sender": "@u:domain",
        "signatures": {}, "unsigned": {"age_ts": 1000000},
    }
    signed = sign_event(event, "domain", key, V1)
    assert signed["hashes"] == {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"}
    assert signed["signatures"] == {
        "domain": {"ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"}
    }
    assert signed["content"] == event["content"] and signed["unsigned"] == event["unsigned"]
    assert event["signatures"] == {}, "the input is not modified"
    assert check_content_hash(signed)
    verify_event_signatures(signed, V1, {"domain": {"ed25519:1": key.verify_key}})


def test_redacted_copy_still_verifies_but_fails_hash(key: SigningKey) -> None:
    """server-server-api, "Validating hashes and signatures": signatures cover the redacted form only."""
    signed = sign_event({"type": "m.room.message", "room_id": "!r:domain", "sender": "@u:domain",
                         "content": {"body": "hi"}, "event_id": "$e:domain"}, "domain", key, V1)
    tampered = dict(signed, content={"body": "bye"})
    verify_event_signatures(tampered, V1, {"domain": {"ed25519:1": key.verify_key}})
    assert not check_content_hash(tampered)
    assert not check_content_hash(dict(signed, hashes={}))
    assert not check_content_hash(dict(signed, hashes={"sha256": "%%"}))
    with pytest.raises(SignatureError):
        verify_event_signatures(dict(signed, type="m.room.topic"), V1, {"domain": {"ed25519:1": key.verify_key}})


def test_required_signature_servers() -> None:
    """server-server-api, "Validating hashes and signatures": sender's server; v1-2 event_id's; v8+ authoriser's."""
    event = {"sender": "@u:a.test", "event_id": "$e:b.test",
             "content": {"membership": "join", "join_authorised_via_users_server": "@x:c.test"}}
    assert required_signature_servers(event, V1) == {"a.test", "b.test"}
    assert required_signature_servers(event, V5) == {"a.test"}
    assert required_signature_servers(event, V8) == {"a.test", "c.test"}


def test_verify_event_from_room_graph() -> None:
    """Events built by the room builder carry valid signatures from their sender's server."""
    room = make_room(members=[BOB])
    event = room["bob_join"]
    verify_event_signatures(event.raw, V12, verify_keys_for("b.test"))
    with pytest.raises(SignatureError):
        verify_event_signatures(event.raw, V12, verify_keys_for("a.test"))
    with pytest.raises(SignatureError):
        verify_event_signatures(event.raw, V12, {})


def test_expired_keys_are_ignored_from_v5() -> None:
    """rooms/v5, "Signing key validity period": a key valid until before origin_server_ts does not count."""
    key = signing_key_for("a.test")
    event = sign_event({"type": "X", "room_id": "!r:a.test", "sender": "@u:a.test", "content": {},
                        "origin_server_ts": 1000, "event_id": "$e:a.test"}, "a.test", key, V5)
    keys = {"a.test": {key.key_id: key.verify_key}}
    expired = {"a.test": {key.key_id: 999}}
    with pytest.raises(SignatureError):
        verify_event_signatures(event, V5, keys, expired)
    verify_event_signatures(event, V5, keys, {"a.test": {key.key_id: 1000}})
    verify_event_signatures(event, V1, keys, expired)   # v1-4 do not enforce validity


def test_wrong_key_fails() -> None:
    """appendices, "Checking for a Signature" step 7."""
    key = signing_key_for("a.test")
    other = nacl.signing.SigningKey(b"\x01" * 32).verify_key
    signed = sign_json({"a": 1}, "a.test", key)
    with pytest.raises(SignatureError):
        verify_json_signature(signed, "a.test", key.key_id, other)
