"""Signing and verifying JSON objects and events with ed25519 keys passed in by the caller.

Spec: appendices, "Signing JSON"; server-server-api, "Signing Events".
"""
from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import NamedTuple

import nacl.exceptions
import nacl.signing

from pocketserver.rooms.canonical import JsonDict, JsonValue, copy_json, encode_canonical_json
from pocketserver.rooms.hashing import compute_content_hash, decode_base64, encode_unpadded_base64
from pocketserver.rooms.identifiers import server_name_of
from pocketserver.rooms.redaction import redact
from pocketserver.rooms.versions import EventIdFormat, RoomVersion

VerifyKeys = Mapping[str, Mapping[str, nacl.signing.VerifyKey]]   # server_name -> key_id -> verify_key


class SignatureError(Exception):
    """A signature or content hash is missing or does not verify."""


class SigningKey(NamedTuple):
    """An ed25519 signing key with its key ID, e.g. `ed25519:a_Abc`."""

    key_id: str
    nacl_key: nacl.signing.SigningKey

    @classmethod
    def from_seed(cls, seed: bytes, version: str) -> SigningKey:
        """Build the key whose 32-byte ed25519 seed is `seed` and whose key ID is `ed25519:<version>`.

        Spec: appendices, "Signing Details".
        """
        return cls(f"ed25519:{version}", nacl.signing.SigningKey(seed))

    @classmethod
    def from_base64_seed(cls, seed: str, version: str) -> SigningKey:
        """Build the key from an unpadded-base64 seed, as the test vectors give it.

        Spec: appendices, "Cryptographic Test Vectors" ("Signing Key").
        """
        return cls.from_seed(decode_base64(seed), version)

    @classmethod
    def generate(cls, version: str) -> SigningKey:
        """Create a fresh random key.

        Spec: appendices, "Signing Details".
        """
        return cls(f"ed25519:{version}", nacl.signing.SigningKey.generate())

    @property
    def seed(self) -> bytes:
        """The 32-byte seed, which is all a server needs to persist.

        Spec: appendices, "Cryptographic Test Vectors" ("Signing Key").
        """
        return bytes(self.nacl_key)

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        """The public half of the key.

        Spec: server-server-api, "Retrieving server keys".
        """
        return self.nacl_key.verify_key

    @property
    def verify_key_base64(self) -> str:
        """The public key in unpadded base64, as published in `verify_keys`.

        Spec: server-server-api, "Publishing Keys".
        """
        return encode_unpadded_base64(bytes(self.verify_key))

    def sign(self, message: bytes) -> bytes:
        """The detached 64-byte ed25519 signature of `message`.

        Spec: appendices, "Signing Details".
        """
        return self.nacl_key.sign(message).signature


def sign_json(json_object: JsonDict, server_name: str, key: SigningKey) -> dict[str, JsonValue]:
    """Return a copy of the object with this server's signature added under `signatures`.

    Spec: appendices, "Signing Details".
    """
    signed = copy_json(dict(json_object))
    signatures = signed.pop("signatures", {})
    unsigned = signed.pop("unsigned", None)
    signature = encode_unpadded_base64(key.sign(encode_canonical_json(signed)))
    if not isinstance(signatures, dict):
        signatures = {}
    signatures.setdefault(server_name, {})[key.key_id] = signature
    signed["signatures"] = signatures
    if unsigned is not None:
        signed["unsigned"] = unsigned
    return signed


def verify_json_signature(
    json_object: JsonDict, server_name: str, key_id: str, verify_key: nacl.signing.VerifyKey
) -> None:
    """Raise SignatureError unless `server_name` signed the object with `key_id`.

    Spec: appendices, "Checking for a Signature".
    """
    signatures = json_object.get("signatures")
    if not isinstance(signatures, Mapping) or not isinstance(signatures.get(server_name), Mapping):
        raise SignatureError(f"no signatures from {server_name}")
    signature_b64 = signatures[server_name].get(key_id)
    if not isinstance(signature_b64, str):
        raise SignatureError(f"no signature from {server_name} with key {key_id}")
    try:
        signature = decode_base64(signature_b64)
    except ValueError:
        raise SignatureError(f"signature from {server_name} {key_id} is not base64") from None
    unsigned_object = {k: v for k, v in json_object.items() if k not in ("signatures", "unsigned")}
    try:
        verify_key.verify(encode_canonical_json(unsigned_object), signature)
    except (nacl.exceptions.BadSignatureError, ValueError):
        raise SignatureError(f"bad signature from {server_name} with key {key_id}") from None


def verify_signed_by(json_object: JsonDict, server_name: str, keys: Mapping[str, nacl.signing.VerifyKey]) -> None:
    """Raise SignatureError unless the server has a signature with a known ed25519 key and all known ones verify.

    Spec: appendices, "Checking for a Signature" (steps 1-7).
    """
    signatures = json_object.get("signatures")
    entry = signatures.get(server_name) if isinstance(signatures, Mapping) else None
    if not isinstance(entry, Mapping):
        raise SignatureError(f"no signatures from {server_name}")
    known = [key_id for key_id in entry if key_id.startswith("ed25519:") and key_id in keys]
    if not known:
        raise SignatureError(f"no signature from {server_name} with a known key")
    for key_id in known:
        verify_json_signature(json_object, server_name, key_id, keys[key_id])


def add_content_hash(event: JsonDict) -> dict[str, JsonValue]:
    """Return a copy of the event with `hashes.sha256` set to its content hash.

    Spec: server-server-api, "Adding hashes and signatures to outgoing events".
    """
    hashed = copy_json(dict(event))
    hashed["hashes"] = {"sha256": encode_unpadded_base64(compute_content_hash(hashed))}
    return hashed


def sign_event(event: JsonDict, server_name: str, key: SigningKey, version: RoomVersion) -> dict[str, JsonValue]:
    """Return a copy of the event with its content hash and this server's signature of the redacted form.

    Spec: server-server-api, "Adding hashes and signatures to outgoing events".
    """
    hashed = add_content_hash(event)
    signed_redacted = sign_json(redact(hashed, version), server_name, key)
    hashed["signatures"] = signed_redacted["signatures"]
    return hashed


def check_content_hash(event: JsonDict) -> bool:
    """Whether `hashes.sha256` matches the event's content hash (False means: use the redacted copy).

    Spec: server-server-api, "Validating hashes and signatures on received events".
    """
    hashes = event.get("hashes")
    expected = hashes.get("sha256") if isinstance(hashes, Mapping) else None
    if not isinstance(expected, str):
        return False
    try:
        received = decode_base64(expected)
    except ValueError:
        return False
    return hmac.compare_digest(received, compute_content_hash(event))


def required_signature_servers(event: JsonDict, version: RoomVersion) -> frozenset[str]:
    """The servers whose signatures an event must carry: the sender's, plus others per room version.

    Spec: server-server-api, "Validating hashes and signatures on received events"; rooms/v8,
    "Authorisation rules" (rule 4.2, join_authorised_via_users_server).
    """
    servers = {server_name_of(str(event.get("sender", "")))}
    event_id = event.get("event_id")
    if version.event_id_format is EventIdFormat.SERVER_ASSIGNED and isinstance(event_id, str) and ":" in event_id:
        servers.add(server_name_of(event_id))
    content = event.get("content")
    if version.restricted_join_rule and isinstance(content, Mapping):
        authoriser = content.get("join_authorised_via_users_server")
        if isinstance(authoriser, str) and ":" in authoriser:
            servers.add(server_name_of(authoriser))
    return frozenset(servers)


def verify_event_signatures(
    event: JsonDict,
    version: RoomVersion,
    verify_keys: VerifyKeys,
    key_valid_until_ts: Mapping[str, Mapping[str, int]] | None = None,
) -> None:
    """Raise SignatureError unless every required server signed the redacted event with a known key.

    Keys whose `valid_until_ts` (when given) is before the event's origin_server_ts are ignored
    in room versions that enforce key validity.

    Spec: server-server-api, "Validating hashes and signatures on received events"; rooms/v5,
    "Signing key validity period".
    """
    redacted = redact(event, version)
    origin_server_ts = event.get("origin_server_ts")
    for server_name in sorted(required_signature_servers(event, version)):
        keys = dict(verify_keys.get(server_name, {}))
        if version.enforce_key_validity and key_valid_until_ts and isinstance(origin_server_ts, int):
            limits = key_valid_until_ts.get(server_name, {})
            keys = {k: v for k, v in keys.items() if limits.get(k, origin_server_ts) >= origin_server_ts}
        verify_signed_by(redacted, server_name, keys)
