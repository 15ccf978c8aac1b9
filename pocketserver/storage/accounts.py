"""Users, devices, access tokens and refresh tokens.

Spec: client-server-api, "Client Authentication", "Device management".
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pocketserver.storage.database import Database, in_chunks
from pocketserver.storage.writer import Transaction


class UserRow(NamedTuple):
    user_id: str
    password_hash: str | None
    admin: bool
    is_guest: bool
    deactivated: bool
    created_ts: int
    locked: bool
    suspended: bool


class TokenOwner(NamedTuple):
    user_id: str
    device_id: str
    is_guest: bool
    expires_ts: int | None
    refresh_token_id: int | None
    locked: bool
    suspended: bool


class DeviceRow(NamedTuple):
    device_id: str
    display_name: str | None
    last_seen_ip: str | None
    last_seen_ts: int | None


_GET_USER = """SELECT user_id, password_hash, admin, is_guest, deactivated, created_ts, locked, suspended
FROM users WHERE user_id = ?"""
_INSERT_USER = """INSERT INTO users (user_id, password_hash, admin, is_guest, user_type, created_ts)
VALUES (?, ?, ?, ?, ?, ?)"""
_LIST_USERS = """SELECT user_id, password_hash, admin, is_guest, deactivated, created_ts, locked, suspended
FROM users ORDER BY user_id"""
_SET_PASSWORD = "UPDATE users SET password_hash = ? WHERE user_id = ?"
_DEACTIVATE = "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?"
_GET_TOKEN_OWNER = """SELECT t.user_id, t.device_id, u.is_guest, t.expires_ts, t.refresh_token_id, u.locked,
u.suspended FROM access_tokens t JOIN users u ON u.user_id = t.user_id
WHERE t.token_hash = ? AND u.deactivated = 0"""
_UPSERT_DEVICE = """INSERT INTO devices (user_id, device_id, display_name, created_ts)
VALUES (?, ?, ?, ?)
ON CONFLICT (user_id, device_id) DO UPDATE
SET display_name = COALESCE(excluded.display_name, devices.display_name)"""
_INSERT_ACCESS_TOKEN = """INSERT INTO access_tokens
(token_hash, user_id, device_id, created_ts, expires_ts, refresh_token_id) VALUES (?, ?, ?, ?, ?, ?)"""
_INSERT_REFRESH_TOKEN = """INSERT INTO refresh_tokens (token_hash, user_id, device_id, created_ts)
VALUES (?, ?, ?, ?) RETURNING id"""
_GET_REFRESH_TOKEN = """SELECT r.id, r.user_id, r.device_id, r.next_token_id, u.locked
FROM refresh_tokens r JOIN users u ON u.user_id = r.user_id
WHERE r.token_hash = ? AND u.deactivated = 0"""
_SET_NEXT_REFRESH = "UPDATE refresh_tokens SET next_token_id = ? WHERE id = ?"
_DELETE_ACCESS_TOKENS_OF_REFRESH = "DELETE FROM access_tokens WHERE refresh_token_id = ?"
_DELETE_REFRESH_TOKEN = "DELETE FROM refresh_tokens WHERE id = ?"
_DELETE_ACCESS_TOKENS_OF_DEVICE = "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?"
_DELETE_REFRESH_TOKENS_OF_DEVICE = "DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?"
_DELETE_DEVICE = "DELETE FROM devices WHERE user_id = ? AND device_id = ?"
_LIST_DEVICES = """SELECT device_id, display_name, last_seen_ip, last_seen_ts
FROM devices WHERE user_id = ? ORDER BY device_id"""
_GET_DEVICE = """SELECT device_id, display_name, last_seen_ip, last_seen_ts
FROM devices WHERE user_id = ? AND device_id = ?"""
_SET_DEVICE_NAME = "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?"
_SET_LAST_SEEN = """UPDATE devices SET last_seen_ip = ?, last_seen_ts = ?
WHERE user_id = ? AND device_id = ? AND (last_seen_ts IS NULL OR last_seen_ts < ?)"""


def _user(row) -> UserRow:
    return UserRow(row[0], row[1], bool(row[2]), bool(row[3]), bool(row[4]), row[5], bool(row[6]), bool(row[7]))


async def get_user(db: Database, user_id: str) -> UserRow | None:
    row = await db.fetchone(_GET_USER, (user_id,))
    return _user(row) if row else None


async def get_user_tx(tx: Transaction, user_id: str) -> UserRow | None:
    row = await tx.fetchone(_GET_USER, (user_id,))
    return _user(row) if row else None


async def guests_among(db: Database, user_ids: Iterable[str]) -> list[str]:
    """Which of `user_ids` are guest accounts."""
    guests: list[str] = []
    for chunk, marks in in_chunks(user_ids):
        rows = await db.fetchall(f"SELECT user_id FROM users WHERE is_guest = 1 AND user_id IN ({marks})", chunk)
        guests += (r[0] for r in rows)
    return guests


async def deactivated_users_in_rooms(db: Database) -> list[str]:
    """Deactivated accounts that are still joined to, invited to or knocking on a room."""
    rows = await db.fetchall("SELECT u.user_id FROM users AS u WHERE u.deactivated = 1 AND EXISTS ("
                             "SELECT 1 FROM local_membership AS m WHERE m.user_id = u.user_id "
                             "AND m.membership IN ('join', 'invite', 'knock'))")
    return [r[0] for r in rows]


async def list_users(db: Database) -> list[UserRow]:
    return [_user(r) for r in await db.fetchall(_LIST_USERS)]


async def insert_user(tx: Transaction, user_id: str, password_hash: str | None, *, admin: bool,
                      is_guest: bool, user_type: str | None, now_ms: int) -> None:
    await tx.execute(_INSERT_USER, (user_id, password_hash, int(admin), int(is_guest), user_type, now_ms))


async def set_password_hash(tx: Transaction, user_id: str, password_hash: str) -> None:
    await tx.execute(_SET_PASSWORD, (password_hash, user_id))


async def deactivate_user(tx: Transaction, user_id: str) -> None:
    """Mark the user deactivated and remove every device and token."""
    await tx.execute(_DEACTIVATE, (user_id,))
    await tx.execute("DELETE FROM access_tokens WHERE user_id = ?", (user_id,))
    await tx.execute("DELETE FROM refresh_tokens WHERE user_id = ?", (user_id,))
    await tx.execute("DELETE FROM devices WHERE user_id = ?", (user_id,))


async def set_moderation(tx: Transaction, user_id: str, *, locked: bool | None = None,
                         suspended: bool | None = None) -> None:
    """Lock or unlock, suspend or unsuspend an account (None: leave as it is). A lock wakes the
    user's waiting /sync long-polls, which then answer M_USER_LOCKED at once."""
    if locked is not None:
        await tx.execute("UPDATE users SET locked = ? WHERE user_id = ?", (int(locked), user_id))
        tx.changes.users.add(user_id)
    if suspended is not None:
        await tx.execute("UPDATE users SET suspended = ? WHERE user_id = ?", (int(suspended), user_id))


def is_locked(db: Database, user_id: str) -> bool:
    """Whether the account is locked (a primary-key look-up on the event loop's thread)."""
    row = db.lookup("SELECT locked FROM users WHERE user_id = ?", (user_id,))
    return bool(row and row[0])


def get_token_owner(db: Database, token_hash: bytes) -> TokenOwner | None:
    """Who holds an access token (a primary-key look-up, done synchronously: it runs per request)."""
    row = db.lookup(_GET_TOKEN_OWNER, (token_hash,))
    return TokenOwner(row[0], row[1], bool(row[2]), row[3], row[4], bool(row[5]), bool(row[6])) if row else None


async def count_devices_tx(tx: Transaction, user_id: str, device_id: str) -> tuple[int, bool]:
    """How many devices the user has, and whether `device_id` is one of them."""
    row = await tx.fetchone("SELECT COUNT(*), COALESCE(SUM(device_id = ?), 0) FROM devices WHERE user_id = ?",
                            (device_id, user_id))
    return (int(row[0]), bool(row[1])) if row else (0, False)


async def upsert_device(tx: Transaction, user_id: str, device_id: str, display_name: str | None,
                        now_ms: int) -> None:
    await tx.execute(_UPSERT_DEVICE, (user_id, device_id, display_name, now_ms))


async def insert_access_token(tx: Transaction, token_hash: bytes, user_id: str, device_id: str,
                              now_ms: int, expires_ts: int | None,
                              refresh_token_id: int | None) -> None:
    await tx.execute(_INSERT_ACCESS_TOKEN,
                     (token_hash, user_id, device_id, now_ms, expires_ts, refresh_token_id))


async def insert_refresh_token(tx: Transaction, token_hash: bytes, user_id: str, device_id: str,
                               now_ms: int) -> int:
    row = await tx.fetchone(_INSERT_REFRESH_TOKEN, (token_hash, user_id, device_id, now_ms))
    assert row is not None
    return int(row[0])


async def get_refresh_token(tx: Transaction, token_hash: bytes) -> tuple[int, str, str, int | None, bool] | None:
    """(id, user_id, device_id, next_token_id, whether the account is locked) of a refresh token."""
    row = await tx.fetchone(_GET_REFRESH_TOKEN, (token_hash,))
    return (row[0], row[1], row[2], row[3], bool(row[4])) if row else None


async def retire_refresh_token(tx: Transaction, old_id: int, new_id: int) -> None:
    """Point the old refresh token at its successor and drop the access tokens it issued."""
    await tx.execute(_SET_NEXT_REFRESH, (new_id, old_id))
    await tx.execute(_DELETE_ACCESS_TOKENS_OF_REFRESH, (old_id,))


def has_predecessor(db: Database, token_id: int) -> bool:
    """Whether the refresh token this one replaced is still kept (its successor not yet in use)."""
    return db.lookup("SELECT 1 FROM refresh_tokens WHERE next_token_id = ?", (token_id,)) is not None


async def revoke_predecessor(tx: Transaction, token_id: int) -> None:
    """Delete the refresh token this one replaced: the client has used the new pair."""
    await tx.execute("DELETE FROM refresh_tokens WHERE next_token_id = ?", (token_id,))


async def delete_refresh_token(tx: Transaction, token_id: int) -> None:
    await tx.execute(_DELETE_ACCESS_TOKENS_OF_REFRESH, (token_id,))
    await tx.execute(_DELETE_REFRESH_TOKEN, (token_id,))


async def delete_device(tx: Transaction, user_id: str, device_id: str) -> None:
    """Delete a device with its access and refresh tokens."""
    await tx.execute(_DELETE_ACCESS_TOKENS_OF_DEVICE, (user_id, device_id))
    await tx.execute(_DELETE_REFRESH_TOKENS_OF_DEVICE, (user_id, device_id))
    await tx.execute(_DELETE_DEVICE, (user_id, device_id))


async def list_device_ids_tx(tx: Transaction, user_id: str) -> list[str]:
    return [r[0] for r in await tx.fetchall("SELECT device_id FROM devices WHERE user_id = ?", (user_id,))]


async def list_devices(db: Database, user_id: str) -> list[DeviceRow]:
    return [DeviceRow(*r) for r in await db.fetchall(_LIST_DEVICES, (user_id,))]


async def get_device(db: Database, user_id: str, device_id: str) -> DeviceRow | None:
    row = await db.fetchone(_GET_DEVICE, (user_id, device_id))
    return DeviceRow(*row) if row else None


async def set_device_display_name(tx: Transaction, user_id: str, device_id: str, name: str) -> bool:
    cur = await tx.execute(_SET_DEVICE_NAME, (name, user_id, device_id))
    return cur.rowcount > 0


async def set_last_seen(tx: Transaction, rows: list[tuple[str, str, str, int]]) -> None:
    """Record (user_id, device_id, ip, ts) rows, never moving last_seen_ts backwards."""
    await tx.executemany(_SET_LAST_SEEN, [(ip, ts, u, d, ts) for u, d, ip, ts in rows])
