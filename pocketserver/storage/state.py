"""Compact state history: state groups stored as short chains of deltas over full snapshots.

A room with 10 000 events and 500 members stores one small delta per state change, not the full
state per event. Spec: server-server-api, "Room State Resolution" needs the state at any event.
"""
from __future__ import annotations

from collections.abc import Mapping

import aiosqlite

from pocketserver.storage.database import in_chunks
from pocketserver.storage.writer import Transaction

StateKey = tuple[str, str]
# Deltas walked at most before a full snapshot is written instead.
MAX_CHAIN_LENGTH = 32

_LOAD_CHAIN = """
WITH RECURSIVE chain(id, prev, n) AS (
    SELECT id, prev_group, 0 FROM state_groups WHERE id = ?
    UNION ALL
    SELECT g.id, g.prev_group, chain.n + 1 FROM state_groups g JOIN chain ON g.id = chain.prev
)
SELECT e.type, e.state_key, e.event_id FROM chain
JOIN state_group_entries e ON e.group_id = chain.id
ORDER BY chain.n DESC
"""


_LOAD_CHAINS = """
WITH RECURSIVE chain(origin, id, prev, n) AS (
    SELECT id, id, prev_group, 0 FROM state_groups WHERE id IN ({marks})
    UNION ALL
    SELECT chain.origin, g.id, g.prev_group, chain.n + 1 FROM state_groups g JOIN chain ON g.id = chain.prev
)
SELECT chain.origin, e.type, e.state_key, e.event_id FROM chain
JOIN state_group_entries e ON e.group_id = chain.id
ORDER BY chain.origin, chain.n DESC
"""


async def load_state_groups(conn: aiosqlite.Connection, group_ids: list[int]) -> dict[int, dict[StateKey, str]]:
    """`load_state_group` for many groups, one statement per 500: {group id: full state map}."""
    states: dict[int, dict[StateKey, str]] = {group_id: {} for group_id in group_ids}
    for chunk, marks in in_chunks(group_ids):
        async with conn.execute(_LOAD_CHAINS.format(marks=marks), chunk) as cur:
            for origin, t, sk, eid in await cur.fetchall():
                states[origin][(t, sk)] = eid
    return states


async def insert_state_group(tx: Transaction, room_id: str, prev_group: int | None, prev_chain_length: int,
                             delta: Mapping[StateKey, str], full_state: Mapping[StateKey, str]) -> tuple[int, int]:
    """Store a new group: a delta on `prev_group`, or a snapshot when the chain is long or absent.

    `full_state` is the complete state of the new group. Returns (group id, chain length).
    """
    if prev_group is None or prev_chain_length >= MAX_CHAIN_LENGTH:
        prev_group, chain_length, entries = None, 0, full_state
    else:
        chain_length, entries = prev_chain_length + 1, delta
    row = await tx.fetchone("INSERT INTO state_groups (room_id, prev_group, chain_length) VALUES (?, ?, ?) "
                            "RETURNING id", (room_id, prev_group, chain_length))
    assert row is not None
    group_id = int(row[0])
    await tx.executemany("INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES (?, ?, ?, ?)",
                         [(group_id, t, sk, eid) for (t, sk), eid in entries.items()])
    return group_id, chain_length


async def load_state_group(conn: aiosqlite.Connection | Transaction, group_id: int) -> dict[StateKey, str]:
    """The full state map of a group (older deltas first, newer entries win)."""
    state: dict[StateKey, str] = {}
    if isinstance(conn, Transaction):
        rows = await conn.fetchall(_LOAD_CHAIN, (group_id,))
    else:
        async with conn.execute(_LOAD_CHAIN, (group_id,)) as cur:
            rows = await cur.fetchall()
    for t, sk, eid in rows:
        state[(t, sk)] = eid
    return state


async def get_chain_length(conn: aiosqlite.Connection, group_id: int) -> int:
    async with conn.execute("SELECT chain_length FROM state_groups WHERE id = ?", (group_id,)) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0
