"""/sync over HTTP: initial and incremental sync, long-poll wake-up, invites, leaves, filters.

Spec: client-server-api, "Syncing", "GET /_matrix/client/v3/sync".
"""
from __future__ import annotations

import asyncio
import json
import time

R = "/_matrix/client/v3/rooms"
SYNC = "/_matrix/client/v3/sync"


async def test_initial_then_incremental(api) -> None:
    alice = await api.register("alice")
    a = alice["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"name": "Kitchen"}, token=a)
    room = body["room_id"]
    await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"msgtype": "m.text", "body": "one"}, token=a)
    status, first = await api.call("GET", SYNC, token=a)
    assert status == 200, first
    joined = first["rooms"]["join"][room]
    assert joined["timeline"]["events"][-1]["content"]["body"] == "one"
    state_types = {e["type"] for e in joined["state"]["events"]} | {e["type"] for e in joined["timeline"]["events"]}
    assert {"m.room.create", "m.room.name", "m.room.member"} <= state_types
    assert joined["summary"]["m.joined_member_count"] == 1

    status, empty = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=a)
    assert status == 200 and "join" not in empty["rooms"]
    await api.call("PUT", f"{R}/{room}/send/m.room.message/2", {"msgtype": "m.text", "body": "two"}, token=a)
    _, incr = await api.call("GET", SYNC, query={"since": empty["next_batch"]}, token=a)
    events = incr["rooms"]["join"][room]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["two"]
    assert events[0]["unsigned"]["transaction_id"] == "2"
    assert incr["rooms"]["join"][room]["timeline"]["limited"] is False


async def test_long_poll_wakes_on_send(api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    _, first = await api.call("GET", SYNC, token=b)

    started = time.monotonic()
    poll = asyncio.create_task(api.call("GET", SYNC, query={"since": first["next_batch"], "timeout": "20000"}, token=b))
    while not api.server.notifier.waiting("@bob:test.local"):
        await asyncio.sleep(0)      # yield until the long-poll is registered and waiting
    assert not poll.done()
    await api.call("PUT", f"{R}/{room}/send/m.room.message/x", {"msgtype": "m.text", "body": "ping"}, token=a)
    _, woke = await poll
    assert time.monotonic() - started < 5
    assert woke["rooms"]["join"][room]["timeline"]["events"][-1]["content"]["body"] == "ping"


async def test_invite_and_leave_sections(api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    _, first = await api.call("GET", SYNC, token=b)
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"name": "Secret", "invite": ["@bob:test.local"]}, token=a)
    room = body["room_id"]
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=b)
    invite = incr["rooms"]["invite"][room]["invite_state"]["events"]
    assert any(e["type"] == "m.room.name" and e["content"]["name"] == "Secret" for e in invite)
    assert any(e["type"] == "m.room.member" and e["state_key"] == "@bob:test.local" for e in invite)

    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    _, joined = await api.call("GET", SYNC, query={"since": incr["next_batch"]}, token=b)
    assert room in joined["rooms"]["join"]
    assert "invite" not in joined["rooms"]
    await api.call("POST", f"{R}/{room}/kick", {"user_id": "@bob:test.local", "reason": "bye"}, token=a)
    await api.call("PUT", f"{R}/{room}/send/m.room.message/after", {"body": "after kick"}, token=a)
    _, left = await api.call("GET", SYNC, query={"since": joined["next_batch"]}, token=b)
    leave = left["rooms"]["leave"][room]["timeline"]["events"]
    assert leave[-1]["type"] == "m.room.member" and leave[-1]["content"]["membership"] == "leave"
    assert all(e.get("content", {}).get("body") != "after kick" for e in leave)


async def test_filters_limit_and_lazy_members(api) -> None:
    alice = await api.register("alice")
    a = alice["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {}, token=a)
    room = body["room_id"]
    for i in range(5):
        await api.call("PUT", f"{R}/{room}/send/m.room.message/{i}", {"body": str(i)}, token=a)
    _, stored = await api.call("POST", "/_matrix/client/v3/user/@alice:test.local/filter",
                               {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}, token=a)
    _, first = await api.call("GET", SYNC, query={"filter": stored["filter_id"]}, token=a)
    timeline = first["rooms"]["join"][room]["timeline"]
    assert [e["content"]["body"] for e in timeline["events"]] == ["3", "4"] and timeline["limited"] is True
    # Paginate back from prev_batch with /messages.
    _, page = await api.call("GET", f"{R}/{room}/messages", query={"from": timeline["prev_batch"], "limit": "2"}, token=a)
    assert [e["content"].get("body") for e in page["chunk"]] == ["2", "1"]
    inline = json.dumps({"room": {"timeline": {"types": ["m.room.name"]}}, "event_fields": ["type"]})
    _, filtered = await api.call("GET", SYNC, query={"filter": inline}, token=a)
    assert all(set(e) == {"type"} for e in filtered["rooms"]["join"][room]["timeline"]["events"])
    status, err = await api.call("GET", SYNC, query={"filter": "77"}, token=a)
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")     # as Synapse
    status, err = await api.call("GET", SYNC, query={"since": "nonsense"}, token=a)
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")


async def test_account_data_in_sync(api) -> None:
    alice = await api.register("alice")
    a = alice["access_token"]
    _, first = await api.call("GET", SYNC, token=a)
    await api.call("PUT", "/_matrix/client/v3/user/@alice:test.local/account_data/m.direct", {"@b:x": []}, token=a)
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"], "timeout": "5000"}, token=a)
    assert {"type": "m.direct", "content": {"@b:x": []}} in incr["account_data"]["events"]


async def test_displayname_change_reaches_rooms(api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    _, first = await api.call("GET", SYNC, token=b)
    await api.call("PUT", "/_matrix/client/v3/profile/@alice:test.local/displayname", {"displayname": "Mum"}, token=a)
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=b)
    member = incr["rooms"]["join"][room]["timeline"]["events"][-1]
    assert (member["type"], member["state_key"], member["content"]["displayname"]) == (
        "m.room.member", "@alice:test.local", "Mum")
    assert member["unsigned"]["prev_content"]["displayname"] == "alice"


async def test_room_summary_counts_and_heroes(api) -> None:
    """m.heroes: the first five other members, joined ones first, then invited ones, each in the
    order they got that membership (as Synapse); only while the room has no non-empty name or
    canonical alias; the users who left when nobody else is there. With lazy-loaded members the
    heroes' membership events come in the state section."""
    tokens = {name: (await api.register(name))["access_token"] for name in ("alice", "bob", "carol", "dave")}
    a = tokens["alice"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    for name in ("dave", "bob"):
        await api.call("POST", f"{R}/{room}/join", {}, token=tokens[name])
    await api.call("POST", f"{R}/{room}/invite", {"user_id": "@carol:test.local"}, token=a)
    for i in range(6):
        await api.register(f"guest{i}")
        await api.call("POST", f"{R}/{room}/invite", {"user_id": f"@guest{i}:test.local"}, token=a)

    async def entry(token: str, **query: str) -> dict:
        _, synced = await api.call("GET", SYNC, query=query, token=token)
        return synced["rooms"]["join"][room]

    assert (await entry(a))["summary"] == {
        "m.joined_member_count": 3, "m.invited_member_count": 7,
        "m.heroes": ["@dave:test.local", "@bob:test.local", "@carol:test.local", "@guest0:test.local",
                     "@guest1:test.local"]}
    assert (await entry(tokens["bob"]))["summary"]["m.heroes"][:2] == ["@alice:test.local", "@dave:test.local"]
    for i in range(3):
        await api.call("PUT", f"{R}/{room}/send/m.room.message/m{i}", {"msgtype": "m.text", "body": "hi"}, token=a)
    lazy = json.dumps({"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}})
    shown = await entry(a, filter=lazy)
    members = {e["state_key"] for e in shown["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {"@alice:test.local", *shown["summary"]["m.heroes"]}

    await api.call("PUT", f"{R}/{room}/state/m.room.name", {"name": "Kitchen"}, token=a)
    assert "m.heroes" not in (await entry(a))["summary"]
    members = {e["state_key"] for e in (await entry(a, filter=lazy))["state"]["events"] if e["type"] == "m.room.member"}
    assert members == {"@alice:test.local"}                # a named room needs no heroes
    await api.call("PUT", f"{R}/{room}/state/m.room.name", {"name": ""}, token=a)
    assert (await entry(a))["summary"]["m.heroes"][0] == "@dave:test.local"
    await api.call("PUT", "/_matrix/client/v3/directory/room/%23kitchen:test.local", {"room_id": room}, token=a)
    await api.call("PUT", f"{R}/{room}/state/m.room.canonical_alias", {"alias": "#kitchen:test.local"}, token=a)
    assert "m.heroes" not in (await entry(a))["summary"]

    # A room everybody else has left: its heroes are the ones who left.
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    await api.call("POST", f"{R}/{room}/join", {}, token=tokens["bob"])
    await api.call("POST", f"{R}/{room}/leave", {}, token=tokens["bob"])
    assert (await entry(a))["summary"]["m.heroes"] == ["@bob:test.local"]


async def test_initial_sync_lists_rooms_the_user_was_removed_from(api) -> None:
    """Without include_leave an initial sync still lists the rooms the user was kicked or banned
    from (Synapse: "always send down rooms we were banned from or kicked from"), so a client
    signed in afresh learns it was removed; rooms left of one's own accord stay out."""
    a = (await api.register("alice"))["access_token"]
    b = (await api.register("bob"))["access_token"]
    rooms = []
    for name in ("kicked", "banned", "left"):
        _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat", "name": name},
                                 token=a)
        rooms.append(body["room_id"])
        assert (await api.call("POST", f"{R}/{body['room_id']}/join", {}, token=b))[0] == 200
    kicked, banned, left = rooms
    assert (await api.call("POST", f"{R}/{kicked}/kick", {"user_id": "@bob:test.local"}, token=a))[0] == 200
    assert (await api.call("POST", f"{R}/{banned}/ban", {"user_id": "@bob:test.local"}, token=a))[0] == 200
    assert (await api.call("POST", f"{R}/{left}/leave", {}, token=b))[0] == 200
    status, body = await api.call("GET", SYNC, token=b)
    assert status == 200
    assert set(body["rooms"].get("leave", {})) == {kicked, banned}
    last = body["rooms"]["leave"][kicked]["timeline"]["events"][-1]
    assert (last["type"], last["content"]["membership"], last["sender"]) == ("m.room.member", "leave", "@alice:test.local")
    status, body = await api.call("GET", SYNC, token=b, query={"filter": json.dumps({"room": {"include_leave": True}})})
    assert set(body["rooms"]["leave"]) == {kicked, banned, left}


async def test_state_a_timeline_filter_left_out_is_in_the_state_section(api) -> None:
    """An incremental sync whose timeline filter leaves state events out still sends the changes,
    in `state`: those before the timeline's start (spec: "Updates to the state, between the time
    indicated by the since parameter, and the start of the timeline") and, as Synapse does, those
    the filter hid after it; none the timeline shows. A later sync sends nothing again."""
    a, b, c = await api.tokens("alice", "bob", "carol")
    room = await api.create_room(a, preset="public_chat", name="Before")
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    hidden = json.dumps({"room": {"timeline": {"not_types": ["m.room.member", "m.room.name", "m.room.encryption"],
                                                "limit": 10}}})
    _, first = await api.call("GET", SYNC, query={"filter": hidden}, token=b)

    await api.call("PUT", f"{R}/{room}/state/m.room.name", {"name": "After"}, token=a)
    await api.call("POST", f"{R}/{room}/join", {}, token=c)
    await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"msgtype": "m.text", "body": "hello"}, token=a)
    await api.call("PUT", f"{R}/{room}/state/m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}, token=a)
    await api.call("PUT", f"{R}/{room}/send/m.room.message/2", {"msgtype": "m.text", "body": "bye"}, token=a)
    await api.call("PUT", f"{R}/{room}/state/m.room.topic", {"topic": "shown"}, token=a)
    _, incr = await api.call("GET", SYNC, query={"filter": hidden, "since": first["next_batch"]}, token=b)
    joined = incr["rooms"]["join"][room]
    assert joined["timeline"]["limited"] is False
    assert [e["type"] for e in joined["timeline"]["events"]] == ["m.room.message", "m.room.message", "m.room.topic"]
    state = {(e["type"], e["state_key"]): e["content"] for e in joined["state"]["events"]}
    assert state == {("m.room.name", ""): {"name": "After"},
                     ("m.room.member", "@carol:test.local"): {"membership": "join", "displayname": "carol"},
                     ("m.room.encryption", ""): {"algorithm": "m.megolm.v1.aes-sha2"}}

    _, again = await api.call("GET", SYNC, query={"filter": hidden, "since": incr["next_batch"]}, token=b)
    assert room not in again["rooms"].get("join", {})
    # Unfiltered, the timeline shows every change and the state section stays empty.
    await api.call("PUT", f"{R}/{room}/state/m.room.name", {"name": "Again"}, token=a)
    _, plain = await api.call("GET", SYNC, query={"since": incr["next_batch"]}, token=b)
    assert plain["rooms"]["join"][room]["state"]["events"] == []


async def test_room_account_data_follows_its_filter_and_reaches_left_rooms(api) -> None:
    """The room filter's account_data picks the types of a room's account data (filter.yaml,
    RoomFilter); a left room carries its own (sync.yaml, LeftRoom: its tags, markers), in the
    stretch it was left and with include_leave."""
    (a,) = await api.tokens("alice")
    room = await api.create_room(a)
    base = f"/_matrix/client/v3/user/@alice:test.local/rooms/{room}"
    for data_type in ("x.keep", "x.drop"):
        await api.call("PUT", f"{base}/account_data/{data_type}", {"v": 1}, token=a)
    await api.call("PUT", f"{base}/tags/u.work", {}, token=a)
    for room_filter, wanted in (({"not_types": ["x.drop"]}, {"x.keep", "m.tag"}), ({"types": ["x.keep"]}, {"x.keep"}),
                                ({"not_types": ["*"]}, set())):
        _, body = await api.call("GET", SYNC, query={"filter": json.dumps({"room": {"account_data": room_filter}})},
                                 token=a)
        got = {e["type"] for e in body["rooms"]["join"][room]["account_data"]["events"]}
        assert got == wanted, (room_filter, got)
    _, first = await api.call("GET", SYNC, token=a)
    await api.call("POST", f"{R}/{room}/leave", {}, token=a)
    await api.call("PUT", f"{base}/tags/u.archived", {}, token=a)
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=a)
    events = incr["rooms"]["leave"][room]["account_data"]["events"]
    assert [e["content"]["tags"] for e in events if e["type"] == "m.tag"] == [{"u.work": {}, "u.archived": {}}]
    _, whole = await api.call("GET", SYNC, query={"filter": json.dumps({"room": {"include_leave": True}})}, token=a)
    assert {e["type"] for e in whole["rooms"]["leave"][room]["account_data"]["events"]} == {"x.keep", "x.drop", "m.tag"}
