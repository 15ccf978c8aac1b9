"""/sync reads every joined room at once and keeps parsed events in memory: what each room shows must
not change with that, and a redaction must reach the events already held.

Spec: client-server-api, "GET /_matrix/client/v3/sync", "Room History Visibility", "Redactions".
"""
from __future__ import annotations

import asyncio
import json

R = "/_matrix/client/v3/rooms"
SYNC = "/_matrix/client/v3/sync"
LIMIT_3 = json.dumps({"room": {"timeline": {"limit": 3}}})


async def send(api, room: str, token: str, body: str) -> str:
    status, resp = await api.call("PUT", f"{R}/{room}/send/m.room.message/{body}", {"msgtype": "m.text", "body": body},
                                  token=token)
    assert status == 200, resp
    return resp["event_id"]


def bodies(entry: dict) -> list[str]:
    return [e["content"].get("body", e["type"]) for e in entry["timeline"]["events"]]


def state_of(entry: dict, event_type: str) -> list[dict]:
    return [e for e in entry["state"]["events"] if e["type"] == event_type]


async def test_each_room_of_one_initial_sync_gets_its_own_timeline_and_state(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    # A busy shared room, a quiet room, a room whose history before bob's join is hidden from him,
    # and rooms whose topic changed just before and inside the last three events.
    busy = await api.create_room(a, preset="public_chat", name="Busy")
    quiet = await api.create_room(a, preset="public_chat", name="Quiet")
    hidden = await api.create_room(a, preset="public_chat", name="Hidden")
    await api.call("PUT", f"{R}/{hidden}/state/m.room.history_visibility", {"history_visibility": "joined"}, token=a)
    before = await api.create_room(a, preset="public_chat", topic="old")
    inside = await api.create_room(a, preset="public_chat", topic="old")
    for i in range(8):
        await send(api, busy, a, f"busy {i}")
        await send(api, hidden, a, f"secret {i}")
    for room in (busy, quiet, hidden, before, inside):
        status, resp = await api.call("POST", f"{R}/{room}/join", {}, token=b)
        assert status == 200, resp
    await send(api, quiet, a, "hello")
    await send(api, hidden, a, "seen 1")
    await send(api, hidden, a, "seen 2")
    await api.call("PUT", f"{R}/{before}/state/m.room.topic", {"topic": "new"}, token=a)
    for i in range(3):
        await send(api, before, a, f"before {i}")
    await send(api, inside, a, "inside 0")
    await api.call("PUT", f"{R}/{inside}/state/m.room.topic", {"topic": "new"}, token=a)
    await send(api, inside, a, "inside 1")

    status, sync = await api.call("GET", SYNC, query={"filter": LIMIT_3}, token=b)
    assert status == 200, sync
    joins = sync["rooms"]["join"]
    assert set(joins) == {busy, quiet, hidden, before, inside}
    assert bodies(joins[busy]) == ["busy 6", "busy 7", "m.room.member"]
    assert joins[busy]["timeline"]["limited"] is True
    assert bodies(joins[quiet]) == ["m.room.name", "m.room.member", "hello"]
    assert bodies(joins[hidden]) == ["m.room.member", "seen 1", "seen 2"]
    assert joins[hidden]["timeline"]["limited"] is True     # the room's shared-era events are visible
    assert [e["content"]["topic"] for e in state_of(joins[before], "m.room.topic")] == ["new"]
    assert [e["content"]["topic"] for e in state_of(joins[inside], "m.room.topic")] == ["old"]
    assert bodies(joins[inside]) == ["inside 0", "m.room.topic", "inside 1"]
    for entry in joins.values():       # everyone's membership is in the state or the timeline
        members = {e["state_key"] for e in state_of(entry, "m.room.member")}
        members |= {e["state_key"] for e in entry["timeline"]["events"] if e["type"] == "m.room.member"}
        assert members == {"@alice:test.local", "@bob:test.local"}
    # A longer timeline skips the hidden events, reading past them in more than one go.
    _, longer = await api.call("GET", SYNC, query={"filter": json.dumps({"room": {"timeline": {"limit": 12}}})},
                               token=b)
    timeline = longer["rooms"]["join"][hidden]["timeline"]
    shown = bodies(longer["rooms"]["join"][hidden])
    assert shown[0] == "m.room.create" and shown[-3:] == ["m.room.member", "seen 1", "seen 2"]
    assert shown.count("m.room.history_visibility") == 2 and not any(b.startswith("secret") for b in shown)
    assert timeline["limited"] is False and longer["rooms"]["join"][hidden]["state"]["events"] == []
    assert len(longer["rooms"]["join"][busy]["timeline"]["events"]) == 12
    # prev_batch of each room pages back through that room alone.
    _, page = await api.call("GET", f"{R}/{busy}/messages",
                             query={"from": joins[busy]["timeline"]["prev_batch"], "limit": "2"}, token=b)
    assert [e["content"].get("body") for e in page["chunk"]] == ["busy 5", "busy 4"]


async def test_redaction_reaches_events_a_sync_already_read(api) -> None:
    alice = await api.register("alice")
    a = alice["access_token"]
    room = await api.create_room(a, preset="public_chat", topic="to be redacted")
    message = await send(api, room, a, "regret")
    _, first = await api.call("GET", SYNC, token=a)          # reads (and keeps) both events
    entry = first["rooms"]["join"][room]
    assert bodies(entry)[-1] == "regret"
    topic = state_of(entry, "m.room.topic") or [e for e in entry["timeline"]["events"] if e["type"] == "m.room.topic"]
    topic_id = topic[0]["event_id"]

    for target, txn in ((message, "r1"), (topic_id, "r2")):
        status, resp = await api.call("PUT", f"{R}/{room}/redact/{target}/{txn}", {"reason": "oops"}, token=a)
        assert status == 200, resp
    _, again = await api.call("GET", SYNC, token=a)
    events = {e["event_id"]: e for section in ("state", "timeline")
              for e in again["rooms"]["join"][room][section]["events"]}
    assert events[message]["content"] == {}
    assert events[message]["unsigned"]["redacted_because"]["content"].get("reason") == "oops"
    # /sync's events leave out room_id (ClientEventWithoutRoomID), the redaction inside them too.
    assert "room_id" not in events[message] and "room_id" not in events[message]["unsigned"]["redacted_because"]
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=a)
    redactions = [e for e in incr["rooms"]["join"][room]["timeline"]["events"] if e["type"] == "m.room.redaction"]
    assert {e["redacts"] for e in redactions} == {message, topic_id}
    _, full = await api.call("GET", SYNC, query={"filter": json.dumps({"room": {"timeline": {"limit": 1}}})},
                             token=a)
    topics = state_of(full["rooms"]["join"][room], "m.room.topic")
    assert [e["event_id"] for e in topics] == [topic_id] and topics[0]["content"] == {}


async def test_long_poll_sees_a_new_membership_after_a_wake_for_nothing(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    muted = await api.create_room(a, preset="public_chat")
    await api.call("POST", f"{R}/{muted}/join", {}, token=b)
    not_muted = json.dumps({"room": {"not_rooms": [muted]}})
    _, first = await api.call("GET", SYNC, query={"filter": not_muted}, token=b)

    poll = asyncio.create_task(api.call("GET", SYNC, token=b, query={
        "since": first["next_batch"], "timeout": "20000", "filter": not_muted}))
    while not api.server.notifier.waiting("@bob:test.local"):
        await asyncio.sleep(0)
    await send(api, muted, a, "filtered out")                # wakes bob's request for an empty answer
    while not api.server.notifier.waiting("@bob:test.local"):
        await asyncio.sleep(0)
    assert not poll.done()
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"invite": ["@bob:test.local"]}, token=a)
    status, woke = await asyncio.wait_for(poll, 10)
    assert status == 200
    assert list(woke["rooms"]["invite"]) == [body["room_id"]]
    assert "join" not in woke["rooms"]


async def test_initial_sync_reads_do_not_grow_with_the_rooms(api, monkeypatch) -> None:
    """The state at each room's timeline start comes from state groups read together (and from
    nothing for a timeline that starts with its room), and whether each room's history was always
    shared from one read too: the reads of an initial sync stay the same whether the user is in 3
    rooms or 12."""
    from pocketserver.storage.database import Database
    alice = await api.register("alice")
    a = alice["access_token"]
    reads = 0
    original = Database.read

    async def counted(self, fn):
        nonlocal reads
        reads += 1
        return await original(self, fn)
    monkeypatch.setattr(Database, "read", counted)

    async def initial_sync_reads() -> int:
        nonlocal reads
        for cached in ("_groups", "_events", "_always_shared"):     # a first sync after a start
            getattr(api.server.roomserver.state_cache, cached).clear()
        reads = 0
        status, synced = await api.call("GET", SYNC, query={"filter": LIMIT_3}, token=a)
        assert status == 200
        assert all(state_of(entry, "m.room.create") for entry in synced["rooms"]["join"].values())
        return reads

    for i in range(3):
        room = await api.create_room(a, name=f"r{i}")
        for j in range(4):                      # longer than the timeline: its start has state
            await send(api, room, a, f"{i}-{j}")
    few = await initial_sync_reads()
    for i in range(3, 12):
        room = await api.create_room(a, name=f"r{i}")
        await send(api, room, a, f"{i}")
    assert await initial_sync_reads() <= few
