"""Rooms, current state, local memberships and aliases.

Spec: client-server-api, "Rooms"; "Room aliases".
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

from pocketserver.storage.database import Database, in_chunks
from pocketserver.storage.writer import Transaction

StateKey = tuple[str, str]


class RoomRow(NamedTuple):
    room_id: str
    room_version: str
    creator: str
    is_public: bool


async def insert_room(tx: Transaction, room_id: str, room_version: str, creator: str, is_public: bool,
                      now_ms: int) -> None:
    await tx.execute("INSERT INTO rooms (room_id, room_version, creator, is_public, created_ts) VALUES (?, ?, ?, ?, ?)",
                     (room_id, room_version, creator, int(is_public), now_ms))


async def get_room(db: Database, room_id: str) -> RoomRow | None:
    row = await db.fetchone("SELECT room_id, room_version, creator, is_public FROM rooms WHERE room_id = ?", (room_id,))
    return RoomRow(row[0], row[1], row[2], bool(row[3])) if row else None


async def set_room_public(tx: Transaction, room_id: str, is_public: bool) -> None:
    await tx.execute("UPDATE rooms SET is_public = ? WHERE room_id = ?", (int(is_public), room_id))


async def list_public_rooms(db: Database) -> list[str]:
    return [r[0] for r in await db.fetchall("SELECT room_id FROM rooms WHERE is_public = 1 ORDER BY created_ts")]


async def update_current_state(tx: Transaction, room_id: str, changes: Iterable[tuple[StateKey, str, str | None]]) -> None:
    """Set ((type, state_key), event_id, membership) entries of the room's current state."""
    await tx.executemany(
        "INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id, "
        "membership = excluded.membership",
        [(room_id, t, sk, eid, m) for (t, sk), eid, m in changes])


async def get_current_state_ids(db: Database, room_id: str) -> dict[StateKey, str]:
    return (await get_current_state_ids_of(db, [room_id]))[room_id]


async def get_current_state_ids_of(db: Database, room_ids: Iterable[str]) -> dict[str, dict[StateKey, str]]:
    """`get_current_state_ids` of many rooms, in one read per 500 rooms."""
    out: dict[str, dict[StateKey, str]] = {}
    for chunk, marks in in_chunks(room_ids):
        for room_id in chunk:
            out[room_id] = {}
        rows = await db.fetchall(
            f"SELECT room_id, type, state_key, event_id FROM current_state WHERE room_id IN ({marks})", chunk)
        for room_id, event_type, state_key, event_id in rows:
            out[room_id][(event_type, state_key)] = event_id
    return out


async def get_members(db: Database, room_id: str, membership: str | None = None) -> dict[str, str]:
    """user_id -> membership of the room's current state, optionally only one membership."""
    if membership is None:
        rows = await db.fetchall("SELECT state_key, membership FROM current_state WHERE room_id = ? "
                                 "AND type = 'm.room.member'", (room_id,))
    else:
        rows = await db.fetchall("SELECT state_key, membership FROM current_state WHERE room_id = ? "
                                 "AND type = 'm.room.member' AND membership = ?", (room_id, membership))
    return {r[0]: r[1] for r in rows}


async def get_joined_users(db: Database, room_ids: Iterable[str]) -> set[str]:
    """Everyone joined to at least one of the rooms (current state), in one read per 500 rooms."""
    users: set[str] = set()
    for chunk, marks in in_chunks(room_ids):
        rows = await db.fetchall(f"SELECT DISTINCT state_key FROM current_state WHERE room_id IN ({marks}) "
                                 "AND type = 'm.room.member' AND membership = 'join'", chunk)
        users.update(r[0] for r in rows)
    return users


async def get_member_counts(db: Database, room_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """room_id -> (joined, invited) members in current state, for many rooms in one read per 500."""
    counts: dict[str, tuple[int, int]] = {}
    for chunk, marks in in_chunks(room_ids):
        rows = await db.fetchall(
            "SELECT room_id, SUM(membership = 'join'), SUM(membership = 'invite') FROM current_state "
            f"WHERE room_id IN ({marks}) AND type = 'm.room.member' GROUP BY room_id", chunk)
        counts.update((r[0], (r[1], r[2])) for r in rows)
    return counts


async def get_heroes(db: Database, room_ids: Iterable[str], user_id: str, limit: int) -> dict[str, list[str]]:
    """room_id -> the room's heroes: its first `limit` joined, then invited, members other than
    `user_id` by the stream order of their membership; when there are none, the users who left
    or were banned, in the same order. Spec: client-server-api, RoomSummary `m.heroes`.
    """
    out: dict[str, list[str]] = {}
    for chunk, marks in in_chunks(room_ids):
        rows = await db.fetchall(
            "SELECT room_id, state_key, membership FROM (SELECT c.room_id, c.state_key, c.membership, "
            "ROW_NUMBER() OVER (PARTITION BY c.room_id ORDER BY CASE c.membership WHEN 'join' THEN 0 "
            "WHEN 'invite' THEN 1 ELSE 2 END, e.stream_ordering) AS n FROM current_state AS c "
            "JOIN events AS e ON e.event_id = c.event_id "
            f"WHERE c.room_id IN ({marks}) AND c.type = 'm.room.member' "
            "AND c.membership IN ('join', 'invite', 'leave', 'ban') AND c.state_key != ?) "
            "WHERE n <= ? ORDER BY room_id, n", [*chunk, user_id, limit])
        members: dict[str, list[tuple[str, str]]] = {}
        for room_id, member, membership in rows:
            members.setdefault(room_id, []).append((member, membership))
        for room_id, found in members.items():
            present = [m for m, membership in found if membership in ("join", "invite")]
            out[room_id] = present or [m for m, _ in found]
    return out


async def get_rooms_ever_unshared(db: Database, room_ids: Iterable[str]) -> set[str]:
    """The rooms among `room_ids` with an m.room.history_visibility event, past or current, that
    says something other than shared or world_readable (one read per 500 rooms)."""
    out: set[str] = set()
    for chunk, marks in in_chunks(room_ids):
        rows = await db.fetchall(f"SELECT room_id, json FROM events WHERE room_id IN ({marks}) "
                                 "AND type = 'm.room.history_visibility' AND state_key = ''", chunk)
        out.update(room_id for room_id, raw in rows
                   if json.loads(raw).get("content", {}).get("history_visibility") not in ("shared", "world_readable"))
    return out


async def get_current_state_of_types(db: Database, room_ids: Iterable[str],
                                     event_types: Iterable[str]) -> dict[str, dict[str, str]]:
    """room_id -> {type: event_id} of the rooms' current state events of those types with state_key ""."""
    types = list(event_types)
    out: dict[str, dict[str, str]] = {}
    for chunk, marks in in_chunks(room_ids):
        rows = await db.fetchall(
            f"SELECT room_id, type, event_id FROM current_state WHERE room_id IN ({marks}) "
            f"AND type IN ({','.join('?' * len(types))}) AND state_key = ''", [*chunk, *types])
        for room_id, event_type, event_id in rows:
            out.setdefault(room_id, {})[event_type] = event_id
    return out


async def get_room_kinds(db: Database, room_ids: Iterable[str]) -> dict[str, tuple[str | None, int | None]]:
    """room_id -> (the room type in m.room.create's content, the stream position of the current
    m.room.encryption event, None when the room has none).

    From current state for all the rooms at once, without loading any room's whole state: a sliding
    sync connection's first response asks it of every room of the user. Spec: client-server-api,
    "Types" (m.room.create `type`), "m.room.encryption".
    """
    out: dict[str, tuple[str | None, int | None]] = {}
    for chunk, marks in in_chunks(room_ids):
        rows = await db.fetchall(
            "SELECT c.room_id, c.type, CASE json_type(e.json, '$.content.type') "
            "WHEN 'text' THEN json_extract(e.json, '$.content.type') END, e.stream_ordering "
            "FROM current_state AS c JOIN events AS e ON e.event_id = c.event_id "
            f"WHERE c.room_id IN ({marks}) AND c.type IN ('m.room.create', 'm.room.encryption') "
            "AND c.state_key = ''", chunk)
        for room_id, event_type, room_type, position in rows:
            kind, encryption = out.get(room_id, (None, None))
            out[room_id] = (room_type, encryption) if event_type == "m.room.create" else (kind, int(position))
    return out


async def get_users_sharing_a_room(db: Database, user_id: str) -> set[str]:
    """Everyone joined to a room a local user is joined to (the user too, when joined anywhere)."""
    rows = await db.fetchall(
        "SELECT DISTINCT c.state_key FROM local_membership AS l JOIN current_state AS c ON c.room_id = l.room_id "
        "AND c.type = 'm.room.member' AND c.membership = 'join' "
        "WHERE l.user_id = ? AND l.forgotten = 0 AND l.membership = 'join'", (user_id,))
    return {r[0] for r in rows}


async def set_local_membership(tx: Transaction, user_id: str, room_id: str, membership: str, event_id: str,
                               stream_ordering: int) -> None:
    await tx.execute(
        "INSERT INTO local_membership (user_id, room_id, membership, event_id, stream_ordering, forgotten) "
        "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (user_id, room_id) DO UPDATE SET membership = excluded.membership, "
        "event_id = excluded.event_id, stream_ordering = excluded.stream_ordering, forgotten = 0",
        (user_id, room_id, membership, event_id, stream_ordering))
    tx.changes.users.add(user_id)


async def get_local_membership(db: Database, user_id: str, room_id: str) -> tuple[str, str, int, bool] | None:
    """(membership, event_id, stream_ordering, forgotten) of a local user in a room."""
    row = await db.fetchone("SELECT membership, event_id, stream_ordering, forgotten FROM local_membership "
                            "WHERE user_id = ? AND room_id = ?", (user_id, room_id))
    return (row[0], row[1], row[2], bool(row[3])) if row else None


def lookup_local_membership(db: Database, user_id: str, room_id: str) -> tuple[str, str, int] | None:
    """(membership, event_id, stream_ordering) of a local user's latest member event in a room; a
    primary-key read on the event loop's thread (one per room whose events a request serializes)."""
    row = db.lookup("SELECT membership, event_id, stream_ordering FROM local_membership "
                    "WHERE user_id = ? AND room_id = ?", (user_id, room_id))
    return (row[0], row[1], row[2]) if row else None


async def get_rooms_for_user(db: Database, user_id: str, memberships: tuple[str, ...] = ("join",)) -> dict[str, tuple[str, str, int]]:
    """room_id -> (membership, event_id, stream_ordering) for a local user's rooms in those memberships.

    Read on the event loop's thread (`Database.lookup_all`): every /sync starts with it, and the
    user's rows are adjacent in the primary key. Measured: 0.02 ms for 10 rooms, 0.17 ms for 200,
    against 0.12 and 0.32 ms for a trip to a reader thread.
    """
    marks = ",".join("?" * len(memberships))
    rows = db.lookup_all(f"SELECT room_id, membership, event_id, stream_ordering FROM local_membership "
                         f"WHERE user_id = ? AND forgotten = 0 AND membership IN ({marks})", (user_id, *memberships))
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def get_mutual_rooms(db: Database, user_id: str, other_user_id: str) -> list[str]:
    """The rooms a local user and another user (local or not) are both joined to, by room ID."""
    rows = await db.fetchall(
        "SELECT mine.room_id FROM local_membership AS mine JOIN current_state AS theirs "
        "ON theirs.room_id = mine.room_id AND theirs.type = 'm.room.member' AND theirs.state_key = ? "
        "WHERE mine.user_id = ? AND mine.membership = 'join' AND theirs.membership = 'join' "
        "ORDER BY mine.room_id", (other_user_id, user_id))
    return [r[0] for r in rows]


async def count_joined_rooms(db: Database, user_id: str) -> int:
    """How many rooms a local user is joined to."""
    row = await db.fetchone("SELECT COUNT(*) FROM local_membership WHERE user_id = ? AND membership = 'join'",
                            (user_id,))
    return int(row[0]) if row else 0


async def forget_room(tx: Transaction, user_id: str, room_id: str) -> None:
    await tx.execute("UPDATE local_membership SET forgotten = 1 WHERE user_id = ? AND room_id = ?", (user_id, room_id))
    tx.changes.users.add(user_id)       # every change to a user's memberships wakes the user's syncs


async def get_alias(db: Database, alias: str) -> str | None:
    row = await db.fetchone("SELECT room_id FROM room_aliases WHERE alias = ?", (alias,))
    return row[0] if row else None


async def get_alias_row(db: Database, alias: str) -> tuple[str, str] | None:
    row = await db.fetchone("SELECT room_id, creator FROM room_aliases WHERE alias = ?", (alias,))
    return (row[0], row[1]) if row else None


async def alias_taken_tx(tx: Transaction, alias: str) -> bool:
    """Whether the alias exists, read inside the write job that would add it (two requests for one
    alias both pass a check made before their jobs)."""
    return await tx.fetchone("SELECT 1 FROM room_aliases WHERE alias = ?", (alias,)) is not None


async def insert_alias(tx: Transaction, alias: str, room_id: str, creator: str) -> None:
    await tx.execute("INSERT INTO room_aliases (alias, room_id, creator) VALUES (?, ?, ?)", (alias, room_id, creator))


async def delete_alias(tx: Transaction, alias: str) -> None:
    await tx.execute("DELETE FROM room_aliases WHERE alias = ?", (alias,))


async def get_aliases_for_room(db: Database, room_id: str) -> list[str]:
    return [r[0] for r in await db.fetchall("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias", (room_id,))]


async def get_memberships_since(db: Database, user_id: str, after: int, upto: int) -> dict[str, tuple[str, str, int]]:
    """room_id -> (membership, event_id, stream_ordering) of the user's membership changes in (after, upto].

    A range of the (user_id, stream_ordering) index, at most one row per room of the user: read on
    the event loop's thread, like `get_rooms_for_user`.
    """
    rows = db.lookup_all("SELECT room_id, membership, event_id, stream_ordering FROM local_membership "
                         "WHERE user_id = ? AND stream_ordering > ? AND stream_ordering <= ? AND forgotten = 0",
                         (user_id, after, upto))
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def get_all_stream_positions(db: Database) -> dict[str, int]:
    return {r[0]: r[1] for r in await db.fetchall("SELECT stream, position FROM stream_positions")}
