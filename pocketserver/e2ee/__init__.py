"""End-to-end encryption support: device and cross-signing keys, one-time keys, device lists,
send-to-device messages and server-side key backups.

The server never sees plaintext: it stores and hands out public keys, relays to-device messages
and keeps encrypted backups. Spec: client-server-api, "End-to-End Encryption".
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import nacl.exceptions
import nacl.signing

from pocketserver.errors import Forbidden, MatrixError
from pocketserver.rooms.hashing import decode_base64
from pocketserver.rooms.signing import SignatureError, verify_json_signature


class InvalidSignature(MatrixError):
    errcode, status = "M_INVALID_SIGNATURE", 400


def check_encryption_state_change(current_state: Mapping[tuple[str, str], Any], event_type: str, state_key: str,
                                  content: Mapping[str, Any]) -> None:
    """Refuse to change or remove the algorithm of a room's m.room.encryption once it is set.

    Turning encryption off would silently send later messages in the clear, so clients may only
    re-send the event with the same algorithm (e.g. to change its rotation settings).
    Spec: client-server-api, "m.room.encryption" ("encryption cannot be disabled").
    """
    if event_type != "m.room.encryption" or state_key != "":
        return
    current = current_state.get(("m.room.encryption", ""))
    if current is None:
        return
    algorithm = current.content.get("algorithm")
    if not isinstance(algorithm, str) or not algorithm:
        return
    if content.get("algorithm") != algorithm:
        raise Forbidden("Encryption cannot be disabled or changed once enabled in a room")


def verify_signed_json(obj: Mapping[str, Any], user_id: str, key_id: str, public_key: Any) -> None:
    """Raise InvalidSignature unless `user_id` signed `obj` with the ed25519 key `key_id`.

    Spec: appendices, "Checking for a Signature".
    """
    try:
        verify_key = nacl.signing.VerifyKey(decode_base64(public_key))
    except (ValueError, TypeError, AttributeError, nacl.exceptions.CryptoError):
        raise InvalidSignature(f"{key_id} is not a valid ed25519 public key") from None
    try:
        verify_json_signature(obj, user_id, key_id, verify_key)
    except SignatureError as exc:
        raise InvalidSignature(f"Invalid signature: {exc}") from None
    except (ValueError, TypeError):
        raise InvalidSignature("Signed object is not valid canonical JSON") from None


def identity_of(keys: Mapping[str, Any]) -> dict[str, Any]:
    """A keys object without the parts others may add (`signatures`, `unsigned`), for comparison."""
    return {k: v for k, v in keys.items() if k not in ("signatures", "unsigned")}
