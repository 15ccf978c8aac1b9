"""One-time and fallback keys: storing uploads, claiming each one-time key exactly once, counts for /sync.

Spec: client-server-api, "One-time and fallback keys", "POST /_matrix/client/v3/keys/claim",
"Extensions to /sync" (device_one_time_keys_count, device_unused_fallback_key_types).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pocketserver.errors import BadJson, InvalidParam
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.storage import e2ee as store
from pocketserver.storage.database import Database
from pocketserver.storage.e2ee import ClaimedKey
from pocketserver.storage.writer import Transaction
from pocketserver.sync.sources import SyncContext

MAX_KEYS_PER_UPLOAD = 1000
# Unclaimed one-time keys one device may hold. Clients keep about 50 (vodozemac) or 100 (libolm);
# the cap bounds a device's storage and the key count every /sync makes (storage/e2ee.py).
MAX_STORED_KEYS = 10_000
MAX_CLAIMS_PER_REQUEST = 1000
# Synapse always reports this count, even at zero, so clients notice they have none left.
DEFAULT_ALGORITHM = "signed_curve25519"
UNREACHABLE = {"status": 503, "message": "Federation is disabled on this server"}


class UploadedKey(NamedTuple):
    algorithm: str
    key_id: str
    key: Any                           # an unpadded base64 string or a signed key object

    @property
    def full_id(self) -> str:
        return f"{self.algorithm}:{self.key_id}"


def parse_uploaded_keys(value: Any, field: str) -> list[UploadedKey]:
    """The `<algorithm>:<key_id>` -> key map of a /keys/upload field as a list.

    Spec: client-server-api, "POST /_matrix/client/v3/keys/upload".
    """
    if value is None:
        return []
    if not isinstance(value, dict):
        raise BadJson(f"{field} must be an object")
    if len(value) > MAX_KEYS_PER_UPLOAD:
        raise InvalidParam(f"At most {MAX_KEYS_PER_UPLOAD} keys may be uploaded at once")
    out = []
    for full_id, key in value.items():
        algorithm, _, key_id = full_id.partition(":")
        if not algorithm or not key_id:
            raise BadJson(f"{field} key IDs must look like <algorithm>:<key_id>")
        if not isinstance(key, (str, dict)):
            raise BadJson(f"{field}[{full_id}] must be a string or an object")
        out.append(UploadedKey(algorithm, key_id, key))
    return out


def choose_claimed_key(one_time_key: ClaimedKey | None, fallback: tuple[str, Any, bool] | None,
                       algorithm: str) -> tuple[ClaimedKey | None, bool]:
    """The key a claim returns and whether the fallback key must now be marked used.

    A one-time key wins; otherwise the fallback key (used or not: it is reused until replaced).
    Spec: client-server-api, "POST /_matrix/client/v3/keys/claim".
    """
    if one_time_key is not None:
        return one_time_key, False
    if fallback is None:
        return None, False
    key_id, key, used = fallback
    return ClaimedKey(f"{algorithm}:{key_id}", key), not used


def parse_claim_request(body: Mapping[str, Any], server_name: str) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """The (user_id, device_id, algorithm) claims for local devices, and `failures` for remote servers.

    Spec: client-server-api, "POST /_matrix/client/v3/keys/claim".
    """
    wanted = body.get("one_time_keys")
    if not isinstance(wanted, dict):
        raise BadJson("one_time_keys must be an object")
    claims: list[tuple[str, str, str]] = []
    failures: dict[str, Any] = {}
    for user_id, devices in wanted.items():
        try:
            user = UserID.parse(user_id)
        except InvalidIdentifier:
            continue    # skipped, not the whole request refused (as Synapse)
        if not isinstance(devices, dict) or not all(isinstance(a, str) and a for a in devices.values()):
            raise BadJson("one_time_keys must map user IDs to device IDs to algorithms")
        if user.server_name != server_name:
            failures[user.server_name] = dict(UNREACHABLE)
            continue
        claims += [(user_id, device_id, algorithm) for device_id, algorithm in devices.items()]
    if len(claims) > MAX_CLAIMS_PER_REQUEST:
        raise InvalidParam(f"At most {MAX_CLAIMS_PER_REQUEST} keys may be claimed at once")
    return claims, failures


async def store_one_time_keys(tx: Transaction, user_id: str, device_id: str, keys: list[UploadedKey]) -> None:
    """Inside a write job: add new one-time keys; a re-upload of the same key is ignored, a different
    key under a known ID refused (as Synapse does), and keys beyond MAX_STORED_KEYS refused."""
    new = []
    for key in keys:
        existing = await store.get_one_time_key_tx(tx, user_id, device_id, key.algorithm, key.key_id)
        if existing is None:
            new.append((key.algorithm, key.key_id, key.key))
        elif existing != key.key:
            raise InvalidParam(f"One-time key {key.full_id} already exists with different content")
    if new:
        held = sum((await store.count_one_time_keys_tx(tx, user_id, device_id)).values())
        if held + len(new) > MAX_STORED_KEYS:
            raise InvalidParam(f"This device already holds {held} unclaimed one-time keys; "
                               f"at most {MAX_STORED_KEYS} are kept")
    await store.insert_one_time_keys(tx, user_id, device_id, new)


async def store_fallback_keys(tx: Transaction, user_id: str, device_id: str, keys: list[UploadedKey]) -> None:
    """Inside a write job: replace the device's fallback key of each algorithm.

    Uploading the key already stored keeps its `used` state. Spec: "POST /keys/upload" (fallback_keys).
    """
    algorithms = [k.algorithm for k in keys]
    if len(set(algorithms)) != len(algorithms):
        raise InvalidParam("At most one fallback key per algorithm may be uploaded")
    for key in keys:
        existing = await store.get_fallback_key_tx(tx, user_id, device_id, key.algorithm)
        if existing is not None and existing[0] == key.key_id and existing[1] == key.key:
            continue
        await store.set_fallback_key(tx, user_id, device_id, key.algorithm, key.key_id, key.key)


def with_default_count(counts: Mapping[str, int]) -> dict[str, int]:
    return {DEFAULT_ALGORITHM: 0, **counts}


class OneTimeKeys:
    """Claims of one-time keys, and the sync source for the key counts."""

    def __init__(self, db: Database, server_name: str) -> None:
        self._db = db
        self._server_name = server_name

    async def claim_keys(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Hand out one key per requested device: the oldest one-time key, else the fallback key.

        The select and delete run in one write job, and the writer runs jobs one at a time, so no
        two claims can ever receive the same one-time key.
        Spec: client-server-api, "POST /_matrix/client/v3/keys/claim".
        """
        claims, failures = parse_claim_request(body, self._server_name)

        async def job(tx: Transaction) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for user_id, device_id, algorithm in claims:
                # Keys of a device removed without the deletion hook (deactivation) stay unclaimable.
                if not await store.device_exists_tx(tx, user_id, device_id):
                    continue
                one_time = await store.take_oldest_one_time_key(tx, user_id, device_id, algorithm)
                fallback = None if one_time else await store.get_fallback_key_tx(tx, user_id, device_id, algorithm)
                chosen, mark_used = choose_claimed_key(one_time, fallback, algorithm)
                if chosen is not None:
                    out.setdefault(user_id, {}).setdefault(device_id, {})[chosen.key_id] = chosen.key
                if mark_used:
                    await store.mark_fallback_key_used(tx, user_id, device_id, algorithm)
            return out

        one_time_keys = await self._db.write(job) if claims else {}
        return {"one_time_keys": one_time_keys, "failures": failures}

    async def add_to_sync(self, ctx: SyncContext) -> bool:
        """Always report the counts and unused fallback types (Synapse does; clients rely on it)."""
        counts = store.count_one_time_keys(self._db, ctx.user_id, ctx.device_id)
        ctx.response["device_one_time_keys_count"] = with_default_count(counts)
        ctx.response["device_unused_fallback_key_types"] = store.get_unused_fallback_algorithms(
            self._db, ctx.user_id, ctx.device_id)
        return False
