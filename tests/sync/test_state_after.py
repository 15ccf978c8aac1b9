"""/sync with `use_state_after`: each room's state at the end of its timeline, in `state_after`.

Spec: client-server-api, "GET /_matrix/client/v3/sync" (`use_state_after`, `state_after`, v1.16);
MSC4222's unstable names, which matrix-js-sdk sends on every /sync.
"""
from __future__ import annotations

import json
from typing import Any

R = "/_matrix/client/v3/rooms"
SYNC = "/_matrix/client/v3/sync"
STABLE = {"use_state_after": "true"}
UNSTABLE = {"org.matrix.msc4222.use_state_after": "true"}


def keyed(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["type"], e["state_key"]): e for e in events}


async def sync(api, token: str, **query: str) -> dict[str, Any]:
    status, body = await api.call("GET", SYNC, query=query, token=token)
    assert status == 200, body
    return body


async def send(api, token: str, room: str, body: str, txn: str) -> str:
    status, sent = await api.call("PUT", f"{R}/{room}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": body},
                                  token=token)
    assert status == 200, sent
    return sent["event_id"]


async def test_initial_and_incremental_state_after(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    room = await api.create_room(a, name="Kitchen", preset="public_chat")

    first = await sync(api, a, **STABLE)
    entry = first["rooms"]["join"][room]
    assert "state" not in entry
    state = keyed(entry["state_after"]["events"])
    # The whole state, the events the timeline also holds included.
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.member", "@alice:test.local"),
            ("m.room.power_levels", ""), ("m.room.join_rules", "")} <= state.keys()
    timeline_ids = {e["event_id"] for e in entry["timeline"]["events"]}
    assert state[("m.room.create", "")]["event_id"] in timeline_ids
    assert state[("m.room.name", "")]["content"] == {"name": "Kitchen"}

    # A message alone: the room is in the response with an empty state_after (required).
    await send(api, a, room, "hello", "1")
    second = await sync(api, a, since=first["next_batch"], **STABLE)
    entry = second["rooms"]["join"][room]
    assert entry["state_after"] == {"events": []} and "state" not in entry
    assert [e["content"].get("body") for e in entry["timeline"]["events"]] == ["hello"]

    # State changed in the timeline is in state_after too, at its newest.
    for name in ("Den", "Attic"):
        assert (await api.call("PUT", f"{R}/{room}/state/m.room.name", {"name": name}, token=a))[0] == 200
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=b))[0] == 200
    third = await sync(api, a, since=second["next_batch"], **STABLE)
    entry = third["rooms"]["join"][room]
    changed = keyed(entry["state_after"]["events"])
    assert changed.keys() == {("m.room.name", ""), ("m.room.member", "@bob:test.local")}
    assert changed[("m.room.name", "")]["content"] == {"name": "Attic"}
    assert {e["event_id"] for e in entry["timeline"]["events"]} >= {e["event_id"] for e in changed.values()}

    # Without the parameter (or with false), the same sync answers in `state`.
    for query in ({}, {"use_state_after": "false"}):
        plain = await sync(api, a, since=second["next_batch"], **query)
        assert "state" in plain["rooms"]["join"][room] and "state_after" not in plain["rooms"]["join"][room]
    status, body = await api.call("GET", SYNC, query={"use_state_after": "yes"}, token=a)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_a_gap_longer_than_the_timeline(api) -> None:
    """A limited timeline: what changed in the gap, before the timeline, is in state_after too."""
    [a] = await api.tokens("alice")
    room = await api.create_room(a)
    limit = json.dumps({"room": {"timeline": {"limit": 3}}})
    first = await sync(api, a, filter=limit, **UNSTABLE)
    assert "org.matrix.msc4222.state_after" in first["rooms"]["join"][room]
    assert (await api.call("PUT", f"{R}/{room}/state/m.room.topic", {"topic": "in the gap"}, token=a))[0] == 200
    for i in range(6):
        await send(api, a, room, f"m{i}", f"t{i}")
    later = await sync(api, a, since=first["next_batch"], filter=limit, **UNSTABLE)
    entry = later["rooms"]["join"][room]
    assert entry["timeline"]["limited"] is True
    assert "state" not in entry and "state_after" not in entry
    changed = keyed(entry["org.matrix.msc4222.state_after"]["events"])
    assert changed.keys() == {("m.room.topic", "")}
    assert changed[("m.room.topic", "")]["content"] == {"topic": "in the gap"}


async def test_lazy_members_and_a_left_room(api) -> None:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    a, b, c = alice["access_token"], bob["access_token"], carol["access_token"]
    room = await api.create_room(a, name="Named", preset="public_chat")      # named: no heroes to add
    for token in (b, c):
        assert (await api.call("POST", f"{R}/{room}/join", {}, token=token))[0] == 200
    for i in range(5):
        await send(api, b, room, f"b{i}", f"b{i}")
    lazy = json.dumps({"room": {"timeline": {"limit": 3}, "state": {"lazy_load_members": True}}})
    first = await sync(api, c, filter=lazy, **STABLE)
    members = {k[1] for k in keyed(first["rooms"]["join"][room]["state_after"]["events"]) if k[0] == "m.room.member"}
    assert members == {"@bob:test.local", "@carol:test.local"}      # the timeline's senders and the user

    assert (await api.call("POST", f"{R}/{room}/leave", {}, token=c))[0] == 200
    left = await sync(api, c, since=first["next_batch"], **STABLE)
    entry = left["rooms"]["leave"][room]
    assert "state" not in entry
    own = keyed(entry["state_after"]["events"])[("m.room.member", "@carol:test.local")]
    assert own["content"]["membership"] == "leave"


async def test_a_room_with_only_ephemeral_news(api) -> None:
    """A room in the response for a typing notice alone has its (empty) state_after too, no state."""
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    room = await api.create_room(a, preset="public_chat")
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=b))[0] == 200
    first = await sync(api, b, **STABLE)
    assert (await api.call("PUT", f"{R}/{room}/typing/@alice:test.local", {"typing": True, "timeout": 10000},
                           token=a))[0] == 200
    later = await sync(api, b, since=first["next_batch"], **STABLE)
    entry = later["rooms"]["join"][room]
    assert [e["type"] for e in entry["ephemeral"]["events"]] == ["m.typing"]
    assert entry["timeline"]["events"] == []
    assert entry["state_after"] == {"events": []} and "state" not in entry
