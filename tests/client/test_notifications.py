"""Unread counts in /sync (per room and per thread), read positions, and GET /notifications.

Spec: client-server-api, "Receiving notifications", "Marking notifications as read",
"Listing Notifications", "Threaded read receipts".
"""
from __future__ import annotations

import json
from typing import Any

from pocketserver.push.counts import on_read_receipt
from pocketserver.storage import events as event_store

R = "/_matrix/client/v3/rooms"
SYNC = "/_matrix/client/v3/sync"
NOTIFS = "/_matrix/client/v3/notifications"
ALICE, BOB = "@alice:test.local", "@bob:test.local"
THREADS = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})


async def setup_room(api: Any) -> tuple[str, str, str]:
    a = (await api.register("alice"))["access_token"]
    b = (await api.register("bob"))["access_token"]
    c = (await api.register("carol"))["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    await api.call("POST", f"{R}/{room}/join", {}, token=c)
    return a, b, room


async def send(api: Any, token: str, room: str, txn: str, content: dict[str, Any],
               event_type: str = "m.room.message") -> str:
    status, body = await api.call("PUT", f"{R}/{room}/send/{event_type}/{txn}", content, token=token)
    assert status == 200, body
    return body["event_id"]


async def unread(api: Any, token: str, room: str, sync_filter: str | None = None) -> dict[str, Any]:
    status, body = await api.call("GET", SYNC, token=token, query={"filter": sync_filter} if sync_filter else None)
    assert status == 200, body
    entry = body["rooms"]["join"][room]
    return {k: entry[k] for k in ("unread_notifications", "unread_thread_notifications") if k in entry}


async def read_receipt(api: Any, user_id: str, room: str, event_id: str, thread_id: str | None) -> None:
    stored = await event_store.get_event(api.server.db, event_id)
    assert stored is not None
    await api.server.db.write(lambda tx: on_read_receipt(tx, user_id, room, stored.stream_ordering, thread_id))


def counts(n: int, h: int = 0) -> dict[str, int]:
    return {"notification_count": n, "highlight_count": h}


async def test_counts_in_sync_and_receipts(api) -> None:
    a, b, room = await setup_room(api)
    assert await unread(api, b, room) == {"unread_notifications": counts(0)}
    first = await send(api, a, room, "1", {"msgtype": "m.text", "body": "hello"})
    await send(api, a, room, "2", {"msgtype": "m.text", "body": "hey", "m.mentions": {"user_ids": [BOB]}})
    await send(api, a, room, "3", {"msgtype": "m.notice", "body": "bot"})
    assert await unread(api, b, room) == {"unread_notifications": counts(2, 1)}
    assert await unread(api, a, room) == {"unread_notifications": counts(0)}

    # Counts reach an incremental sync in the same response as the event.
    _, before = await api.call("GET", SYNC, token=b)
    await send(api, a, room, "4", {"msgtype": "m.text", "body": "more"})
    _, incr = await api.call("GET", SYNC, token=b, query={"since": before["next_batch"]})
    assert incr["rooms"]["join"][room]["unread_notifications"] == counts(3, 1)

    await read_receipt(api, BOB, room, first, None)
    assert await unread(api, b, room) == {"unread_notifications": counts(2, 1)}
    # A receipt behind the read position changes nothing.
    await read_receipt(api, BOB, room, first, None)
    assert await unread(api, b, room) == {"unread_notifications": counts(2, 1)}
    # The user's own message reads everything before it.
    await send(api, b, room, "mine", {"msgtype": "m.text", "body": "read it"})
    assert await unread(api, b, room) == {"unread_notifications": counts(0)}
    await send(api, a, room, "5", {"msgtype": "m.text", "body": "and again"})
    assert await unread(api, b, room) == {"unread_notifications": counts(1)}


async def test_thread_counts(api) -> None:
    a, b, room = await setup_room(api)
    root = await send(api, a, room, "root", {"msgtype": "m.text", "body": "thread root"})
    in_thread = await send(api, a, room, "t1", {"msgtype": "m.text", "body": "in thread",
                                                "m.relates_to": {"rel_type": "m.thread", "event_id": root}})
    # Related to a threaded event by another relation: part of the same thread.
    await send(api, a, room, "t2", {"msgtype": "m.text", "body": "ref",
                                    "m.relates_to": {"rel_type": "m.reference", "event_id": in_thread}})
    # Related to the root by a non-thread relation: main timeline.
    await send(api, a, room, "m2", {"msgtype": "m.text", "body": "ref root",
                                    "m.relates_to": {"rel_type": "m.reference", "event_id": root}})
    assert await unread(api, b, room) == {"unread_notifications": counts(4)}
    assert await unread(api, b, room, THREADS) == {"unread_notifications": counts(2),
                                                   "unread_thread_notifications": {root: counts(2)}}
    await read_receipt(api, BOB, room, in_thread, root)
    assert await unread(api, b, room, THREADS) == {"unread_notifications": counts(2),
                                                   "unread_thread_notifications": {root: counts(1)}}
    await read_receipt(api, BOB, room, root, "main")
    assert await unread(api, b, room, THREADS) == {"unread_notifications": counts(1),
                                                   "unread_thread_notifications": {root: counts(1)}}
    # An unthreaded receipt covers every thread up to its event.
    last = (await event_store.max_stream_ordering(api.server.db))
    await api.server.db.write(lambda tx: on_read_receipt(tx, BOB, room, last, None))
    assert await unread(api, b, room, THREADS) == {"unread_notifications": counts(0)}


async def test_leave_clears_counts(api) -> None:
    a, b, room = await setup_room(api)
    await send(api, a, room, "1", {"msgtype": "m.text", "body": "hello"})
    await api.call("POST", f"{R}/{room}/leave", {}, token=b)
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    assert await unread(api, b, room) == {"unread_notifications": counts(0)}


async def test_get_notifications(api) -> None:
    a, b, room = await setup_room(api)
    first = await send(api, a, room, "1", {"msgtype": "m.text", "body": "one"})
    mention = await send(api, a, room, "2", {"msgtype": "m.text", "body": "two", "m.mentions": {"user_ids": [BOB]}})
    third = await send(api, a, room, "3", {"msgtype": "m.text", "body": "three"})
    await read_receipt(api, BOB, room, first, None)

    status, body = await api.call("GET", NOTIFS, token=b, query={"limit": "2"})
    assert status == 200, body
    page = body["notifications"]
    assert [n["event"]["event_id"] for n in page] == [third, mention]
    assert page[0]["room_id"] == room and "room_id" not in page[0]["event"]
    assert page[0]["actions"] == ["notify"] and page[0]["read"] is False and isinstance(page[0]["ts"], int)
    assert page[0]["event"]["content"]["body"] == "three"
    status, body = await api.call("GET", NOTIFS, token=b, query={"from": body["next_token"], "limit": "2"})
    assert [n["event"]["event_id"] for n in body["notifications"]] == [first]
    assert body["notifications"][0]["read"] is True and "next_token" not in body

    _, body = await api.call("GET", NOTIFS, token=b, query={"only": "highlight"})
    assert [n["event"]["event_id"] for n in body["notifications"]] == [mention]
    _, body = await api.call("GET", NOTIFS, token=a)
    assert body == {"notifications": []}

    for query in ({"from": "abc"}, {"limit": "-1"}, {"limit": "x"}):
        status, body = await api.call("GET", NOTIFS, token=b, query=query)
        assert status == 400 and body["errcode"] == "M_INVALID_PARAM", query
    status, _ = await api.call("GET", NOTIFS)
    assert status == 401


async def test_a_redacted_event_notifies_no_more(api) -> None:
    """A deleted message leaves the unread counts and /notifications, as in Synapse: the badge it
    left could not be cleared by reading, as nothing was left to read."""
    a, b, room = await setup_room(api)
    kept = await send(api, a, room, "1", {"msgtype": "m.text", "body": "kept"})
    spam = await send(api, a, room, "2", {"msgtype": "m.text", "body": "spam", "m.mentions": {"user_ids": [BOB]}})
    root = await send(api, a, room, "3", {"msgtype": "m.text", "body": "root"})
    in_thread = await send(api, a, room, "4", {"msgtype": "m.text", "body": "threaded", "m.relates_to": {
        "rel_type": "m.thread", "event_id": root}})
    assert await unread(api, b, room, THREADS) == {"unread_notifications": counts(3, 1),
                                                   "unread_thread_notifications": {root: counts(1)}}
    for target, txn in ((spam, "r1"), (in_thread, "r2")):
        status, _ = await api.call("PUT", f"{R}/{room}/redact/{target}/{txn}", {"reason": "spam"}, token=a)
        assert status == 200
    assert await unread(api, b, room, THREADS) == {"unread_notifications": counts(2)}
    _, body = await api.call("GET", NOTIFS, token=b)
    assert [n["event"]["event_id"] for n in body["notifications"]] == [root, kept]
    # A later receipt counts from what is left.
    await read_receipt(api, BOB, room, kept, None)
    assert await unread(api, b, room) == {"unread_notifications": counts(1)}
