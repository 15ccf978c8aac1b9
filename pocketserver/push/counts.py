"""Unread notification and highlight counts per user, room and thread.

Counts are "notifying events after the user's read position": they grow as events are persisted and
are recomputed when a read receipt (or the user's own event) moves the position.
Spec: client-server-api, "Receiving notifications", "Marking notifications as read";
"Threaded read receipts".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pocketserver.storage import push as store
from pocketserver.storage.writer import Transaction

MAIN = "main"
UNTHREADED = ""            # the read-position key of a receipt without a thread_id
MAX_THREAD_HOPS = 3        # spec: "a maximum of 3 hops is recommended"


async def on_read_receipt(tx: Transaction, user_id: str, room_id: str, event_stream_ordering: int,
                          thread_id: str | None) -> None:
    """Mark the user's notifications up to and including `event_stream_ordering` as read.

    Call it inside the write job that stores an m.read or m.read.private receipt. `thread_id` is
    None for an unthreaded receipt (every thread), `"main"` or a thread root's event ID otherwise.
    A receipt behind the stored position changes nothing.
    Spec: client-server-api, "Marking notifications as read".
    """
    key = UNTHREADED if thread_id is None else thread_id
    await store.advance_read_position(tx, user_id, room_id, key, event_stream_ordering)
    await store.recount_unread(tx, user_id, room_id, thread_id)
    tx.changes.users.add(user_id)


async def on_own_event(tx: Transaction, user_id: str, room_id: str, stream_ordering: int, thread_id: str) -> None:
    """A user's own event reads everything before it in its thread.

    Spec: client-server-api, "Marking notifications as read" ("by sending an event").
    """
    await store.advance_read_position(tx, user_id, room_id, thread_id, stream_ordering)
    await store.delete_unread(tx, user_id, room_id, thread_id)


async def on_left_room(tx: Transaction, user_id: str, room_id: str, stream_ordering: int) -> None:
    """Leaving (or being kicked, banned, ...) clears the room's counts, so a rejoin starts from zero."""
    await store.advance_read_position(tx, user_id, room_id, UNTHREADED, stream_ordering)
    await store.delete_unread(tx, user_id, room_id, None)


async def on_redacted(tx: Transaction, room_id: str, stream_ordering: int) -> None:
    """A redacted event notifies no more: it leaves /notifications and the unread counts of the
    users it counted for, as Synapse does (a deleted message left a badge nobody could clear by
    reading it)."""
    forgotten = await store.delete_event_push_actions(tx, stream_ordering)
    if forgotten is None:
        return
    thread_id, counted = forgotten
    for user_id in counted:
        await store.recount_unread(tx, user_id, room_id, thread_id)
    tx.changes.users.update(counted)


async def add_to_unread(tx: Transaction, room_id: str, thread_id: str, users: Sequence[tuple[str, bool]]) -> None:
    """Count one more unread notification for each (user, highlight) in the room's thread."""
    if users:
        await store.add_unread(tx, room_id, thread_id, users)


async def record_notifications(tx: Transaction, room_id: str, event_id: str, stream_ordering: int, thread_id: str,
                               ts: int, recipients: Mapping[str, tuple[tuple[Any, ...], bool, bool]]) -> None:
    """Store an event's notifications (user -> (actions, highlight, counted)) for /notifications, in one row."""
    if recipients:
        await store.insert_event_push_actions(tx, stream_ordering, room_id, event_id, thread_id, ts, recipients)


async def get_thread_id(tx: Transaction, content: Mapping[str, Any]) -> str:
    """The thread an event belongs to: its m.thread root, its parent's thread (up to 3 hops), or main.

    Spec: client-server-api, "Threaded read receipts".
    """
    relates = content.get("m.relates_to")
    if not isinstance(relates, Mapping) or not isinstance(relates.get("event_id"), str):
        return MAIN
    if relates.get("rel_type") == "m.thread":
        return str(relates["event_id"])
    parent: str | None = relates["event_id"]
    for _ in range(MAX_THREAD_HOPS):
        if parent is None:
            return MAIN
        found = await store.get_event_relation(tx, parent)
        if found is None:
            return MAIN
        relates_to, rel_type = found
        if rel_type == "m.thread" and relates_to:
            return relates_to
        parent = relates_to
    return MAIN


def unread_fields(threads: Mapping[str, tuple[int, int]], per_thread: bool) -> dict[str, Any]:
    """The sync fields of one joined room: `unread_notifications` and, per thread, `unread_thread_notifications`.

    Without per-thread counts every thread adds to the room's count; with them the room's count is
    the main timeline's and threads without notifications are left out.
    Spec: client-server-api, "GET /_matrix/client/v3/sync" (Joined Room).
    """
    if not per_thread:
        n = sum(c[0] for c in threads.values())
        h = sum(c[1] for c in threads.values())
        return {"unread_notifications": {"notification_count": n, "highlight_count": h}}
    main = threads.get(MAIN, (0, 0))
    out: dict[str, Any] = {"unread_notifications": {"notification_count": main[0], "highlight_count": main[1]}}
    others = {t: {"notification_count": n, "highlight_count": h}
              for t, (n, h) in threads.items() if t != MAIN and (n or h)}
    if others:
        out["unread_thread_notifications"] = others
    return out
