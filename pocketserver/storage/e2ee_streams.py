"""The "device_lists" and "to_device" streams: device-list changes and send-to-device messages.

Spec: client-server-api, "Tracking the device list for a user", "Send-to-Device messaging".
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

DEVICE_LISTS_STREAM = "device_lists"
TO_DEVICE_STREAM = "to_device"

# Every user (local, joined) who shares a joined room with ?, including that user.
_USERS_SHARING_ROOMS = """SELECT DISTINCT other.user_id FROM local_membership mine
JOIN local_membership other ON other.room_id = mine.room_id AND other.membership = 'join'
WHERE mine.user_id = ? AND mine.membership = 'join'"""
# Every local user who shares a joined room other than the second ? with the first ?.
_USERS_SHARING_OTHER_ROOMS = _USERS_SHARING_ROOMS + " AND mine.room_id != ?"
_JOINED_MEMBERS = """SELECT state_key FROM current_state
WHERE room_id = ? AND type = 'm.room.member' AND membership = 'join'"""
_CHANGED_USERS = """SELECT DISTINCT user_id FROM device_list_changes WHERE position > ? AND position <= ?"""
_OBSERVATIONS = """SELECT subject, kind FROM device_list_observations
WHERE observer = ? AND position > ? AND position <= ? ORDER BY position"""


async def get_users_sharing_rooms(db: Database, user_id: str) -> set[str]:
    return {r[0] for r in await db.fetchall(_USERS_SHARING_ROOMS, (user_id,))} | {user_id}


async def get_users_sharing_rooms_tx(tx: Transaction, user_id: str) -> set[str]:
    return {r[0] for r in await tx.fetchall(_USERS_SHARING_ROOMS, (user_id,))} | {user_id}


async def get_users_sharing_other_rooms_tx(tx: Transaction, user_id: str, room_id: str) -> set[str]:
    return {r[0] for r in await tx.fetchall(_USERS_SHARING_OTHER_ROOMS, (user_id, room_id))}


async def get_joined_members_tx(tx: Transaction, room_id: str) -> set[str]:
    return {r[0] for r in await tx.fetchall(_JOINED_MEMBERS, (room_id,))}


async def get_local_membership_tx(tx: Transaction, user_id: str, room_id: str) -> str | None:
    row = await tx.fetchone("SELECT membership FROM local_membership WHERE user_id = ? AND room_id = ?",
                            (user_id, room_id))
    return row[0] if row else None


async def insert_device_list_change(tx: Transaction, position: int, user_id: str) -> None:
    """Store that `user_id`'s devices changed at `position`, in place of the user's earlier change.

    Whoever asks about a stretch that ends at or after `position` learns of the user from this row;
    only a stretch ending before it (a sync computed just before this commit) misses the earlier
    one, and its next sync reports this one. So the stream holds a row per user, not per change
    (Synapse keeps the latest change of each of a user's devices). GET /keys/changes, whose `to`
    may lie in the past, reads on to now for that reason (e2ee/device_lists.py).
    """
    await tx.execute("""INSERT INTO device_list_changes (position, user_id) VALUES (?, ?)
                        ON CONFLICT (user_id) DO UPDATE SET position = excluded.position""", (position, user_id))


async def insert_observations(tx: Transaction, position: int, rows: Iterable[tuple[str, str, str]]) -> None:
    """Store (observer, subject, kind) rows at one position, each in place of an earlier row of the
    same observer, subject and kind (which it supersedes, as in insert_device_list_change)."""
    await tx.executemany("""INSERT INTO device_list_observations (position, observer, subject, kind) VALUES (?, ?, ?, ?)
                            ON CONFLICT (observer, subject, kind) DO UPDATE SET position = excluded.position""",
                         [(position, o, s, k) for o, s, k in rows])


async def get_changed_users(db: Database, after: int, upto: int) -> set[str]:
    """Users whose devices or keys changed in (after, upto]."""
    return {r[0] for r in await db.fetchall(_CHANGED_USERS, (after, upto))}


async def get_observations(db: Database, observer: str, after: int, upto: int) -> list[tuple[str, str]]:
    """(subject, kind) rows addressed to `observer` in (after, upto], oldest first."""
    return [(r[0], r[1]) for r in await db.fetchall(_OBSERVATIONS, (observer, after, upto))]


# Send-to-device

_TXN_SEEN = "SELECT 1 FROM to_device_txns WHERE user_id = ? AND device_id = ? AND txn_id = ?"
_INSERT_TXN = "INSERT INTO to_device_txns (user_id, device_id, txn_id, received_ts) VALUES (?, ?, ?, ?)"
_INSERT_MESSAGE = "INSERT INTO to_device_inbox (position, user_id, device_id, message_json) VALUES (?, ?, ?, ?)"
_PENDING = """SELECT position, message_json FROM to_device_inbox
WHERE user_id = ? AND device_id = ? AND position <= ? ORDER BY position LIMIT ?"""
_HAS_MESSAGES = "SELECT 1 FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND position <= ? LIMIT 1"
_DELETE_ACKNOWLEDGED = "DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND position <= ?"


async def to_device_txn_seen(tx: Transaction, user_id: str, device_id: str, txn_id: str) -> bool:
    return await tx.fetchone(_TXN_SEEN, (user_id, device_id, txn_id)) is not None


async def insert_to_device_txn(tx: Transaction, user_id: str, device_id: str, txn_id: str, now_ms: int) -> None:
    await tx.execute(_INSERT_TXN, (user_id, device_id, txn_id, now_ms))


async def insert_to_device_message(tx: Transaction, position: int, user_id: str, device_id: str,
                                   message: dict[str, Any]) -> None:
    await tx.execute(_INSERT_MESSAGE, (position, user_id, device_id,
                                       json.dumps(message, ensure_ascii=False, separators=(",", ":"))))


async def get_pending_messages(db: Database, user_id: str, device_id: str, upto: int,
                               limit: int) -> list[tuple[int, dict[str, Any]]]:
    """(position, message) of a device's pending messages up to `upto`, oldest first.

    An empty inbox, the usual case, is found by `has_messages` without a trip to a reader.
    """
    if not has_messages(db, user_id, device_id, upto):
        return []
    rows = await db.fetchall(_PENDING, (user_id, device_id, upto, limit))
    return [(r[0], json.loads(r[1])) for r in rows]


def has_messages(db: Database, user_id: str, device_id: str, upto: int) -> bool:
    """Whether the device's inbox holds a message at or before `upto`: one index probe on the event
    loop's thread, so the /sync of a device with nothing waiting makes no trip to a reader."""
    return db.lookup(_HAS_MESSAGES, (user_id, device_id, upto)) is not None


async def delete_acknowledged_messages(tx: Transaction, user_id: str, device_id: str, upto: int) -> None:
    await tx.execute(_DELETE_ACKNOWLEDGED, (user_id, device_id, upto))


async def delete_device_inbox(tx: Transaction, user_id: str, device_id: str) -> None:
    await tx.execute("DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ?", (user_id, device_id))
    await tx.execute("DELETE FROM to_device_txns WHERE user_id = ? AND device_id = ?", (user_id, device_id))
