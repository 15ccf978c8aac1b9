"""Sync work grows with what changed: unrelated traffic does not reach or slow a user's sync, and
lazy-loaded members are only those the timeline needs.

Spec: client-server-api, "Syncing", "Lazy-loading room members".
"""
from __future__ import annotations

import time

R = "/_matrix/client/v3/rooms"
SYNC = "/_matrix/client/v3/sync"


async def test_incremental_sync_after_1000_unrelated_events(api) -> None:
    alice, carol = await api.register("alice"), await api.register("carol")
    a, c = alice["access_token"], carol["access_token"]
    _, mine = await api.call("POST", "/_matrix/client/v3/createRoom", {"name": "Mine"}, token=a)
    others = []
    for i in range(5):
        _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"name": f"Other {i}"}, token=c)
        others.append(body["room_id"])
    _, first = await api.call("GET", SYNC, token=a)
    for i in range(1000):
        await api.call("PUT", f"{R}/{others[i % 5]}/send/m.room.message/{i}", {"body": f"noise {i}"}, token=c)
    await api.call("PUT", f"{R}/{mine['room_id']}/send/m.room.message/hello", {"body": "only this"}, token=a)

    started = time.perf_counter()
    status, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=a)
    elapsed = time.perf_counter() - started
    assert status == 200
    assert list(incr["rooms"]["join"]) == [mine["room_id"]]
    events = incr["rooms"]["join"][mine["room_id"]]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["only this"]
    assert incr["rooms"]["join"][mine["room_id"]]["state"]["events"] == []
    # A generous bound that only an O(account history) implementation would break.
    assert elapsed < 2.0, f"incremental sync took {elapsed:.2f}s"


async def test_lazy_loading_returns_only_needed_members(api) -> None:
    tokens = {name: (await api.register(name))["access_token"] for name in ("amy", "ben", "cat", "dan", "eve")}
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat", "name": "Named"},
                             token=tokens["amy"])    # named: no heroes, whose members would come too
    room = body["room_id"]
    for name in ("ben", "cat", "dan", "eve"):
        await api.call("POST", f"{R}/{room}/join", {}, token=tokens[name])
    for i in range(6):
        await api.call("PUT", f"{R}/{room}/send/m.room.message/{i}", {"body": str(i)},
                       token=tokens["ben" if i % 2 else "cat"])
    lazy = '{"room": {"timeline": {"limit": 4}, "state": {"lazy_load_members": true}}}'
    _, sync = await api.call("GET", SYNC, query={"filter": lazy}, token=tokens["eve"])
    joined = sync["rooms"]["join"][room]
    senders = {e["sender"] for e in joined["timeline"]["events"]}
    assert senders == {"@ben:test.local", "@cat:test.local"}
    members = {e["state_key"] for e in joined["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {"@ben:test.local", "@cat:test.local", "@eve:test.local"}
    assert joined["summary"]["m.joined_member_count"] == 5
    # Without lazy loading every member is there.
    _, full = await api.call("GET", SYNC, token=tokens["eve"])
    all_members = {e["state_key"] for e in full["rooms"]["join"][room]["state"]["events"] if e["type"] == "m.room.member"}
    all_members |= {e["state_key"] for e in full["rooms"]["join"][room]["timeline"]["events"] if e["type"] == "m.room.member"}
    assert len(all_members) == 5


async def test_initial_sync_reads_summaries_without_loading_rooms(api) -> None:
    """Summaries come from current state in one read: an initial sync over more rooms than the
    roomserver keeps in memory must not load (and evict) every room's full state."""
    alice = await api.register("alice")
    a = alice["access_token"]
    rooms = [(await api.call("POST", "/_matrix/client/v3/createRoom", {}, token=a))[1]["room_id"] for _ in range(3)]
    api.server.roomserver._rooms.clear()
    _, synced = await api.call("GET", SYNC, token=a)
    assert set(synced["rooms"]["join"]) == set(rooms)
    assert all(synced["rooms"]["join"][r]["summary"]["m.joined_member_count"] == 1 for r in rooms)
    assert not api.server.roomserver._rooms
