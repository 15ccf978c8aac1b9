"""Notifications that highlighted nobody are forgotten after a week; mentions and unread counts stay.

Spec: client-server-api, "GET /_matrix/client/v3/notifications" (how long they are listed is the
server's choice; Synapse keeps such rows a day).
"""
from __future__ import annotations

import asyncio
from typing import Any

from pocketserver.storage import push as store

R = "/_matrix/client/v3/rooms"
NOTIFS = "/_matrix/client/v3/notifications"
WEEK_AND_A_DAY_MS = 8 * 24 * 3600 * 1000


async def _room_with_messages(api: Any) -> tuple[str, str, dict[str, str]]:
    """alice and bob share a room; bob sends `plain`, a mention of alice, `later`. Returns
    (alice's token, the room, name -> event ID)."""
    alice = await api.register("alice")
    bob = await api.register("bob")
    room = await api.create_room(alice["access_token"], preset="public_chat")
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=bob["access_token"]))[0] == 200
    sent = {}
    for name, content in (("plain", {"msgtype": "m.text", "body": "hello"}),
                          ("mention", {"msgtype": "m.text", "body": "alice: look",
                                       "m.mentions": {"user_ids": [alice["user_id"]]}}),
                          ("later", {"msgtype": "m.text", "body": "bye"})):
        status, body = await api.call("PUT", f"{R}/{room}/send/m.room.message/{name}", content,
                                      token=bob["access_token"])
        assert status == 200, body
        sent[name] = body["event_id"]
    return alice["access_token"], room, sent


async def _age(api: Any, event_ids: list[str]) -> None:
    marks = ",".join("?" * len(event_ids))
    await api.server.db.write(lambda tx: tx.execute(
        f"UPDATE push_event_actions SET ts = ts - ? WHERE event_id IN ({marks})", (WEEK_AND_A_DAY_MS, *event_ids)))


async def _listed(api: Any, token: str, **query: str) -> list[str]:
    status, body = await api.call("GET", NOTIFS, token=token, query=query or None)
    assert status == 200, body
    return [n["event"]["event_id"] for n in body["notifications"]]


async def _unread(api: Any, token: str, room: str) -> dict[str, int]:
    status, body = await api.call("GET", "/_matrix/client/v3/sync", token=token)
    assert status == 200, body
    return body["rooms"]["join"][room]["unread_notifications"]


async def test_old_notifications_go_and_mentions_and_counts_stay(api: Any) -> None:
    alice, room, sent = await _room_with_messages(api)
    assert await _listed(api, alice) == [sent["later"], sent["mention"], sent["plain"]]
    assert await _unread(api, alice, room) == {"notification_count": 3, "highlight_count": 1}
    await _age(api, [sent["plain"], sent["mention"]])

    assert await api.server.push.forget_old_notifications() == 1

    assert await _listed(api, alice) == [sent["later"], sent["mention"]]
    assert await _listed(api, alice, only="highlight") == [sent["mention"]]
    # The counts are kept apart from the rows: reading nothing, alice still has three unread.
    assert await _unread(api, alice, room) == {"notification_count": 3, "highlight_count": 1}
    # Nothing more is old: the next pass neither deletes nor writes.
    assert await api.server.push.forget_old_notifications() == 0


async def test_a_pass_with_nothing_old_reads_one_row_and_writes_nothing(api: Any, monkeypatch: Any) -> None:
    alice, room, sent = await _room_with_messages(api)
    await _age(api, [sent["plain"], sent["mention"]])
    assert await api.server.push.forget_old_notifications() == 1      # plain goes, the mention stays

    async def no_write(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("wrote with nothing to forget")
    monkeypatch.setattr(api.server.db, "write_along", no_write)
    reads: list[int] = []
    fetchall = api.server.db.fetchall

    async def counting(sql: str, params: Any = ()) -> Any:
        rows = await fetchall(sql, params)
        if "push_event_actions" in sql:
            reads.append(len(rows))
        return rows
    monkeypatch.setattr(api.server.db, "fetchall", counting)
    assert await api.server.push.forget_old_notifications() == 0
    # The kept mention is not read again: one query, for the one (young) row after it.
    assert reads == [1]
    assert await _listed(api, alice) == [sent["later"], sent["mention"]]


async def test_the_cut_off_is_a_week(api: Any) -> None:
    now = 10 * store.KEEP_NOTIFICATIONS_MS
    rows = [(1, now - store.KEEP_NOTIFICATIONS_MS - 1, '[[["notify"],0,1,["@a:hs"]]]'),
            (2, now - store.KEEP_NOTIFICATIONS_MS - 1, '{"@a:hs": {"a": ["notify"], "h": 0, "c": 1}}'),
            (3, now - store.KEEP_NOTIFICATIONS_MS - 1, '{"@a:hs": {"a": ["notify"], "h": 1, "c": 1}}'),
            (4, now - store.KEEP_NOTIFICATIONS_MS, '[[["notify"],0,1,["@a:hs"]]]'),
            (5, now - store.KEEP_NOTIFICATIONS_MS - 1, '[[["notify"],0,1,["@a:hs"]]]')]
    await api.server.db.write(lambda tx: tx.executemany(
        "INSERT INTO push_event_actions (stream_ordering, room_id, event_id, thread_id, ts, recipients_json) "
        "VALUES (?, '!r:hs', ?, 'main', ?, ?)", [(n, f"$e{n}", ts, raw) for n, ts, raw in rows]))
    # Rows 1 and 2 (both stored forms) are old and highlighted nobody; 3 is a mention; 4 is just a
    # week old, so the pass stops there and row 5 (out of time order) waits behind it.
    assert await store.old_notifications(api.server.db, 0, now) == ([1, 2], 3)
    assert await store.old_notifications(api.server.db, 3, now) == ([], 3)
    assert await store.old_notifications(api.server.db, 3, now + 1) == ([4, 5], 5)
    assert await api.server.db.write(lambda tx: store.delete_notifications(tx, [1, 2, 404])) == 2
    left = await api.server.db.fetchall("SELECT stream_ordering FROM push_event_actions ORDER BY stream_ordering")
    assert [r[0] for r in left] == [3, 4, 5]


async def test_a_pass_looks_at_a_bounded_number(api: Any) -> None:
    """A database that kept every notification is pruned over several passes, not one long one."""
    now = 10 * store.KEEP_NOTIFICATIONS_MS
    await api.server.db.write(lambda tx: tx.executemany(
        "INSERT INTO push_event_actions (stream_ordering, room_id, event_id, thread_id, ts, recipients_json) "
        "VALUES (?, '!r:hs', ?, 'main', 0, '[[[\"notify\"],0,1,[\"@a:hs\"]]]')", [(n, f"$e{n}") for n in range(1, 26)]))
    deleted = []
    for _ in range(4):
        deleted.append(await api.server.push.forget_old_notifications(now=now))
    assert deleted == [25, 0, 0, 0]      # MAX_FORGET is far above 25
    await api.server.db.write(lambda tx: tx.executemany(
        "INSERT INTO push_event_actions (stream_ordering, room_id, event_id, thread_id, ts, recipients_json) "
        "VALUES (?, '!r:hs', ?, 'main', 0, '[[[\"notify\"],0,1,[\"@a:hs\"]]]')", [(n, f"$e{n}") for n in range(26, 51)]))
    passes = [await store.old_notifications(api.server.db, after, now, most=10) for after in (25, 35, 45, 50)]
    assert [(len(doomed), upto) for doomed, upto in passes] == [(10, 35), (10, 45), (5, 50), (0, 50)]


async def test_the_server_forgets_them_in_the_background(make_api: Any, monkeypatch: Any) -> None:
    from pocketserver import server as server_module
    monkeypatch.setattr(server_module, "FLUSH_INTERVAL_S", 0.05)
    monkeypatch.setattr(server_module, "FLUSH_RIDE_WITHIN_S", 0.0)
    api = await make_api()
    alice, room, sent = await _room_with_messages(api)
    await _age(api, [sent["plain"]])
    for _ in range(200):
        if sent["plain"] not in await _listed(api, alice):
            break
        await asyncio.sleep(0.05)
    assert await _listed(api, alice) == [sent["later"], sent["mention"]]
