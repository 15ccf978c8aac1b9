"""Events, the event graph and forward extremities.

Spec: server-server-api, "PDUs"; client-server-api, "Syncing" (stream positions).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from sys import intern
from typing import Any, NamedTuple

from pocketserver.storage.database import Database, in_chunks
from pocketserver.storage.writer import Transaction

STREAM = "events"
# A read of at most this many rows found through an index runs on the event loop's thread
# (Database.lookup_all): cheaper than a trip to a reader thread.
SMALL_RANGE = 64


class StoredEvent(NamedTuple):
    """An event as stored, with the server-local facts kept apart from the signed JSON."""

    event_id: str
    room_id: str
    stream_ordering: int
    type: str
    state_key: str | None
    sender: str
    json: dict[str, Any]
    state_before: int
    state_after: int
    replaces_state: str | None
    redacted_by: str | None
    txn_id: str | None
    device_id: str | None


_COLUMNS = ("event_id, room_id, stream_ordering, type, state_key, sender, json, state_before, state_after, "
            "replaces_state, redacted_by, txn_id, device_id")


def _event(row: Sequence[Any], parsed: dict[str, Any]) -> StoredEvent:
    """The event of a row and its parsed JSON.

    A room's events share their room ID, and most share a few senders and types: one interned
    string of each serves every cached event, in its fields and in its JSON alike (~0.2 KiB less
    per event kept in the caches).
    """
    room_id, event_type, sender = intern(row[1]), intern(row[3]), intern(row[5])
    if parsed.get("room_id") == room_id:
        parsed["room_id"] = room_id
    if parsed.get("type") == event_type:
        parsed["type"] = event_type
    if parsed.get("sender") == sender:
        parsed["sender"] = sender
    return StoredEvent(row[0], room_id, row[2], event_type, row[4], sender, parsed, row[7], row[8],
                       row[9], row[10], row[11], row[12])


def _row(row: Sequence[Any]) -> StoredEvent:
    return _event(row, json.loads(row[6]))


def _rows(rows: Sequence[Sequence[Any]], known: Mapping[str, StoredEvent] | None = None) -> list[StoredEvent]:
    """The events of rows (their first columns are _COLUMNS), all their JSON parsed in one go.

    One parse of all the rows' JSON as one array makes each key string ("content",
    "origin_server_ts", ...) once per read instead of once per event: measured on benchmark
    events, 2.2 KiB instead of 3.0 KiB each as kept in the event caches, and 2.4 us to parse
    instead of 3.3. An event in `known` is reused when the row shows the same redaction: only a
    redaction rewrites a stored event's JSON, and it sets `redacted_by` with it.
    """
    if known:
        reused = [seen if (seen := known.get(row[0])) is not None and seen.redacted_by == row[10] else None
                  for row in rows]
    else:
        reused = [None] * len(rows)
    texts = [row[6] for row, seen in zip(rows, reused) if seen is None]
    parsed = iter(json.loads(f"[{','.join(texts)}]") if len(texts) > 1 else [json.loads(t) for t in texts])
    return [seen if seen is not None else _event(row, next(parsed)) for row, seen in zip(rows, reused)]


async def insert_event(tx: Transaction, *, event_id: str, room_id: str, stream_ordering: int, type: str,
                       state_key: str | None, sender: str, depth: int, origin_server_ts: int,
                       raw: dict[str, Any], prev_events: Iterable[str], state_before: int, state_after: int,
                       replaces_state: str | None, relates_to: str | None, rel_type: str | None,
                       txn_id: str | None, device_id: str | None) -> None:
    await tx.execute(
        "INSERT INTO events (stream_ordering, event_id, room_id, type, state_key, sender, depth, origin_server_ts, "
        "json, state_before, state_after, replaces_state, relates_to, rel_type, txn_id, device_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (stream_ordering, event_id, room_id, type, state_key, sender, depth, origin_server_ts,
         json.dumps(raw, ensure_ascii=False, separators=(",", ":")), state_before, state_after, replaces_state,
         relates_to, rel_type, txn_id, device_id))
    prevs = list(prev_events)
    await tx.executemany("DELETE FROM forward_extremities WHERE room_id = ? AND event_id = ?",
                         [(room_id, p) for p in prevs])
    await tx.execute("INSERT INTO forward_extremities (room_id, event_id) VALUES (?, ?)", (room_id, event_id))


async def get_event(db: Database, event_id: str) -> StoredEvent | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event_id,))
    return _row(row) if row else None


async def get_event_tx(tx: Transaction, event_id: str) -> StoredEvent | None:
    row = await tx.fetchone(f"SELECT {_COLUMNS} FROM events WHERE event_id = ?", (event_id,))
    return _row(row) if row else None


async def get_events(db: Database, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
    """The stored events among `event_ids`, by ID (missing ones are left out)."""
    ids = list(dict.fromkeys(event_ids))
    found: dict[str, StoredEvent] = {}
    for chunk, marks in in_chunks(ids):
        for event in _rows(await db.fetchall(f"SELECT {_COLUMNS} FROM events WHERE event_id IN ({marks})", chunk)):
            found[event.event_id] = event
    return found


async def get_room_events(db: Database, room_id: str, *, after: int, upto: int, limit: int,
                          backwards: bool) -> list[StoredEvent]:
    """Events of a room with after < stream_ordering <= upto, newest first when `backwards`."""
    order = "DESC" if backwards else "ASC"
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM events WHERE room_id = ? AND stream_ordering > ? AND stream_ordering <= ? "
        f"ORDER BY stream_ordering {order} LIMIT ?", (room_id, after, upto, limit))
    return _rows(rows)


# One term per room of get_latest_room_events; SQLite allows up to 500 terms in a compound SELECT.
_LATEST_TERM = ("SELECT * FROM (SELECT {columns} FROM events WHERE room_id = ? AND stream_ordering > ? "
                "AND stream_ordering <= ? ORDER BY stream_ordering DESC LIMIT ?)")
_LATEST_ROOMS_PER_QUERY = 100


async def get_latest_room_events(db: Database, ranges: Sequence[tuple[str, int, int]], limit: int, *,
                                 known: Mapping[str, StoredEvent] | None = None) -> dict[str, list[StoredEvent]]:
    """For each (room_id, after, upto): the room's newest `limit` events in (after, upto], newest first.

    One read for many rooms (each room its own indexed term), instead of one read per room. With
    `known` events, a long read first fetches only IDs and then the rows of the events not known:
    making the full rows costs the reader thread ~2 us each, a third of that for the IDs alone.
    """
    out: dict[str, list[StoredEvent]] = {room_id: [] for room_id, _, _ in ranges}
    for i in range(0, len(ranges), _LATEST_ROOMS_PER_QUERY):
        chunk = ranges[i : i + _LATEST_ROOMS_PER_QUERY]
        params = [value for room_id, after, upto in chunk for value in (room_id, after, upto, limit)]
        # An incremental sync's short ranges hold a few rows at most: read them right here.
        if sum(min(limit, max(0, upto - after)) for _, after, upto in chunk) <= SMALL_RANGE:
            sql = " UNION ALL ".join([_LATEST_TERM.format(columns=_COLUMNS)] * len(chunk))
            for event in _rows(db.lookup_all(sql, params), known):
                out[event.room_id].append(event)
        elif known is None:
            sql = " UNION ALL ".join([_LATEST_TERM.format(columns=_COLUMNS)] * len(chunk))
            for event in _rows(await db.fetchall(sql, params)):
                out[event.room_id].append(event)
        else:
            sql = " UNION ALL ".join([_LATEST_TERM.format(columns="event_id, room_id, redacted_by")] * len(chunk))
            rows = await db.fetchall(sql, params)
            reused = {r[0]: seen for r in rows if (seen := known.get(r[0])) is not None and seen.redacted_by == r[2]}
            fetched = await get_events(db, [r[0] for r in rows if r[0] not in reused])
            for event_id, room_id, _ in rows:
                event = reused.get(event_id) or fetched.get(event_id)
                if event is not None:
                    out[room_id].append(event)
    for events in out.values():
        events.sort(key=lambda e: e.stream_ordering, reverse=True)
    return out


async def get_forward_extremities(db: Database, room_id: str) -> list[str]:
    return [r[0] for r in await db.fetchall("SELECT event_id FROM forward_extremities WHERE room_id = ?", (room_id,))]


async def set_redacted(tx: Transaction, event_id: str, redacted_json: dict[str, Any], redaction_id: str) -> None:
    """Replace a stored event's JSON with its redacted form and remember which redaction did it."""
    await tx.execute("UPDATE events SET json = ?, redacted_by = ? WHERE event_id = ?",
                     (json.dumps(redacted_json, ensure_ascii=False, separators=(",", ":")), redaction_id, event_id))


def get_txn_event(db: Database, user_id: str, device_id: str, txn_id: str) -> str | None:
    """The event a transaction ID already sent, if any (a primary-key look-up, done synchronously)."""
    row = db.lookup("SELECT event_id FROM transaction_ids WHERE user_id = ? AND device_id = ? AND txn_id = ?",
                            (user_id, device_id, txn_id))
    return row[0] if row else None


async def insert_txn(tx: Transaction, user_id: str, device_id: str, txn_id: str, event_id: str, now_ms: int) -> None:
    await tx.execute("INSERT INTO transaction_ids (user_id, device_id, txn_id, event_id, created_ts) "
                     "VALUES (?, ?, ?, ?, ?)", (user_id, device_id, txn_id, event_id, now_ms))


async def max_stream_ordering(db: Database) -> int:
    row = await db.fetchone("SELECT COALESCE(MAX(stream_ordering), 0) FROM events")
    return int(row[0]) if row else 0


async def get_rooms_with_events(db: Database, after: int, upto: int, types: Sequence[str] = ()) -> dict[str, int]:
    """room_id -> newest stream position, for rooms with events in (after, upto] (of `types`, if given);
    reads only new rows."""
    if after >= upto:
        return {}
    of_types = f"AND type IN ({','.join('?' * len(types))}) " if types else ""
    sql = (f"SELECT room_id, MAX(stream_ordering) FROM events WHERE stream_ordering > ? AND stream_ordering <= ? "
           f"{of_types}GROUP BY room_id")
    params = (after, upto, *types)
    # Positions are the primary key: a short range has at most that many rows, cheap to read right here.
    rows = db.lookup_all(sql, params) if upto - after <= SMALL_RANGE else await db.fetchall(sql, params)
    return {r[0]: r[1] for r in rows}


def get_latest_position(db: Database, room_id: str, upto: int, types: Sequence[str] = ()) -> int | None:
    """Stream position of the room's newest event (of one of `types`, if given) at or before `upto`.

    A backward walk of the (room_id, stream_ordering) index from `upto`, done synchronously: a few
    microseconds a room (longer only where many events of other types came after the last of
    `types`), where a sliding sync connection's first response asks it of every room.
    """
    of_types = f" AND type IN ({','.join('?' * len(types))})" if types else ""
    row = db.lookup(f"SELECT MAX(stream_ordering) FROM events WHERE room_id = ? AND stream_ordering <= ?{of_types}",
                    (room_id, upto, *types))
    return row[0] if row and row[0] is not None else None


def has_children(db: Database, event_ids: Sequence[str]) -> bool:
    """Whether any event names one of `event_ids` in relates_to (an index look-up, done synchronously).

    For a few hundred IDs at most; it spares the read of bundled aggregations when nothing relates.
    """
    marks = ",".join("?" * len(event_ids))
    return db.lookup(f"SELECT 1 FROM events WHERE relates_to IN ({marks}) LIMIT 1", event_ids) is not None


async def get_latest_event_at(db: Database, room_id: str, position: int) -> StoredEvent | None:
    """The room's newest event at or before `position`."""
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM events WHERE room_id = ? AND stream_ordering <= ? "
                            "ORDER BY stream_ordering DESC LIMIT 1", (room_id, position))
    return _row(row) if row else None
