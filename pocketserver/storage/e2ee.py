"""Device keys, one-time and fallback keys, cross-signing keys and their signatures.

Spec: client-server-api, "End-to-End Encryption", "Key management API" and "Cross-signing".
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

JsonObject = dict[str, Any]


class ClaimedKey(NamedTuple):
    key_id: str                        # "<algorithm>:<key_id>"
    key: Any                           # the key object (or string) as uploaded


class Signature(NamedTuple):
    signer_user_id: str
    signer_key_id: str
    target_user_id: str
    target_key_id: str
    signature: str


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# Device keys

_GET_DEVICE_KEYS_TX = "SELECT key_json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?"
_SET_DEVICE_KEYS = """INSERT INTO e2e_device_keys (user_id, device_id, key_json, added_ts) VALUES (?, ?, ?, ?)
ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json"""
_QUERY_DEVICES = """SELECT d.device_id, d.display_name, k.key_json FROM devices d
JOIN e2e_device_keys k ON k.user_id = d.user_id AND k.device_id = d.device_id WHERE d.user_id = ?"""


async def get_device_keys_tx(tx: Transaction, user_id: str, device_id: str) -> JsonObject | None:
    row = await tx.fetchone(_GET_DEVICE_KEYS_TX, (user_id, device_id))
    return json.loads(row[0]) if row else None


async def get_device_keys(db: Database, user_id: str, device_id: str) -> JsonObject | None:
    row = await db.fetchone(_GET_DEVICE_KEYS_TX, (user_id, device_id))
    return json.loads(row[0]) if row else None


async def set_device_keys(tx: Transaction, user_id: str, device_id: str, keys: Mapping[str, Any], now_ms: int) -> None:
    await tx.execute(_SET_DEVICE_KEYS, (user_id, device_id, _dump(keys), now_ms))


async def get_devices_with_keys(db: Database, user_id: str) -> dict[str, tuple[str | None, JsonObject]]:
    """device_id -> (display_name, device keys) of a user's existing devices that uploaded keys."""
    rows = await db.fetchall(_QUERY_DEVICES, (user_id,))
    return {r[0]: (r[1], json.loads(r[2])) for r in rows}


async def delete_device_keys(tx: Transaction, user_id: str, device_id: str) -> None:
    """Forget every key of a device: identity keys, one-time and fallback keys, signatures of it."""
    await tx.execute("DELETE FROM e2e_device_keys WHERE user_id = ? AND device_id = ?", (user_id, device_id))
    await tx.execute("DELETE FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ?", (user_id, device_id))
    await tx.execute("DELETE FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ?", (user_id, device_id))
    await tx.execute("DELETE FROM e2e_cross_signing_signatures WHERE target_user_id = ? AND target_key_id = ?",
                     (user_id, device_id))


async def get_device_ids_tx(tx: Transaction, user_id: str) -> list[str]:
    return [r[0] for r in await tx.fetchall("SELECT device_id FROM devices WHERE user_id = ?", (user_id,))]


async def device_exists_tx(tx: Transaction, user_id: str, device_id: str) -> bool:
    row = await tx.fetchone("SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id))
    return row is not None


# One-time and fallback keys

_GET_OTK = """SELECT key_json FROM e2e_one_time_keys
WHERE user_id = ? AND device_id = ? AND algorithm = ? AND key_id = ?"""
_INSERT_OTK = """INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json)
VALUES (?, ?, ?, ?, ?)"""
_COUNT_OTKS = """SELECT algorithm, COUNT(*) FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ?
GROUP BY algorithm"""
_OLDEST_OTK = """SELECT upload_id, key_id, key_json FROM e2e_one_time_keys
WHERE user_id = ? AND device_id = ? AND algorithm = ? ORDER BY upload_id LIMIT 1"""
_GET_FALLBACK = """SELECT key_id, key_json, used FROM e2e_fallback_keys
WHERE user_id = ? AND device_id = ? AND algorithm = ?"""
_SET_FALLBACK = """INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (user_id, device_id, algorithm) DO UPDATE
SET key_id = excluded.key_id, key_json = excluded.key_json, used = 0"""
_UNUSED_FALLBACK_ALGORITHMS = """SELECT algorithm FROM e2e_fallback_keys
WHERE user_id = ? AND device_id = ? AND used = 0 ORDER BY algorithm"""


async def get_one_time_key_tx(tx: Transaction, user_id: str, device_id: str, algorithm: str,
                              key_id: str) -> Any | None:
    row = await tx.fetchone(_GET_OTK, (user_id, device_id, algorithm, key_id))
    return json.loads(row[0]) if row else None


async def insert_one_time_keys(tx: Transaction, user_id: str, device_id: str,
                               keys: Iterable[tuple[str, str, Any]]) -> None:
    """Store (algorithm, key_id, key) rows; one upload's keys get consecutive upload IDs."""
    await tx.executemany(_INSERT_OTK, [(user_id, device_id, alg, kid, _dump(key)) for alg, kid, key in keys])


async def count_one_time_keys_tx(tx: Transaction, user_id: str, device_id: str) -> dict[str, int]:
    return {r[0]: r[1] for r in await tx.fetchall(_COUNT_OTKS, (user_id, device_id))}


def count_one_time_keys(db: Database, user_id: str, device_id: str) -> dict[str, int]:
    """A device's unclaimed one-time keys per algorithm, counted on the event loop's thread: every
    /sync asks, and a device holds at most MAX_STORED_KEYS of them (e2ee/one_time_keys.py)."""
    return {r[0]: r[1] for r in db.lookup_all(_COUNT_OTKS, (user_id, device_id))}


async def take_oldest_one_time_key(tx: Transaction, user_id: str, device_id: str, algorithm: str) -> ClaimedKey | None:
    """Delete and return the device's oldest one-time key of `algorithm`, inside the caller's job."""
    row = await tx.fetchone(_OLDEST_OTK, (user_id, device_id, algorithm))
    if row is None:
        return None
    await tx.execute("DELETE FROM e2e_one_time_keys WHERE upload_id = ?", (row[0],))
    return ClaimedKey(f"{algorithm}:{row[1]}", json.loads(row[2]))


async def get_fallback_key_tx(tx: Transaction, user_id: str, device_id: str,
                              algorithm: str) -> tuple[str, Any, bool] | None:
    """(key_id, key, used) of the device's fallback key of `algorithm`."""
    row = await tx.fetchone(_GET_FALLBACK, (user_id, device_id, algorithm))
    return (row[0], json.loads(row[1]), bool(row[2])) if row else None


async def set_fallback_key(tx: Transaction, user_id: str, device_id: str, algorithm: str, key_id: str,
                           key: Any) -> None:
    await tx.execute(_SET_FALLBACK, (user_id, device_id, algorithm, key_id, _dump(key)))


async def mark_fallback_key_used(tx: Transaction, user_id: str, device_id: str, algorithm: str) -> None:
    await tx.execute("UPDATE e2e_fallback_keys SET used = 1 WHERE user_id = ? AND device_id = ? AND algorithm = ?",
                     (user_id, device_id, algorithm))


def get_unused_fallback_algorithms(db: Database, user_id: str, device_id: str) -> list[str]:
    """Looked up on the event loop's thread, like the counts: one row per algorithm at most."""
    return [r[0] for r in db.lookup_all(_UNUSED_FALLBACK_ALGORITHMS, (user_id, device_id))]


# Cross-signing keys and signatures

_GET_CROSS_SIGNING = "SELECT usage, public_key, key_json FROM e2e_cross_signing_keys WHERE user_id = ?"
_SET_CROSS_SIGNING = """INSERT INTO e2e_cross_signing_keys (user_id, usage, public_key, key_json, added_ts)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, usage) DO UPDATE
SET public_key = excluded.public_key, key_json = excluded.key_json, added_ts = excluded.added_ts"""
_INSERT_SIGNATURE = """INSERT INTO e2e_cross_signing_signatures
(signer_user_id, signer_key_id, target_user_id, target_key_id, signature) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (signer_user_id, signer_key_id, target_user_id, target_key_id)
DO UPDATE SET signature = excluded.signature"""
_SIGNATURES_OF_USER = """SELECT signer_user_id, signer_key_id, target_user_id, target_key_id, signature
FROM e2e_cross_signing_signatures WHERE target_user_id = ?"""


async def get_cross_signing_keys(db: Database, user_id: str) -> dict[str, tuple[str, JsonObject]]:
    """usage -> (public_key, key object) of a user's cross-signing keys."""
    return {r[0]: (r[1], json.loads(r[2])) for r in await db.fetchall(_GET_CROSS_SIGNING, (user_id,))}


async def get_cross_signing_keys_tx(tx: Transaction, user_id: str) -> dict[str, tuple[str, JsonObject]]:
    return {r[0]: (r[1], json.loads(r[2])) for r in await tx.fetchall(_GET_CROSS_SIGNING, (user_id,))}


async def set_cross_signing_key(tx: Transaction, user_id: str, usage: str, public_key: str, key: Mapping[str, Any],
                                now_ms: int) -> None:
    await tx.execute(_SET_CROSS_SIGNING, (user_id, usage, public_key, _dump(key), now_ms))


async def cross_signing_key_in_use_tx(tx: Transaction, public_key: str) -> bool:
    """Whether any user's cross-signing key has this public key."""
    return await tx.fetchone("SELECT 1 FROM e2e_cross_signing_keys WHERE public_key = ?", (public_key,)) is not None


async def insert_signatures(tx: Transaction, signatures: Iterable[Signature]) -> None:
    await tx.executemany(_INSERT_SIGNATURE, [(s.signer_user_id, s.signer_key_id, s.target_user_id,
                                              s.target_key_id, s.signature) for s in signatures])


async def get_signatures_of_user(db: Database, user_id: str) -> list[Signature]:
    """Every stored signature of any key of `user_id` (devices and master key)."""
    return [Signature(*r) for r in await db.fetchall(_SIGNATURES_OF_USER, (user_id,))]
