"""Relations between events, read from the events table's relates_to and rel_type columns.

The persist code fills those columns from the cleartext `content.m.relates_to`, so encrypted events
relate through their unencrypted copy. A redacted child keeps its columns but no longer relates:
every query here skips rows with `redacted_by` set.
Spec: client-server-api, "Forming relationships between events".
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

from pocketserver.storage import events as event_store
from pocketserver.storage.database import IN_LIST_SIZE, Database, in_chunks
from pocketserver.storage.events import StoredEvent

# The events table's own column list and row decoder, so a column added to StoredEvent reaches here too.
_COLUMNS = event_store._COLUMNS
_rows = event_store._rows

# Children reachable from one parent through relations that pass the filters, up to `max_depth` hops.
# Replies have no rel_type and so are never relations here. A relation is a tree edge (an event names
# one parent, and event IDs are hashes of content that names the parent), so the walk ends on its own;
# the depth cap bounds the work.
GET_RELATIONS = f"""
WITH RECURSIVE related(event_id, depth) AS (
    SELECT event_id, 1 FROM events
    WHERE relates_to = ?1 AND room_id = ?2 AND rel_type IS NOT NULL AND redacted_by IS NULL
          AND (?3 IS NULL OR rel_type = ?3) AND (?4 IS NULL OR type = ?4)
    UNION ALL
    SELECT e.event_id, r.depth + 1 FROM events AS e JOIN related AS r ON e.relates_to = r.event_id
    WHERE r.depth < ?5 AND e.room_id = ?2 AND e.rel_type IS NOT NULL AND e.redacted_by IS NULL
          AND (?3 IS NULL OR e.rel_type = ?3) AND (?4 IS NULL OR e.type = ?4)
)
SELECT {_COLUMNS} FROM events
WHERE event_id IN (SELECT event_id FROM related) AND stream_ordering > ?6 AND stream_ordering <= ?7
ORDER BY stream_ordering {{order}} LIMIT ?8
"""

# Direct, unredacted children of many parents at once (for bundled aggregations).
GET_CHILDREN = (f"SELECT {_COLUMNS}, relates_to, rel_type FROM events "
                "WHERE relates_to IN ({marks}) AND rel_type IN ('m.replace', 'm.thread', 'm.reference') "
                "AND redacted_by IS NULL ORDER BY stream_ordering")

# Thread roots of a room by the position of their latest unredacted m.thread child, newest first.
GET_THREAD_ROOTS = """
SELECT t.relates_to, MAX(t.stream_ordering) AS latest FROM events AS t
JOIN events AS root ON root.event_id = t.relates_to AND root.room_id = t.room_id
WHERE t.room_id = ?1 AND t.rel_type = 'm.thread' AND t.redacted_by IS NULL AND t.stream_ordering <= ?2
GROUP BY t.relates_to
HAVING latest <= ?3
       AND (?4 IS NULL OR MAX(root.sender = ?4) = 1 OR MAX(t.sender = ?4) = 1)
ORDER BY latest DESC LIMIT ?5
"""

GET_EVENTS_BY_TS_FORWARDS = (f"SELECT {_COLUMNS} FROM events WHERE room_id = ? AND origin_server_ts >= ? "
                             "AND stream_ordering <= ? ORDER BY origin_server_ts ASC, stream_ordering ASC "
                             "LIMIT ? OFFSET ?")
GET_EVENTS_BY_TS_BACKWARDS = (f"SELECT {_COLUMNS} FROM events WHERE room_id = ? AND origin_server_ts <= ? "
                              "AND stream_ordering <= ? ORDER BY origin_server_ts DESC, stream_ordering DESC "
                              "LIMIT ? OFFSET ?")


class Child(NamedTuple):
    """A child event with the relation it has to its parent."""

    event: StoredEvent
    relates_to: str
    rel_type: str


async def get_relations(db: Database, room_id: str, parent_id: str, *, rel_type: str | None,
                        event_type: str | None, after: int, upto: int, limit: int, backwards: bool,
                        max_depth: int) -> list[StoredEvent]:
    """Children of `parent_id` with after < stream_ordering <= upto, newest first when `backwards`."""
    sql = GET_RELATIONS.format(order="DESC" if backwards else "ASC")
    rows = await db.fetchall(sql, (parent_id, room_id, rel_type, event_type, max_depth, after, upto, limit))
    return _rows(rows)


async def get_children(db: Database, parent_ids: Iterable[str]) -> list[Child]:
    """Unredacted m.replace, m.thread and m.reference children of the parents, oldest first."""
    ids = list(dict.fromkeys(parent_ids))
    found: list[Child] = []
    for chunk, marks in in_chunks(ids):
        rows = await db.fetchall(GET_CHILDREN.format(marks=marks), chunk)
        found += [Child(event, r[-2], r[-1]) for event, r in zip(_rows(rows), rows)]
    if len(ids) > IN_LIST_SIZE:   # each chunk came sorted; together they need sorting again
        found.sort(key=lambda c: c.event.stream_ordering)
    return found


async def get_thread_roots(db: Database, room_id: str, *, upto: int, ceiling: int, limit: int,
                           participant: str | None) -> list[tuple[str, int]]:
    """(root event ID, latest thread position) for threads whose latest event is at or before `upto`.

    Thread events after `ceiling` (what the reader may not see yet or any more) are not counted.
    With `participant`, only threads that user started or replied in.
    """
    rows = await db.fetchall(GET_THREAD_ROOTS, (room_id, ceiling, upto, participant, limit))
    return [(r[0], int(r[1])) for r in rows]


async def get_events_by_timestamp(db: Database, room_id: str, origin_server_ts: int, *, forwards: bool,
                                  upto: int, limit: int, offset: int) -> list[StoredEvent]:
    """Events of a room nearest `origin_server_ts` in one direction, nearest first, at or before `upto`."""
    sql = GET_EVENTS_BY_TS_FORWARDS if forwards else GET_EVENTS_BY_TS_BACKWARDS
    rows = await db.fetchall(sql, (room_id, origin_server_ts, upto, limit, offset))
    return _rows(rows)


async def has_annotation(db: Database, room_id: str, parent_id: str, sender: str, event_type: str, key: str) -> bool:
    """Whether `sender` has an annotation of `event_type` and `key` on the event that is not redacted.

    Spec: client-server-api, "Avoiding duplicate annotations".
    """
    rows = await db.fetchall(
        "SELECT json FROM events WHERE relates_to = ? AND rel_type = 'm.annotation' AND room_id = ? "
        "AND sender = ? AND type = ? AND redacted_by IS NULL", (parent_id, room_id, sender, event_type))
    for (raw,) in rows:
        relation = json.loads(raw).get("content", {}).get("m.relates_to")
        if isinstance(relation, dict) and relation.get("key") == key:
            return True
    return False
