"""Reports of content (events, rooms, users) that users send to the server admin.

Spec: client-server-api, "Reporting content".
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction

_INSERT_REPORT = """INSERT INTO reports (kind, room_id, event_id, target_user_id, reporter, reason, content, received_ts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"""
_GET_REPORTS = """SELECT id, kind, room_id, event_id, target_user_id, reporter, reason, content, received_ts
FROM reports WHERE id > ? ORDER BY id LIMIT ?"""


class Report(NamedTuple):
    id: int
    kind: str
    room_id: str | None
    event_id: str | None
    target_user_id: str | None
    reporter: str
    reason: str | None
    content: dict[str, Any]
    received_ts: int


async def insert_report(tx: Transaction, *, kind: str, reporter: str, content: Mapping[str, Any], received_ts: int,
                        room_id: str | None = None, event_id: str | None = None,
                        target_user_id: str | None = None) -> int:
    reason = content.get("reason")
    row = await tx.fetchone(_INSERT_REPORT, (kind, room_id, event_id, target_user_id, reporter,
                                             reason if isinstance(reason, str) else None,
                                             json.dumps(dict(content), ensure_ascii=False), received_ts))
    assert row is not None
    return int(row[0])


async def get_reports(db: Database, *, after: int = 0, limit: int = 100) -> list[Report]:
    """Reports in the order they arrived, for the admin."""
    rows = await db.fetchall(_GET_REPORTS, (after, limit))
    return [Report(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8]) for r in rows]
