#!/usr/bin/env python3
"""Write `tools/parity_keys.json`: the signed E2EE keys `synapse_parity.py` uploads to both servers.

The parity tool has only the standard library, so it cannot sign. Its user alice logs in on both
servers as the same device (`PARITYDEV`), so one set of keys, signed here once from fixed seeds,
serves both: device keys, two one-time keys, a fallback key, the three cross-signing keys, the
self-signing key's signature of the device, and bob's cross-signing keys with his signature of
alice's master key. Run with the project's venv after changing a seed:

    .venv/bin/python tools/parity_keys.py
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pocketserver.rooms.hashing import encode_unpadded_base64
from pocketserver.rooms.signing import SigningKey, sign_json

USER_ID = "@alice:localhost"
BOB_ID = "@bob:localhost"
DEVICE_ID = "PARITYDEV"
OUT = Path(__file__).with_name("parity_keys.json")


def _key(name: str, key_id: str) -> SigningKey:
    """An ed25519 key from a fixed seed, so the file is the same at every run."""
    return SigningKey(key_id, SigningKey.from_seed(hashlib.sha256(name.encode()).digest(), "x").nacl_key)


def _public(key: SigningKey) -> str:
    return encode_unpadded_base64(bytes(key.nacl_key.verify_key))


def _curve(name: str) -> str:
    """A stand-in curve25519 key: the servers store it without using it."""
    return encode_unpadded_base64(hashlib.sha256(name.encode()).digest())


def build() -> dict[str, Any]:
    device = _key("parity-device", f"ed25519:{DEVICE_ID}")
    device_keys = sign_json({
        "user_id": USER_ID, "device_id": DEVICE_ID,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{DEVICE_ID}": _curve("parity-device-curve"), f"ed25519:{DEVICE_ID}": _public(device)},
    }, USER_ID, device)
    one_time = {f"signed_curve25519:AAAAA{n}": sign_json({"key": _curve(f"otk-{n}")}, USER_ID, device)
                for n in ("Q", "g")}
    fallback = {"signed_curve25519:AAAAAw": sign_json({"key": _curve("fallback"), "fallback": True}, USER_ID, device)}

    master = _key("parity-master", "")
    master = SigningKey(f"ed25519:{_public(master)}", master.nacl_key)
    self_signing = _key("parity-self-signing", "")
    self_signing = SigningKey(f"ed25519:{_public(self_signing)}", self_signing.nacl_key)
    user_signing = _key("parity-user-signing", "")
    user_signing = SigningKey(f"ed25519:{_public(user_signing)}", user_signing.nacl_key)
    cross = lambda usage, key: {"user_id": USER_ID, "usage": [usage], "keys": {key.key_id: _public(key)}}  # noqa: E731
    master_key = cross("master", master)
    self_signing_key = sign_json(cross("self_signing", self_signing), USER_ID, master)
    user_signing_key = sign_json(cross("user_signing", user_signing), USER_ID, master)
    # The self-signing key's signature of the device, as POST /keys/signatures/upload takes it.
    unsigned_device = {k: v for k, v in device_keys.items() if k != "signatures"}
    signed_device = sign_json(unsigned_device, USER_ID, self_signing)
    # Bob's cross-signing keys, and his user-signing key's signature of alice's master key (how
    # one user verifies another).
    bob_keys = {usage: _key(f"parity-bob-{usage}", "") for usage in ("master", "self_signing", "user_signing")}
    bob_keys = {usage: SigningKey(f"ed25519:{_public(k)}", k.nacl_key) for usage, k in bob_keys.items()}
    bob_cross = {usage: {"user_id": BOB_ID, "usage": [usage], "keys": {k.key_id: _public(k)}}
                 for usage, k in bob_keys.items()}
    bob_cross["self_signing"] = sign_json(bob_cross["self_signing"], BOB_ID, bob_keys["master"])
    bob_cross["user_signing"] = sign_json(bob_cross["user_signing"], BOB_ID, bob_keys["master"])
    alice_master_signed_by_bob = sign_json(master_key, BOB_ID, bob_keys["user_signing"])
    return {"user_id": USER_ID, "device_id": DEVICE_ID, "device_keys": device_keys, "one_time_keys": one_time,
            "fallback_keys": fallback, "master_key": master_key, "self_signing_key": self_signing_key,
            "user_signing_key": user_signing_key, "device_signed_by_self_signing_key": signed_device,
            "bob_master_key": bob_cross["master"], "bob_self_signing_key": bob_cross["self_signing"],
            "bob_user_signing_key": bob_cross["user_signing"],
            "alice_master_signed_by_bob": alice_master_signed_by_bob}


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
