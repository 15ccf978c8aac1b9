"""Stored filters, numbered per user.

Spec: client-server-api, "Filtering".
"""
from __future__ import annotations

import json
from typing import Any

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction


async def insert_filter(tx: Transaction, user_id: str, filter_json: Any) -> int:
    row = await tx.fetchone("SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = ?",
                            (user_id,))
    filter_id = int(row[0]) if row else 0
    await tx.execute("INSERT INTO filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)",
                     (user_id, filter_id, json.dumps(filter_json, ensure_ascii=False)))
    return filter_id


async def get_filter(db: Database, user_id: str, filter_id: int) -> Any | None:
    row = await db.fetchone("SELECT filter_json FROM filters WHERE user_id = ? AND filter_id = ?",
                            (user_id, filter_id))
    return json.loads(row[0]) if row else None
