"""Server-side key backups: backup versions and the room keys stored in them.

Spec: client-server-api, "Server-side key backups".
"""
from __future__ import annotations

import json
from typing import Any, NamedTuple

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction


class BackupVersion(NamedTuple):
    version: int
    algorithm: str
    auth_data: dict[str, Any]
    etag: int


class RoomKey(NamedTuple):
    """One backed-up Megolm session: KeyBackupData."""

    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: dict[str, Any]

    def body(self) -> dict[str, Any]:
        return {"first_message_index": self.first_message_index, "forwarded_count": self.forwarded_count,
                "is_verified": self.is_verified, "session_data": self.session_data}


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_CURRENT = """SELECT version, algorithm, auth_data_json, etag FROM e2e_room_keys_versions
WHERE user_id = ? AND deleted = 0 ORDER BY version DESC LIMIT 1"""
_ONE = """SELECT version, algorithm, auth_data_json, etag FROM e2e_room_keys_versions
WHERE user_id = ? AND version = ? AND deleted = 0"""
_NEXT_VERSION = "SELECT COALESCE(MAX(version), 0) + 1 FROM e2e_room_keys_versions WHERE user_id = ?"
_INSERT_VERSION = """INSERT INTO e2e_room_keys_versions (user_id, version, algorithm, auth_data_json)
VALUES (?, ?, ?, ?)"""
_COUNT = "SELECT COUNT(*) FROM e2e_room_keys WHERE user_id = ? AND version = ?"
_GET_KEY = """SELECT first_message_index, forwarded_count, is_verified, session_data_json FROM e2e_room_keys
WHERE user_id = ? AND version = ? AND room_id = ? AND session_id = ?"""
_PUT_KEY = """INSERT INTO e2e_room_keys (user_id, version, room_id, session_id, first_message_index,
forwarded_count, is_verified, session_data_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count,
is_verified = excluded.is_verified, session_data_json = excluded.session_data_json"""
_KEY_COLUMNS = "room_id, session_id, first_message_index, forwarded_count, is_verified, session_data_json"


def _version(row: Any) -> BackupVersion:
    return BackupVersion(row[0], row[1], json.loads(row[2]), row[3])


async def get_current_version(db: Database, user_id: str) -> BackupVersion | None:
    row = await db.fetchone(_CURRENT, (user_id,))
    return _version(row) if row else None


async def get_current_version_tx(tx: Transaction, user_id: str) -> BackupVersion | None:
    row = await tx.fetchone(_CURRENT, (user_id,))
    return _version(row) if row else None


async def get_version(db: Database, user_id: str, version: int) -> BackupVersion | None:
    row = await db.fetchone(_ONE, (user_id, version))
    return _version(row) if row else None


async def get_version_tx(tx: Transaction, user_id: str, version: int) -> BackupVersion | None:
    row = await tx.fetchone(_ONE, (user_id, version))
    return _version(row) if row else None


async def insert_version(tx: Transaction, user_id: str, algorithm: str, auth_data: dict[str, Any]) -> int:
    """Create the next backup version (versions are never reused, even after deletion)."""
    row = await tx.fetchone(_NEXT_VERSION, (user_id,))
    assert row is not None
    version = int(row[0])
    await tx.execute(_INSERT_VERSION, (user_id, version, algorithm, _dump(auth_data)))
    return version


async def set_auth_data(tx: Transaction, user_id: str, version: int, auth_data: dict[str, Any]) -> None:
    await tx.execute("UPDATE e2e_room_keys_versions SET auth_data_json = ? WHERE user_id = ? AND version = ?",
                     (_dump(auth_data), user_id, version))


async def delete_version(tx: Transaction, user_id: str, version: int) -> bool:
    cur = await tx.execute("UPDATE e2e_room_keys_versions SET deleted = 1 WHERE user_id = ? AND version = ? "
                           "AND deleted = 0", (user_id, version))
    await tx.execute("DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?", (user_id, version))
    return cur.rowcount > 0


async def bump_etag(tx: Transaction, user_id: str, version: int) -> None:
    await tx.execute("UPDATE e2e_room_keys_versions SET etag = etag + 1 WHERE user_id = ? AND version = ?",
                     (user_id, version))


async def count_keys(db: Database, user_id: str, version: int) -> int:
    row = await db.fetchone(_COUNT, (user_id, version))
    return int(row[0]) if row else 0


async def count_keys_tx(tx: Transaction, user_id: str, version: int) -> int:
    row = await tx.fetchone(_COUNT, (user_id, version))
    return int(row[0]) if row else 0


def _key(row: Any) -> RoomKey:
    return RoomKey(row[0], row[1], bool(row[2]), json.loads(row[3]))


async def get_room_key_tx(tx: Transaction, user_id: str, version: int, room_id: str, session_id: str) -> RoomKey | None:
    row = await tx.fetchone(_GET_KEY, (user_id, version, room_id, session_id))
    return _key(row) if row else None


async def put_room_key(tx: Transaction, user_id: str, version: int, room_id: str, session_id: str,
                       key: RoomKey) -> None:
    await tx.execute(_PUT_KEY, (user_id, version, room_id, session_id, key.first_message_index,
                                key.forwarded_count, int(key.is_verified), _dump(key.session_data)))


def _scope(user_id: str, version: int, room_id: str | None, session_id: str | None) -> tuple[str, list[Any]]:
    """The WHERE clause selecting a backup's keys, or one room's, or one session's."""
    where, params = "user_id = ? AND version = ?", [user_id, version]
    if room_id is not None:
        where, params = where + " AND room_id = ?", params + [room_id]
        if session_id is not None:
            where, params = where + " AND session_id = ?", params + [session_id]
    return where, params


async def get_room_keys(db: Database, user_id: str, version: int, room_id: str | None = None,
                        session_id: str | None = None) -> list[tuple[str, str, RoomKey]]:
    """(room_id, session_id, key) rows of a backup, optionally of one room or one session."""
    where, params = _scope(user_id, version, room_id, session_id)
    rows = await db.fetchall(f"SELECT {_KEY_COLUMNS} FROM e2e_room_keys WHERE {where}", params)
    return [(r[0], r[1], _key(r[2:])) for r in rows]


async def delete_room_keys(tx: Transaction, user_id: str, version: int, room_id: str | None = None,
                           session_id: str | None = None) -> int:
    """Delete a backup's keys, optionally of one room or one session; returns how many went."""
    where, params = _scope(user_id, version, room_id, session_id)
    cur = await tx.execute(f"DELETE FROM e2e_room_keys WHERE {where}", params)
    return cur.rowcount
