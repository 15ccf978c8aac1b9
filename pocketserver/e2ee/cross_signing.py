"""Cross-signing: uploading master, self-signing and user-signing keys, and signatures of keys.

Spec: client-server-api, "Cross-signing", "POST /_matrix/client/v3/keys/device_signing/upload",
"POST /_matrix/client/v3/keys/signatures/upload".
"""
from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any, Protocol

from pocketserver.accounts.auth import Requester
from pocketserver.e2ee import InvalidSignature, identity_of, verify_signed_json
from pocketserver.e2ee.device_lists import SIGNED, record_device_list_change, record_observation
from pocketserver.errors import BadJson, Forbidden, InvalidParam, MatrixError, MissingParam, NotFound
from pocketserver.storage import e2ee as store
from pocketserver.storage.database import Database
from pocketserver.storage.e2ee import Signature
from pocketserver.storage.writer import Transaction

FIELDS = {"master_key": "master", "self_signing_key": "self_signing", "user_signing_key": "user_signing"}
CrossSigningKeys = Mapping[str, tuple[str, Mapping[str, Any]]]      # usage -> (public key, key object)


class IdentityCheck(Protocol):
    async def confirm_identity(self, requester: Requester, auth: Any, operation: str) -> None: ...


def merge_signatures(key: Mapping[str, Any], signatures: list[Signature]) -> dict[str, Any]:
    """A copy of `key` with the stored `signatures` added to its own."""
    merged = copy.deepcopy(dict(key))
    if not signatures:
        return merged
    if not isinstance(merged.get("signatures"), dict):
        merged["signatures"] = {}
    for s in signatures:
        merged["signatures"].setdefault(s.signer_user_id, {})[s.signer_key_id] = s.signature
    return merged


def cross_signing_keys_for(requester_id: str, user_id: str, keys: CrossSigningKeys,
                           signatures: list[Signature]) -> dict[str, dict[str, Any]]:
    """The cross-signing keys of `user_id` that `requester_id` may see, by /keys/query field.

    The user-signing key is shown only to its owner; signatures of a master key only when made by
    its owner (their devices) or by the requester. Spec: "Key and signature security".
    """
    out: dict[str, dict[str, Any]] = {}
    if "master" in keys:
        public_key, key = keys["master"]
        visible = [s for s in signatures if s.target_key_id == public_key
                   and s.signer_user_id in (user_id, requester_id)]
        out["master_keys"] = merge_signatures(key, visible)
    if "self_signing" in keys:
        out["self_signing_keys"] = copy.deepcopy(dict(keys["self_signing"][1]))
    if "user_signing" in keys and requester_id == user_id:
        out["user_signing_keys"] = copy.deepcopy(dict(keys["user_signing"][1]))
    return out


def check_cross_signing_key(key: Any, user_id: str, usage: str) -> str:
    """The public key of an uploaded cross-signing key, after checking its shape.

    Spec: client-server-api, "CrossSigningKey" (exactly one `ed25519:<public key>` entry).
    """
    if not isinstance(key, dict):
        raise BadJson(f"The {usage} key must be an object")
    if key.get("user_id") != user_id:
        raise InvalidParam(f"The {usage} key must belong to {user_id}")
    usages = key.get("usage")
    if not isinstance(usages, list) or usage not in usages or not all(isinstance(u, str) for u in usages):
        raise InvalidParam(f"The {usage} key must list {usage!r} in usage")
    keys = key.get("keys")
    if not isinstance(keys, dict) or len(keys) != 1:
        raise InvalidParam(f"The {usage} key must have exactly one public key")
    [(key_id, public_key)] = keys.items()
    if not key_id.startswith("ed25519:") or key_id[len("ed25519:"):] != public_key or not public_key:
        raise InvalidParam(f"The {usage} key must be ed25519:<public key> mapped to the public key")
    if "signatures" in key and not isinstance(key["signatures"], dict):
        raise BadJson(f"The {usage} key's signatures must be an object")
    return public_key


def signatures_by(obj: Mapping[str, Any], user_id: str) -> dict[str, Any]:
    signatures = obj.get("signatures")
    mine = signatures.get(user_id) if isinstance(signatures, dict) else None
    return mine if isinstance(mine, dict) else {}


class CrossSigning:
    """Cross-signing key uploads (behind password UIA) and signature uploads."""

    def __init__(self, db: Database, account: IdentityCheck) -> None:
        self._db = db
        self._account = account

    async def upload_cross_signing_keys(self, requester: Requester, body: Mapping[str, Any]) -> None:
        """Spec: client-server-api, "POST /_matrix/client/v3/keys/device_signing/upload"."""
        user_id = requester.user_id
        new = {usage: (check_cross_signing_key(body[field], user_id, usage), body[field])
               for field, usage in FIELDS.items() if body.get(field) is not None}
        stored = await store.get_cross_signing_keys(self._db, user_id)
        # UIA may be skipped for the first upload, and for a retry that uploads no new keys.
        if "master" in stored and not ("master" in new and all(
                usage in stored and stored[usage][0] == public_key and stored[usage][1] == key
                for usage, (public_key, key) in new.items())):
            await self._account.confirm_identity(requester, body.get("auth"), "device_signing")
        master = new.get("master") or stored.get("master")
        for usage in ("self_signing", "user_signing"):
            if usage in new:
                if master is None:
                    raise MissingParam("No master key available")
                verify_signed_json(new[usage][1], user_id, f"ed25519:{master[0]}", master[0])

        async def job(tx: Transaction) -> None:
            device_ids = set(await store.get_device_ids_tx(tx, user_id))
            current = await store.get_cross_signing_keys_tx(tx, user_id)
            changed = {u: v for u, v in new.items() if current.get(u, (None, None))[1] != v[1]}
            for usage, (public_key, key) in changed.items():
                if public_key in device_ids:
                    raise Forbidden("Key ID in use")
                await store.set_cross_signing_key(tx, user_id, usage, public_key, key, int(time.time() * 1000))
            if "master" in changed or "self_signing" in changed:
                await record_device_list_change(tx, user_id)
            elif "user_signing" in changed:
                await record_observation(tx, user_id, [user_id], SIGNED)

        await self._db.write(job)

    async def upload_signatures(self, requester: Requester, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store valid signatures; each key that fails gets its own entry in `failures`.

        Spec: client-server-api, "POST /_matrix/client/v3/keys/signatures/upload".
        """
        own = await store.get_cross_signing_keys(self._db, requester.user_id)
        accepted: list[Signature] = []
        failures: dict[str, dict[str, Any]] = {}
        for user_id, keys in body.items():
            if not isinstance(keys, dict):
                raise BadJson("The body must map user IDs to key IDs to signed objects")
            for key_id, signed in keys.items():
                try:
                    if not isinstance(signed, dict):
                        raise BadJson("A signed key must be an object")
                    if user_id == requester.user_id:
                        accepted += await self._own_key_signatures(requester.user_id, key_id, signed, own)
                    else:
                        accepted.append(await self._user_signing_signature(requester.user_id, user_id, key_id,
                                                                           signed, own))
                except MatrixError as err:
                    failures.setdefault(user_id, {})[key_id] = {"errcode": err.errcode, "error": err.message}
        if accepted:
            await self._db.write(lambda tx: self._store_signatures(tx, requester.user_id, accepted))
        return {"failures": failures}

    async def _own_key_signatures(self, user_id: str, key_id: str, signed: Mapping[str, Any],
                                  own: CrossSigningKeys) -> list[Signature]:
        """Signatures of the user's own master key by their devices, or of a device by the self-signing key."""
        master = own.get("master")
        if master is not None and key_id == master[0]:
            if identity_of(signed) != identity_of(master[1]):
                raise InvalidParam("The signed object does not match the stored master key")
            devices = await store.get_devices_with_keys(self._db, user_id)
            out = []
            for signer_key_id, signature in signatures_by(signed, user_id).items():
                device_id = signer_key_id.removeprefix("ed25519:")
                if device_id == signer_key_id or device_id not in devices or not isinstance(signature, str):
                    continue
                device_key = devices[device_id][1]["keys"].get(signer_key_id)
                verify_signed_json(signed, user_id, signer_key_id, device_key)
                out.append(Signature(user_id, signer_key_id, user_id, key_id, signature))
            if not out:
                raise InvalidSignature("No signature by one of your devices")
            return out
        stored = await store.get_device_keys(self._db, user_id, key_id)
        if stored is None:
            raise NotFound("Unknown device or key")
        if identity_of(signed) != identity_of(stored):
            raise InvalidParam("The signed object does not match the stored device keys")
        return [self._check_signature(signed, user_id, own.get("self_signing"), "self-signing", user_id, key_id)]

    async def _user_signing_signature(self, user_id: str, target_user: str, key_id: str, signed: Mapping[str, Any],
                                      own: CrossSigningKeys) -> Signature:
        """A signature of another user's master key by the requester's user-signing key."""
        target = (await store.get_cross_signing_keys(self._db, target_user)).get("master")
        if target is None or target[0] != key_id:
            raise NotFound("Unknown master key")
        if identity_of(signed) != identity_of(target[1]):
            raise InvalidParam("The signed object does not match the stored master key")
        return self._check_signature(signed, user_id, own.get("user_signing"), "user-signing", target_user, key_id)

    @staticmethod
    def _check_signature(signed: Mapping[str, Any], user_id: str, signer: tuple[str, Any] | None, name: str,
                         target_user: str, target_key_id: str) -> Signature:
        if signer is None:
            raise MissingParam(f"No {name} key has been uploaded")
        signer_key_id = f"ed25519:{signer[0]}"
        signature = signatures_by(signed, user_id).get(signer_key_id)
        if not isinstance(signature, str):
            raise InvalidSignature(f"Missing signature by the {name} key")
        verify_signed_json(signed, user_id, signer_key_id, signer[0])
        return Signature(user_id, signer_key_id, target_user, target_key_id, signature)

    @staticmethod
    async def _store_signatures(tx: Transaction, user_id: str, signatures: list[Signature]) -> None:
        await store.insert_signatures(tx, signatures)
        if any(s.target_user_id == user_id for s in signatures):
            await record_device_list_change(tx, user_id)
        others = {s.target_user_id for s in signatures if s.target_user_id != user_id}
        await record_observation(tx, user_id, sorted(others), SIGNED)
