"""Events of one room are queued in order and share commits; a failed job does not fork the room.

Spec: server-server-api, "PDUs" (prev_events); DESIGN.md, "The write path".
"""
from __future__ import annotations

import asyncio
import json

R = "/_matrix/client/v3/rooms"


async def setup_room(api):
    alice = await api.register("alice")
    token = alice["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {}, token=token)
    return token, body["room_id"]


async def test_concurrent_sends_to_one_room_share_commits(api) -> None:
    token, room = await setup_room(api)
    stats = api.server.db.writer.stats
    before = stats.commits
    n = 40
    results = await asyncio.gather(*(api.call("PUT", f"{R}/{room}/send/m.room.message/t{i}", {"body": str(i)},
                                              token=token) for i in range(n)))
    assert all(status == 200 for status, _ in results)
    assert stats.commits - before < n / 2, f"{stats.commits - before} commits for {n} sends to one room"
    # The room stays a single chain: each message's only prev_event is the one stored before it.
    rows = await api.server.db.fetchall("SELECT event_id, json FROM events WHERE room_id = ? ORDER BY stream_ordering",
                                        (room,))
    ids = [r[0] for r in rows]
    prevs = [json.loads(r[1])["prev_events"] for r in rows]
    assert all(prev == [ids[i - 1]] for i, prev in enumerate(prevs) if i > 0)
    extremities = await api.server.db.fetchall("SELECT event_id FROM forward_extremities WHERE room_id = ?", (room,))
    assert [r[0] for r in extremities] == [ids[-1]]


async def test_failed_job_makes_later_queued_events_fail_then_recovers(api, monkeypatch) -> None:
    token, room = await setup_room(api)
    rs = api.server.roomserver
    original = rs.on_event_persisted

    async def failing(tx, working, pdu, position):
        if pdu.content.get("body") == "boom":
            raise RuntimeError("disk trouble")
        await original(tx, working, pdu, position)

    monkeypatch.setattr(rs, "on_event_persisted", failing)
    assert (await api.call("PUT", f"{R}/{room}/send/m.room.message/fine", {"body": "fine"}, token=token))[0] == 200
    sends = [api.call("PUT", f"{R}/{room}/send/m.room.message/{b}", {"body": b}, token=token)
             for b in ("boom", "after-1", "after-2")]
    results = await asyncio.gather(*sends)
    statuses = [s for s, _ in results]
    assert statuses[0] == 500
    # Events built on the failed one were queued behind it and are refused, never stored dangling;
    # ones built after the room view was reloaded succeed.
    for status, body in results[1:]:
        assert status in (200, 503), body
    status, body = await api.call("PUT", f"{R}/{room}/send/m.room.message/later", {"body": "later"}, token=token)
    assert status == 200, body
    stored = await api.server.db.fetchall("SELECT event_id FROM events WHERE room_id = ?", (room,))
    stored_ids = {r[0] for r in stored}
    rows = await api.server.db.fetchall("SELECT json FROM events WHERE room_id = ?", (room,))
    prevs = [p for (raw,) in rows for p in json.loads(raw)["prev_events"]]
    assert all(prev in stored_ids for prev in prevs), "an event points at a prev_event that was never stored"
    extremities = await api.server.db.fetchall("SELECT event_id FROM forward_extremities WHERE room_id = ?", (room,))
    assert len(extremities) == 1


async def test_retry_of_a_queued_transaction_returns_the_same_event(api) -> None:
    token, room = await setup_room(api)
    first, second = await asyncio.gather(
        api.call("PUT", f"{R}/{room}/send/m.room.message/same", {"body": "once"}, token=token),
        api.call("PUT", f"{R}/{room}/send/m.room.message/same", {"body": "once"}, token=token))
    assert first[0] == second[0] == 200 and first[1]["event_id"] == second[1]["event_id"]
    rows = await api.server.db.fetchall("SELECT COUNT(*) FROM events WHERE room_id = ? AND type = 'm.room.message'",
                                        (room,))
    assert rows[0][0] == 1
