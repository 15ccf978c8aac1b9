"""Receipts at positions of the "receipts" stream, and the lazily written presence table.

Presence lives here too because it is the other persisted part of the ephemeral data (receipts,
typing, presence); it has one table and two statements.
Spec: client-server-api, "Receipts" and "Presence".
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pocketserver.storage.database import Database, in_chunks
from pocketserver.storage.writer import Transaction

STREAM = "receipts"
PRIVATE_TYPES = frozenset({"m.read.private"})


class Receipt(NamedTuple):
    room_id: str
    receipt_type: str
    user_id: str
    thread_id: str | None
    event_id: str
    data: Mapping[str, Any]
    stream_position: int


class ReceiptTarget(NamedTuple):
    """What a receipt needs to know about the event it points at."""

    event_id: str
    room_id: str
    stream_ordering: int
    relates_to: str | None
    rel_type: str | None


_GET_EXISTING = """
SELECT event_stream_ordering FROM receipts
WHERE room_id = ? AND receipt_type = ? AND user_id = ? AND thread_id = ?
"""

_UPSERT = """
INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, event_stream_ordering, data_json,
                      stream_position)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET
    event_id = excluded.event_id, event_stream_ordering = excluded.event_stream_ordering,
    data_json = excluded.data_json, stream_position = excluded.stream_position
"""

_GET_TARGET = "SELECT event_id, room_id, stream_ordering, relates_to, rel_type FROM events WHERE event_id = ?"


async def insert_receipt(tx: Transaction, room_id: str, receipt_type: str, user_id: str, thread_id: str | None,
                         event_id: str, event_stream_ordering: int, data: Mapping[str, Any]) -> int | None:
    """Store a receipt at a new stream position unless the existing one is at a later or the same event.

    Returns the position, or None when the receipt would have moved backwards and was ignored.
    """
    key = (room_id, receipt_type, user_id, thread_id or "")
    existing = await tx.fetchone(_GET_EXISTING, key)
    if existing is not None and existing[0] >= event_stream_ordering:
        return None
    position = await tx.next_stream_position(STREAM)
    await tx.execute(_UPSERT, (*key, event_id, event_stream_ordering,
                               json.dumps(dict(data), ensure_ascii=False), position))
    if receipt_type in PRIVATE_TYPES:
        tx.changes.users.add(user_id)
    else:
        tx.changes.rooms.add(room_id)
    return position


async def get_receipts(db: Database, room_ids: Iterable[str], *, after: int, upto: int) -> list[Receipt]:
    """The receipts of `room_ids` whose latest change is in (after, upto], oldest change first."""
    out: list[Receipt] = []
    for chunk, marks in in_chunks(room_ids):
        rows = await db.fetchall(
            f"SELECT room_id, receipt_type, user_id, thread_id, event_id, data_json, stream_position FROM receipts "
            f"WHERE room_id IN ({marks}) AND stream_position > ? AND stream_position <= ? "
            f"ORDER BY stream_position", (*chunk, after, upto))
        out += [Receipt(r[0], r[1], r[2], r[3] or None, r[4], json.loads(r[5]), r[6]) for r in rows]
    return out


def get_receipt_target(db: Database, event_id: str) -> ReceiptTarget | None:
    """The event a receipt points at, by its unique ID: read on the event loop's thread (`lookup`)."""
    row = db.lookup(_GET_TARGET, (event_id,))
    return ReceiptTarget(row[0], row[1], row[2], row[3], row[4]) if row else None


async def get_receipt_target_tx(tx: Transaction, event_id: str) -> ReceiptTarget | None:
    row = await tx.fetchone(_GET_TARGET, (event_id,))
    return ReceiptTarget(row[0], row[1], row[2], row[3], row[4]) if row else None


async def get_fully_read_tx(tx: Transaction, user_id: str, room_id: str) -> str | None:
    """The event ID of the user's m.fully_read marker in the room (room account data), if any."""
    row = await tx.fetchone("SELECT content_json FROM account_data WHERE user_id = ? AND room_id = ? "
                            "AND type = 'm.fully_read'", (user_id, room_id))
    content = json.loads(row[0]) if row else None
    event_id = content.get("event_id") if isinstance(content, dict) else None
    return event_id if isinstance(event_id, str) else None


class PresenceRow(NamedTuple):
    user_id: str
    presence: str
    status_msg: str | None
    last_active_ts: int
    stream_position: int


_UPSERT_PRESENCE = """
INSERT INTO presence (user_id, presence, status_msg, last_active_ts, stream_position) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, status_msg = excluded.status_msg,
    last_active_ts = excluded.last_active_ts, stream_position = excluded.stream_position
"""


async def insert_presence(tx: Transaction, rows: Iterable[PresenceRow]) -> None:
    await tx.executemany(_UPSERT_PRESENCE, [(r.user_id, r.presence, r.status_msg, r.last_active_ts,
                                             r.stream_position) for r in rows])


async def get_all_presence(db: Database) -> list[PresenceRow]:
    rows = await db.fetchall("SELECT user_id, presence, status_msg, last_active_ts, stream_position FROM presence")
    return [PresenceRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]
