"""Push rules, notifications, unread counts, read positions, pushers and the push queue.

Spec: client-server-api, "Push Notifications"; push-gateway-api.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from pocketserver.storage.database import Database, in_chunks
from pocketserver.storage.writer import Transaction


class Reads(Protocol):
    """A Database or a Transaction: both answer fetchone/fetchall."""

    async def fetchone(self, sql: str, params: Iterable[Any] = ...) -> Any: ...
    async def fetchall(self, sql: str, params: Iterable[Any] = ...) -> list[Any]: ...


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- push rules ---------------------------------------------------------------------------------

class StoredRule(NamedTuple):
    kind: str
    rule_id: str
    priority: int
    conditions: list[Any] | None
    pattern: str | None
    actions: list[Any]
    enabled: bool


async def get_user_rules(db: Reads, user_id: str) -> list[StoredRule]:
    """The user's own rules, most important first within each kind."""
    rows = await db.fetchall(
        "SELECT kind, rule_id, priority, conditions_json, pattern, actions_json, enabled FROM push_rules "
        "WHERE user_id = ? ORDER BY kind, priority DESC", (user_id,))
    return [StoredRule(r[0], r[1], r[2], json.loads(r[3]) if r[3] is not None else None, r[4], json.loads(r[5]),
                       bool(r[6])) for r in rows]


async def get_default_changes(db: Reads, user_id: str) -> dict[tuple[str, str], tuple[bool | None, list[Any] | None]]:
    """(kind, rule_id) -> (enabled, actions) the user set on server-default rules (None: unchanged)."""
    rows = await db.fetchall("SELECT kind, rule_id, enabled, actions_json FROM push_rule_defaults WHERE user_id = ?",
                             (user_id,))
    return {(r[0], r[1]): (None if r[2] is None else bool(r[2]), None if r[3] is None else json.loads(r[3]))
            for r in rows}


async def upsert_rule(tx: Transaction, user_id: str, kind: str, rule_id: str, priority: int,
                      conditions: list[Any] | None, pattern: str | None, actions: list[Any]) -> None:
    """Create or replace a user rule's definition; an existing rule keeps its enabled flag."""
    await tx.execute(
        "INSERT INTO push_rules (user_id, kind, rule_id, priority, conditions_json, pattern, actions_json) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET "
        "priority = excluded.priority, conditions_json = excluded.conditions_json, pattern = excluded.pattern, "
        "actions_json = excluded.actions_json",
        (user_id, kind, rule_id, priority, None if conditions is None else _dumps(conditions), pattern,
         _dumps(actions)))


async def set_rule_priorities(tx: Transaction, user_id: str, kind: str, ordered_ids: Sequence[str]) -> None:
    """Renumber a kind's user rules so the first of `ordered_ids` is the most important."""
    n = len(ordered_ids)
    await tx.executemany("UPDATE push_rules SET priority = ? WHERE user_id = ? AND kind = ? AND rule_id = ?",
                         [(n - i, user_id, kind, rule_id) for i, rule_id in enumerate(ordered_ids)])


async def delete_rule(tx: Transaction, user_id: str, kind: str, rule_id: str) -> bool:
    cur = await tx.execute("DELETE FROM push_rules WHERE user_id = ? AND kind = ? AND rule_id = ?",
                           (user_id, kind, rule_id))
    return cur.rowcount > 0


async def set_rule_enabled(tx: Transaction, user_id: str, kind: str, rule_id: str, enabled: bool) -> bool:
    cur = await tx.execute("UPDATE push_rules SET enabled = ? WHERE user_id = ? AND kind = ? AND rule_id = ?",
                           (int(enabled), user_id, kind, rule_id))
    return cur.rowcount > 0


async def set_rule_actions(tx: Transaction, user_id: str, kind: str, rule_id: str, actions: list[Any]) -> bool:
    cur = await tx.execute("UPDATE push_rules SET actions_json = ? WHERE user_id = ? AND kind = ? AND rule_id = ?",
                           (_dumps(actions), user_id, kind, rule_id))
    return cur.rowcount > 0


async def set_default_change(tx: Transaction, user_id: str, kind: str, rule_id: str, *,
                             enabled: bool | None = None, actions: list[Any] | None = None) -> None:
    """Record the user's enabled flag or actions for a server-default rule."""
    await tx.execute(
        "INSERT INTO push_rule_defaults (user_id, kind, rule_id, enabled, actions_json) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET "
        "enabled = COALESCE(excluded.enabled, enabled), actions_json = COALESCE(excluded.actions_json, actions_json)",
        (user_id, kind, rule_id, None if enabled is None else int(enabled),
         None if actions is None else _dumps(actions)))


# --- notifications, unread counts and read positions ----------------------------------------------

async def insert_event_push_actions(tx: Transaction, stream_ordering: int, room_id: str, event_id: str,
                                    thread_id: str, ts: int,
                                    recipients: Mapping[str, tuple[Sequence[Any], bool, bool]]) -> None:
    """Store who an event notified: user -> (actions, highlight, counted), in one row.

    The row holds the recipients in groups with the same outcome, `[[actions, h, c, [user, ...]], ...]`
    (h and c 0 or 1): most members of a room get the same rule's answer, and one list of their IDs
    encodes in a fraction of the time a JSON object per member takes. Rows written before this
    form hold `{user: {"a": actions, "h": h, "c": c}}`; `_recipient` reads both.
    """
    groups: dict[tuple[int, bool, bool], tuple[Sequence[Any], list[str]]] = {}
    for user_id, (actions, highlight, counted) in recipients.items():
        key = (id(actions), bool(highlight), bool(counted))   # the same rule's actions are one object
        group = groups.get(key)
        if group is None:
            group = groups[key] = (actions, [])
        group[1].append(user_id)
    payload = [[list(actions), int(h), int(c), users] for (_, h, c), (actions, users) in groups.items()]
    await tx.execute("INSERT OR REPLACE INTO push_event_actions (stream_ordering, room_id, event_id, thread_id, ts, "
                     "recipients_json) VALUES (?, ?, ?, ?, ?, ?)",
                     (stream_ordering, room_id, event_id, thread_id, ts, _dumps(payload)))


def _groups(raw: str) -> list[tuple[list[Any], bool, bool, list[str]]]:
    """A push_event_actions row's recipients as (actions, highlight, counted, users) groups,
    whichever form the row was written in."""
    value = json.loads(raw)
    if isinstance(value, dict):                      # a row from before the grouped form
        return [(list(mine.get("a", [])), bool(mine.get("h")), bool(mine.get("c")), [user])
                for user, mine in value.items()]
    return [(list(actions), bool(h), bool(c), users) for actions, h, c, users in value]


def _recipient(raw: str, user_id: str) -> tuple[list[Any], bool, bool] | None:
    """One user's (actions, highlight, counted) in a push_event_actions row, or None if not notified."""
    for actions, highlight, counted, users in _groups(raw):
        if user_id in users:
            return actions, highlight, counted
    return None


async def delete_event_push_actions(tx: Transaction, stream_ordering: int) -> tuple[str, list[str]] | None:
    """Forget who an event notified; returns its thread and the users it was counted for."""
    row = await tx.fetchone("DELETE FROM push_event_actions WHERE stream_ordering = ? "
                            "RETURNING thread_id, recipients_json", (stream_ordering,))
    if row is None:
        return None
    return row[0], [u for _, _, counted, users in _groups(row[1]) if counted for u in users]


async def add_unread(tx: Transaction, room_id: str, thread_id: str, users: Iterable[tuple[str, bool]]) -> None:
    """One more notification (and highlight) for each (user_id, highlight), in one statement."""
    await tx.executemany(
        "INSERT INTO push_unread (user_id, room_id, thread_id, notification_count, highlight_count) "
        "VALUES (?, ?, ?, 1, ?) ON CONFLICT (room_id, thread_id, user_id) DO UPDATE SET "
        "notification_count = notification_count + 1, highlight_count = highlight_count + excluded.highlight_count",
        [(user_id, room_id, thread_id, int(highlight)) for user_id, highlight in users])


async def delete_unread(tx: Transaction, user_id: str, room_id: str, thread_id: str | None) -> None:
    """Zero the counts of one thread, or of the whole room when `thread_id` is None.

    The rows stay (a zero row reads as no notifications): deleting and re-inserting them with
    every message moved the table's b-tree around and cost pages written per message.
    """
    if thread_id is None:
        await tx.execute("UPDATE push_unread SET notification_count = 0, highlight_count = 0 "
                         "WHERE user_id = ? AND room_id = ? AND (notification_count OR highlight_count)",
                         (user_id, room_id))
    else:
        await tx.execute("UPDATE push_unread SET notification_count = 0, highlight_count = 0 "
                         "WHERE room_id = ? AND thread_id = ? AND user_id = ? AND (notification_count OR highlight_count)",
                         (room_id, thread_id, user_id))


async def advance_read_position(tx: Transaction, user_id: str, room_id: str, thread_key: str,
                                stream_ordering: int) -> int:
    """Move a read position forward (never back); returns the position now stored."""
    row = await tx.fetchone(
        "INSERT INTO push_read_positions (user_id, room_id, thread_id, stream_ordering) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET "
        "stream_ordering = MAX(stream_ordering, excluded.stream_ordering) RETURNING stream_ordering",
        (user_id, room_id, thread_key, stream_ordering))
    return int(row[0]) if row else stream_ordering


async def recount_unread(tx: Transaction, user_id: str, room_id: str, thread_id: str | None) -> None:
    """Recompute the counts of one thread (or every thread of the room) from the read positions.

    Reads only the room's notifying events after the user's unthreaded read position.
    """
    positions = {r[0]: int(r[1]) for r in await tx.fetchall(
        "SELECT thread_id, stream_ordering FROM push_read_positions WHERE user_id = ? AND room_id = ?",
        (user_id, room_id))}
    floor = positions.get("", 0)
    await delete_unread(tx, user_id, room_id, thread_id)
    totals: dict[str, list[int]] = {}
    for position, thread, raw in await tx.fetchall(
            "SELECT p.stream_ordering, p.thread_id, p.recipients_json FROM events e "
            "JOIN push_event_actions p ON p.stream_ordering = e.stream_ordering "
            "WHERE e.room_id = ? AND e.stream_ordering > ?", (room_id, floor)):
        if (thread_id is not None and thread != thread_id) or position <= positions.get(thread, 0):
            continue
        mine = _recipient(raw, user_id)
        if mine is not None and mine[2]:
            counts = totals.setdefault(thread, [0, 0])
            counts[0] += 1
            counts[1] += int(mine[1])
    await tx.executemany(
        "INSERT INTO push_unread (user_id, room_id, thread_id, notification_count, highlight_count) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (room_id, thread_id, user_id) DO UPDATE SET "
        "notification_count = excluded.notification_count, highlight_count = excluded.highlight_count",
        [(user_id, room_id, t, n, h) for t, (n, h) in totals.items() if n])


def get_unread(db: Database, user_id: str, room_ids: Iterable[str]) -> dict[str, dict[str, tuple[int, int]]]:
    """room_id -> thread_id -> (notification_count, highlight_count), for those of `room_ids` with
    unread notifications.

    Looked up on the event loop's thread: push_unread_user holds (user_id, room_id, thread_id), so
    each room is one seek to its few rows, and a /sync pays for the rooms it returns.
    """
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for chunk, marks in in_chunks(room_ids):
        for r in db.lookup_all("SELECT room_id, thread_id, notification_count, highlight_count FROM push_unread "
                               f"WHERE user_id = ? AND room_id IN ({marks}) "
                               "AND (notification_count OR highlight_count)", (user_id, *chunk)):
            out.setdefault(r[0], {})[r[1]] = (int(r[2]), int(r[3]))
    return out


async def get_badge_count(db: Reads, user_id: str) -> int:
    """Unread notifications across the user's rooms, plus one per pending invite (as Synapse counts)."""
    row = await db.fetchone(
        "SELECT (SELECT COALESCE(SUM(notification_count), 0) FROM push_unread WHERE user_id = ?) + "
        "(SELECT COUNT(*) FROM local_membership WHERE user_id = ? AND membership = 'invite' AND forgotten = 0)",
        (user_id, user_id))
    return int(row[0]) if row else 0


class PushActionRow(NamedTuple):
    stream_ordering: int
    room_id: str
    event_id: str
    thread_id: str
    actions: list[Any]
    highlight: bool
    ts: int


MAX_NOTIFICATION_SCAN = 20_000


async def get_push_actions(db: Reads, user_id: str, *, before: int | None, limit: int,
                           only_highlight: bool) -> list[PushActionRow]:
    """The user's notifications, newest first, below stream position `before`.

    Scans recent notifying events (at most MAX_NOTIFICATION_SCAN per call) for the user's entries.
    """
    out: list[PushActionRow] = []
    cursor, scanned = before if before is not None else 2**62, 0
    while len(out) < limit and scanned < MAX_NOTIFICATION_SCAN:
        rows = await db.fetchall("SELECT stream_ordering, room_id, event_id, thread_id, ts, recipients_json "
                                 "FROM push_event_actions WHERE stream_ordering < ? "
                                 "ORDER BY stream_ordering DESC LIMIT 500", (cursor,))
        if not rows:
            break
        scanned += len(rows)
        cursor = int(rows[-1][0])
        for position, room_id, event_id, thread_id, ts, raw in rows:
            mine = _recipient(raw, user_id)
            if mine is None or (only_highlight and not mine[1]):
                continue
            out.append(PushActionRow(int(position), room_id, event_id, thread_id, mine[0], mine[1], int(ts)))
            if len(out) == limit:
                break
    return out


# --- forgetting old notifications --------------------------------------------------------------------
# A notifying event's row (one per message in a room of several members, with every recipient's ID)
# is needed for /notifications and for recounting what is unread after a receipt; kept for ever it
# would grow the database by about half as much as the messages do. As Synapse does, rows that
# highlighted nobody go after a while (Synapse keeps them a day; here a week) and mentions stay for
# `/notifications?only=highlight`. Unread counts live in push_unread and are not touched; only a
# receipt that lands among unread messages older than that recounts without them.
KEEP_NOTIFICATIONS_MS = 7 * 24 * 3600 * 1000
MAX_FORGET = 5000          # rows one pass looks at (and so deletes) at most
_FORGET_BATCH = 500


async def old_notifications(db: Reads, after: int, now_ms: int, *, most: int = MAX_FORGET) -> tuple[list[int], int]:
    """(stream orderings of rows older than KEEP_NOTIFICATIONS_MS that highlighted nobody, the
    stream ordering looked at up to), reading the rows after `after` in order until a younger one.

    With nothing old after `after` this reads one row. A row out of time order only holds back
    the old ones behind it until it is old too.
    """
    cutoff = now_ms - KEEP_NOTIFICATIONS_MS
    doomed: list[int] = []
    upto, looked = after, 0
    while looked < most:
        rows = await db.fetchall("SELECT stream_ordering, ts, recipients_json FROM push_event_actions "
                                 "WHERE stream_ordering > ? ORDER BY stream_ordering LIMIT ?",
                                 (upto, 1 if looked == 0 else min(_FORGET_BATCH, most - looked)))
        for position, ts, raw in rows:
            if ts >= cutoff:
                return doomed, upto
            upto = int(position)
            if not any(highlight for _, highlight, _, _ in _groups(raw)):
                doomed.append(upto)
        if not rows:
            break
        looked += len(rows)
    return doomed, upto


async def delete_notifications(tx: Transaction, stream_orderings: Sequence[int]) -> int:
    """Inside a write job: delete these push_event_actions rows; returns how many there were."""
    deleted = 0
    for chunk, marks in in_chunks(stream_orderings):
        cur = await tx.execute(f"DELETE FROM push_event_actions WHERE stream_ordering IN ({marks})", chunk)
        deleted += cur.rowcount
    return deleted


async def get_read_positions(db: Reads, user_id: str, room_ids: Iterable[str]) -> dict[tuple[str, str], int]:
    """(room_id, thread_key) -> read position, for the given rooms."""
    ids = list(dict.fromkeys(room_ids))
    out: dict[tuple[str, str], int] = {}
    for chunk, marks in in_chunks(ids):
        for r in await db.fetchall(f"SELECT room_id, thread_id, stream_ordering FROM push_read_positions "
                                   f"WHERE user_id = ? AND room_id IN ({marks})", (user_id, *chunk)):
            out[(r[0], r[1])] = int(r[2])
    return out


async def get_event_relation(db: Reads, event_id: str) -> tuple[str | None, str | None] | None:
    """(relates_to, rel_type) of a stored event, or None when the event is unknown."""
    row = await db.fetchone("SELECT relates_to, rel_type FROM events WHERE event_id = ?", (event_id,))
    return (row[0], row[1]) if row else None


# --- pushers and the push queue --------------------------------------------------------------------

_PUSHER_COLUMNS = ("id, user_id, device_id, kind, app_id, pushkey, app_display_name, device_display_name, "
                   "profile_tag, lang, data_json, pushkey_ts")


async def get_all_pushers(db: Reads) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await db.fetchall(f"SELECT {_PUSHER_COLUMNS} FROM pushers ORDER BY id")]


def get_pushers_for_user(db: Database, user_id: str) -> list[tuple[Any, ...]]:
    """A user's pushers, read synchronously (it runs in the writer's after-commit listener)."""
    return [tuple(r) for r in db.lookup_all(f"SELECT {_PUSHER_COLUMNS} FROM pushers WHERE user_id = ? "
                                            "ORDER BY id", (user_id,))]


async def upsert_pusher(tx: Transaction, *, user_id: str, device_id: str | None, kind: str, app_id: str,
                        pushkey: str, app_display_name: str, device_display_name: str, profile_tag: str | None,
                        lang: str, data: dict[str, Any], pushkey_ts: int) -> None:
    await tx.execute(
        "INSERT INTO pushers (user_id, device_id, kind, app_id, pushkey, app_display_name, device_display_name, "
        "profile_tag, lang, data_json, pushkey_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET device_id = excluded.device_id, kind = excluded.kind, "
        "app_display_name = excluded.app_display_name, device_display_name = excluded.device_display_name, "
        "profile_tag = excluded.profile_tag, lang = excluded.lang, data_json = excluded.data_json, "
        "pushkey_ts = excluded.pushkey_ts",
        (user_id, device_id, kind, app_id, pushkey, app_display_name, device_display_name, profile_tag, lang,
         _dumps(data), pushkey_ts))


async def delete_pushers(tx: Transaction, app_id: str, pushkey: str, *, user_id: str | None = None,
                         other_than_user: str | None = None) -> list[str]:
    """Delete pushers with this app_id and pushkey (of one user, or of everyone but one); returns their users."""
    sql, params = "DELETE FROM pushers WHERE app_id = ? AND pushkey = ?", [app_id, pushkey]
    if user_id is not None:
        sql, params = sql + " AND user_id = ?", params + [user_id]
    if other_than_user is not None:
        sql, params = sql + " AND user_id != ?", params + [other_than_user]
    rows = await tx.fetchall(sql + " RETURNING id, user_id", params)
    ids = [r[0] for r in rows]
    await tx.executemany("DELETE FROM push_queue WHERE pusher_id = ?", [(i,) for i in ids])
    return [r[1] for r in rows]


async def delete_pushers_of_devices(tx: Transaction, user_id: str, device_ids: Sequence[str]) -> int:
    """Delete the pushers (and their queued pushes) registered from these devices; returns how many."""
    if not device_ids:
        return 0
    marks = ",".join("?" * len(device_ids))
    rows = await tx.fetchall(f"DELETE FROM pushers WHERE user_id = ? AND device_id IN ({marks}) RETURNING id",
                             (user_id, *device_ids))
    await tx.executemany("DELETE FROM push_queue WHERE pusher_id = ?", [(r[0],) for r in rows])
    return len(rows)


async def enqueue_push(tx: Transaction, pusher_id: int, notification: dict[str, Any], now_ms: int,
                       due_ms: int | None = None) -> None:
    await tx.execute("INSERT INTO push_queue (pusher_id, notification_json, next_attempt_ms, created_ms) "
                     "VALUES (?, ?, ?, ?)", (pusher_id, _dumps(notification), due_ms or now_ms, now_ms))


class QueuedPush(NamedTuple):
    id: int
    pusher_id: int
    notification: dict[str, Any]
    attempts: int
    created_ms: int


async def get_due_pushes(db: Reads, now_ms: int, limit: int) -> list[QueuedPush]:
    rows = await db.fetchall("SELECT id, pusher_id, notification_json, attempts, created_ms FROM push_queue "
                             "WHERE next_attempt_ms <= ? ORDER BY id LIMIT ?", (now_ms, limit))
    return [QueuedPush(int(r[0]), int(r[1]), json.loads(r[2]), int(r[3]), int(r[4])) for r in rows]


async def get_next_push_due(db: Reads) -> int | None:
    row = await db.fetchone("SELECT MIN(next_attempt_ms) FROM push_queue")
    return int(row[0]) if row and row[0] is not None else None


async def delete_pushes(tx: Transaction, ids: Iterable[int]) -> None:
    await tx.executemany("DELETE FROM push_queue WHERE id = ?", [(i,) for i in ids])


async def get_pusher_backoffs(db: Reads) -> dict[int, int]:
    """Each pusher with queued notifications -> when the last of them is due."""
    rows = await db.fetchall("SELECT pusher_id, MAX(next_attempt_ms) FROM push_queue GROUP BY pusher_id")
    return {int(r[0]): int(r[1]) for r in rows}


async def postpone_pusher(tx: Transaction, pusher_id: int, until_ms: int) -> None:
    """Nothing more to this pusher before `until_ms`: it backs off as a whole, in order."""
    await tx.execute("UPDATE push_queue SET next_attempt_ms = MAX(next_attempt_ms, ?) WHERE pusher_id = ?",
                     (until_ms, pusher_id))


async def reschedule_push(tx: Transaction, push_id: int, attempts: int, next_attempt_ms: int) -> None:
    await tx.execute("UPDATE push_queue SET attempts = ?, next_attempt_ms = ? WHERE id = ?",
                     (attempts, next_attempt_ms, push_id))
