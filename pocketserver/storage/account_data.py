"""Global and per-room account data, each change at a new stream position.

Spec: client-server-api, "Client Config".
"""
from __future__ import annotations

import json
from typing import Any

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

STREAM = "account_data"
GLOBAL = ""


async def set_account_data(tx: Transaction, user_id: str, room_id: str, data_type: str,
                           content: Any) -> int:
    position = await tx.next_stream_position(STREAM)
    await tx.execute(
        "INSERT INTO account_data (user_id, room_id, type, content_json, stream_position) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, room_id, type) DO UPDATE SET "
        "content_json = excluded.content_json, stream_position = excluded.stream_position",
        (user_id, room_id, data_type, json.dumps(content, ensure_ascii=False), position))
    tx.changes.users.add(user_id)
    return position


async def get_account_data_tx(tx: Transaction, user_id: str, room_id: str, data_type: str) -> Any | None:
    """The stored content, read inside a write job (for a read-modify-write that nothing can interleave)."""
    row = await tx.fetchone("SELECT content_json FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
                            (user_id, room_id, data_type))
    return json.loads(row[0]) if row else None


async def get_account_data(db: Database, user_id: str, room_id: str, data_type: str) -> Any | None:
    row = await db.fetchone("SELECT content_json FROM account_data "
                            "WHERE user_id = ? AND room_id = ? AND type = ?",
                            (user_id, room_id, data_type))
    return json.loads(row[0]) if row else None


async def get_room_account_data(db: Database, user_id: str, room_id: str) -> list[tuple[str, Any]]:
    """(type, content) of the user's account data for one room."""
    rows = await db.fetchall("SELECT type, content_json FROM account_data WHERE user_id = ? AND room_id = ? "
                             "ORDER BY stream_position", (user_id, room_id))
    return [(r[0], json.loads(r[1])) for r in rows]


async def get_room_tags(db: Database, user_id: str) -> dict[str, frozenset[str]]:
    """room_id -> the names of the user's tags on it (its m.tag room account data)."""
    rows = await db.fetchall("SELECT room_id, content_json FROM account_data WHERE user_id = ? AND type = 'm.tag' "
                             "AND room_id != ''", (user_id,))
    return {room_id: tag_names(json.loads(raw)) for room_id, raw in rows}


def tags_of(content: Any) -> dict[str, Any]:
    """The tags (name -> tag object) in an m.tag event's content. Spec: client-server-api, "Room Tagging"."""
    tags = content.get("tags") if isinstance(content, dict) else None
    return dict(tags) if isinstance(tags, dict) else {}


def tag_names(content: Any) -> frozenset[str]:
    return frozenset(tags_of(content))


async def get_account_data_since(db: Database, user_id: str, after: int, upto: int) -> list[tuple[str, str, Any]]:
    """(room_id, type, content) of the user's account data changed in (after, upto]."""
    if after >= upto:
        return []
    rows = await db.fetchall("SELECT room_id, type, content_json FROM account_data WHERE user_id = ? "
                             "AND stream_position > ? AND stream_position <= ? ORDER BY stream_position",
                             (user_id, after, upto))
    return [(r[0], r[1], json.loads(r[2])) for r in rows]
