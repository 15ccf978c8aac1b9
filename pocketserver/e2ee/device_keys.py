"""Device identity keys: upload (with one-time and fallback keys), query, and cleanup on device deletion.

Spec: client-server-api, "Device keys", "Uploading keys", "POST /_matrix/client/v3/keys/upload",
"POST /_matrix/client/v3/keys/query".
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pocketserver.accounts.auth import Requester
from pocketserver.e2ee import identity_of, verify_signed_json
from pocketserver.e2ee.cross_signing import cross_signing_keys_for, merge_signatures
from pocketserver.e2ee.device_lists import record_device_list_change
from pocketserver.e2ee.one_time_keys import (UNREACHABLE, UploadedKey, parse_uploaded_keys, store_fallback_keys,
                                             store_one_time_keys, with_default_count)
from pocketserver.errors import BadJson, InvalidParam
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.storage import e2ee as store
from pocketserver.storage import e2ee_streams as streams
from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

MAX_QUERIED_USERS = 1000


def check_device_keys(device_keys: Any, user_id: str, device_id: str) -> dict[str, Any]:
    """The uploaded device keys, after checking their shape, owner and self-signature.

    Spec: client-server-api, "Uploading keys" (must be signed by the device's Ed25519 key).
    """
    if not isinstance(device_keys, dict):
        raise BadJson("device_keys must be an object")
    if device_keys.get("user_id") != user_id or device_keys.get("device_id") != device_id:
        raise InvalidParam("device_keys must name the user and device of the access token")
    algorithms = device_keys.get("algorithms")
    if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
        raise BadJson("device_keys.algorithms must be a list of strings")
    keys = device_keys.get("keys")
    if not isinstance(keys, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
        raise BadJson("device_keys.keys must map key IDs to strings")
    signing_key_id = f"ed25519:{device_id}"
    if signing_key_id not in keys:
        raise BadJson(f"device_keys.keys must include {signing_key_id}")
    verify_signed_json(device_keys, user_id, signing_key_id, keys[signing_key_id])
    return {k: v for k, v in device_keys.items() if k != "unsigned"}


def check_signed_keys(keys: list[UploadedKey], user_id: str, device_id: str, ed25519_key: str | None) -> None:
    """Signed one-time and fallback keys must carry a good signature of the uploading device."""
    if ed25519_key is None:
        return
    for key in keys:
        if isinstance(key.key, dict) and key.algorithm.startswith("signed_"):
            verify_signed_json(key.key, user_id, f"ed25519:{device_id}", ed25519_key)


class DeviceKeys:
    """Uploads and queries of device keys."""

    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name

    async def upload_keys(self, requester: Requester, body: Mapping[str, Any]) -> dict[str, Any]:
        """Spec: client-server-api, "POST /_matrix/client/v3/keys/upload"."""
        user_id, device_id = requester.user_id, requester.device_id
        new_device_keys = None
        if body.get("device_keys") is not None:
            new_device_keys = check_device_keys(body["device_keys"], user_id, device_id)
        one_time = parse_uploaded_keys(body.get("one_time_keys"), "one_time_keys")
        fallback = parse_uploaded_keys(body.get("fallback_keys"), "fallback_keys")
        stored = await store.get_device_keys(self._db, user_id, device_id)
        if stored is not None and new_device_keys is not None and identity_of(stored) != identity_of(new_device_keys):
            raise InvalidParam("This device already has different identity keys; log in as a new device instead")
        identity = stored or new_device_keys
        check_signed_keys(one_time + fallback, user_id, device_id,
                          identity["keys"].get(f"ed25519:{device_id}") if identity else None)

        async def job(tx: Transaction) -> dict[str, int]:
            if new_device_keys is not None:
                existing = await store.get_device_keys_tx(tx, user_id, device_id)
                if existing is None:
                    await store.set_device_keys(tx, user_id, device_id, new_device_keys, int(time.time() * 1000))
                    await record_device_list_change(tx, user_id)
                elif identity_of(existing) != identity_of(new_device_keys):
                    raise InvalidParam("This device already has different identity keys")
            await store_one_time_keys(tx, user_id, device_id, one_time)
            await store_fallback_keys(tx, user_id, device_id, fallback)
            return await store.count_one_time_keys_tx(tx, user_id, device_id)

        counts = await self._db.write(job)
        return {"one_time_key_counts": with_default_count(counts)}

    async def query_keys(self, requester: Requester, body: Mapping[str, Any]) -> dict[str, Any]:
        """Spec: client-server-api, "POST /_matrix/client/v3/keys/query"."""
        wanted = body.get("device_keys")
        if not isinstance(wanted, dict):
            raise BadJson("device_keys must be an object")
        if len(wanted) > MAX_QUERIED_USERS:
            raise InvalidParam(f"At most {MAX_QUERIED_USERS} users may be queried at once")
        out: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {},
                               "user_signing_keys": {}, "failures": {}}
        for user_id, device_ids in wanted.items():
            try:
                user = UserID.parse(user_id)
            except InvalidIdentifier:
                continue    # skipped, not the whole request refused (as Synapse)
            if device_ids is None:
                device_ids = []
            if not isinstance(device_ids, list) or not all(isinstance(d, str) for d in device_ids):
                raise BadJson("device_keys must map user IDs to lists of device IDs")
            if user.server_name != self._server_name:
                out["failures"][user.server_name] = dict(UNREACHABLE)
                continue
            await self._query_user(requester.user_id, user_id, set(device_ids), out)
        return out

    async def _query_user(self, requester_id: str, user_id: str, device_ids: set[str], out: dict[str, Any]) -> None:
        signatures = await store.get_signatures_of_user(self._db, user_id)
        devices: dict[str, Any] = {}
        for device_id, (display_name, keys) in (await store.get_devices_with_keys(self._db, user_id)).items():
            if device_ids and device_id not in device_ids:
                continue
            shown = merge_signatures(keys, [s for s in signatures
                                            if s.target_key_id == device_id and s.signer_user_id == user_id])
            shown["unsigned"] = {"device_display_name": display_name} if display_name else {}
            devices[device_id] = shown
        out["device_keys"][user_id] = devices
        cross = await store.get_cross_signing_keys(self._db, user_id)
        for field, key in cross_signing_keys_for(requester_id, user_id, cross, signatures).items():
            out[field][user_id] = key


async def delete_device_keys(tx: Transaction, user_id: str, device_ids: list[str]) -> None:
    """Inside the job that deletes devices: drop their keys and pending messages, and tell the
    users who track `user_id` that its device list changed."""
    for device_id in device_ids:
        await store.delete_device_keys(tx, user_id, device_id)
        await streams.delete_device_inbox(tx, user_id, device_id)
    if device_ids:
        await record_device_list_change(tx, user_id)

