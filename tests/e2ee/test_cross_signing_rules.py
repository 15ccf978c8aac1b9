"""Cross-signing key checks and who may see which signatures; the m.room.encryption guard.

Spec: client-server-api, "Cross-signing" ("Key and signature security"), "CrossSigningKey",
"m.room.encryption".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from pocketserver.e2ee import InvalidSignature, check_encryption_state_change, verify_signed_json
from pocketserver.e2ee.cross_signing import check_cross_signing_key, cross_signing_keys_for, merge_signatures
from pocketserver.errors import BadJson, Forbidden, InvalidParam
from pocketserver.rooms.signing import SigningKey, sign_json
from pocketserver.storage.e2ee import Signature

ALICE, BOB, CAROL = "@alice:test.local", "@bob:test.local", "@carol:test.local"


def master(user_id: str, public: str) -> dict[str, Any]:
    return {"user_id": user_id, "usage": ["master"], "keys": {f"ed25519:{public}": public}}


BOB_KEYS = {
    "master": ("BMK", master(BOB, "BMK")),
    "self_signing": ("BSSK", {"user_id": BOB, "usage": ["self_signing"], "keys": {"ed25519:BSSK": "BSSK"}}),
    "user_signing": ("BUSK", {"user_id": BOB, "usage": ["user_signing"], "keys": {"ed25519:BUSK": "BUSK"}}),
}
SIGNATURES = [
    Signature(BOB, "ed25519:BOBDEVICE", BOB, "BMK", "by-bobs-device"),
    Signature(ALICE, "ed25519:AUSK", BOB, "BMK", "by-alices-usk"),
    Signature(CAROL, "ed25519:CUSK", BOB, "BMK", "by-carols-usk"),
]


def test_owner_sees_everything_of_their_own() -> None:
    shown = cross_signing_keys_for(BOB, BOB, BOB_KEYS, SIGNATURES)
    assert set(shown) == {"master_keys", "self_signing_keys", "user_signing_keys"}
    assert shown["master_keys"]["signatures"] == {BOB: {"ed25519:BOBDEVICE": "by-bobs-device"}}


def test_others_see_no_user_signing_key_and_only_their_own_signatures() -> None:
    shown = cross_signing_keys_for(ALICE, BOB, BOB_KEYS, SIGNATURES)
    assert set(shown) == {"master_keys", "self_signing_keys"}
    assert shown["master_keys"]["signatures"] == {BOB: {"ed25519:BOBDEVICE": "by-bobs-device"},
                                                  ALICE: {"ed25519:AUSK": "by-alices-usk"}}


def test_signatures_of_an_old_master_key_are_not_shown() -> None:
    stale = [Signature(BOB, "ed25519:BOBDEVICE", BOB, "OLD", "old")]
    assert "signatures" not in cross_signing_keys_for(ALICE, BOB, BOB_KEYS, stale)["master_keys"]


def test_merge_signatures_does_not_modify_the_stored_key() -> None:
    stored = {"keys": {}, "signatures": {BOB: {"ed25519:X": "x"}}}
    merged = merge_signatures(stored, [Signature(BOB, "ed25519:Y", BOB, "D", "y")])
    assert merged["signatures"] == {BOB: {"ed25519:X": "x", "ed25519:Y": "y"}}
    assert stored["signatures"] == {BOB: {"ed25519:X": "x"}}


def test_check_cross_signing_key() -> None:
    assert check_cross_signing_key(master(ALICE, "PUB"), ALICE, "master") == "PUB"
    bad_cases = [("x", BadJson), ({**master(ALICE, "PUB"), "user_id": BOB}, InvalidParam),
                 ({**master(ALICE, "PUB"), "usage": ["self_signing"]}, InvalidParam),
                 ({**master(ALICE, "PUB"), "keys": {"ed25519:PUB": "OTHER"}}, InvalidParam),
                 ({**master(ALICE, "PUB"), "keys": {"curve25519:PUB": "PUB"}}, InvalidParam),
                 ({**master(ALICE, "PUB"), "keys": {"ed25519:A": "A", "ed25519:B": "B"}}, InvalidParam),
                 ({**master(ALICE, "PUB"), "signatures": []}, BadJson)]
    for key, error in bad_cases:
        with pytest.raises(error):
            check_cross_signing_key(key, ALICE, "master")


def test_verify_signed_json() -> None:
    key = SigningKey.from_seed(bytes(32), "DEVICE")
    signed = sign_json({"hello": "world"}, ALICE, key)
    verify_signed_json(signed, ALICE, "ed25519:DEVICE", key.verify_key_base64)
    with pytest.raises(InvalidSignature):
        verify_signed_json({**signed, "hello": "moon"}, ALICE, "ed25519:DEVICE", key.verify_key_base64)
    with pytest.raises(InvalidSignature):
        verify_signed_json(signed, BOB, "ed25519:DEVICE", key.verify_key_base64)
    for bad_key in ("not base64!", "AAAA", None):
        with pytest.raises(InvalidSignature):
            verify_signed_json(signed, ALICE, "ed25519:DEVICE", bad_key)


@dataclass
class FakeEvent:
    content: dict[str, Any] = field(default_factory=dict)


def test_encryption_cannot_be_removed_or_changed() -> None:
    state = {("m.room.encryption", ""): FakeEvent({"algorithm": "m.megolm.v1.aes-sha2"})}
    check_encryption_state_change(state, "m.room.encryption", "", {"algorithm": "m.megolm.v1.aes-sha2",
                                                                   "rotation_period_msgs": 10})
    check_encryption_state_change({}, "m.room.encryption", "", {})           # nothing set yet
    check_encryption_state_change(state, "m.room.name", "", {})               # other types untouched
    check_encryption_state_change(state, "m.room.encryption", "other", {})    # another state key
    for content in ({}, {"algorithm": "m.none"}, {"algorithm": None}):
        with pytest.raises(Forbidden):
            check_encryption_state_change(state, "m.room.encryption", "", content)
