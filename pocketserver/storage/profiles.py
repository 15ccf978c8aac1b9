"""Profile fields of local users (displayname, avatar_url, m.tz and custom keys).

Spec: client-server-api, "Profiles".
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pocketserver.storage.database import Database
from pocketserver.storage.writer import Transaction


async def get_profile(db: Database, user_id: str) -> dict[str, Any]:
    rows = await db.fetchall("SELECT field, value_json FROM profiles WHERE user_id = ?", (user_id,))
    return {r[0]: json.loads(r[1]) for r in rows}


def member_event_fields(profile: Mapping[str, Any]) -> dict[str, str]:
    """The profile fields a member event carries: displayname and avatar_url, when set.

    Spec: client-server-api, "m.room.member".
    """
    return {k: profile[k] for k in ("displayname", "avatar_url") if isinstance(profile.get(k), str) and profile[k]}


async def get_profile_tx(tx: Transaction, user_id: str) -> dict[str, Any]:
    rows = await tx.fetchall("SELECT field, value_json FROM profiles WHERE user_id = ?", (user_id,))
    return {r[0]: json.loads(r[1]) for r in rows}


async def set_profile_field(tx: Transaction, user_id: str, field: str, value: Any) -> None:
    await tx.execute("INSERT INTO profiles (user_id, field, value_json) VALUES (?, ?, ?) "
                     "ON CONFLICT (user_id, field) DO UPDATE SET value_json = excluded.value_json",
                     (user_id, field, json.dumps(value, ensure_ascii=False)))


async def delete_profile_field(tx: Transaction, user_id: str, field: str) -> None:
    await tx.execute("DELETE FROM profiles WHERE user_id = ? AND field = ?", (user_id, field))


async def delete_profile(tx: Transaction, user_id: str) -> None:
    await tx.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,))
