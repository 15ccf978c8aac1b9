"""Simplified sliding sync (MSC4186) over HTTP: lists, ranges and counts, recency order, required_state,
room subscriptions, filters, `pos` continuity, M_UNKNOWN_POS, long-polling and every extension.

Spec: MSC4186 (request and response shapes as Synapse serves them), MSC3884/3885/3959/3960/3961.
"""
from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from tests.client.test_keys import new_device, upload

SS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
SYNC = "/_matrix/client/v3/sync"
R = "/_matrix/client/v3/rooms"
ALL_EXTENSIONS = {name: {"enabled": True} for name in ("to_device", "e2ee", "account_data", "receipts", "typing")}


async def ss(api, token: str, body: dict[str, Any], *, pos: str | None = None, timeout: int | None = None,
             status: int = 200) -> dict[str, Any]:
    query = {k: str(v) for k, v in (("pos", pos), ("timeout", timeout)) if v is not None}
    got, resp = await api.call("POST", SS, body, token=token, query=query or None)
    assert got == status, resp
    return resp


async def create_room(api, token: str, **body: Any) -> str:
    status, resp = await api.call("POST", "/_matrix/client/v3/createRoom", body, token=token)
    assert status == 200, resp
    return resp["room_id"]


async def send(api, token: str, room: str, text: str, txn: str) -> str:
    status, resp = await api.call("PUT", f"{R}/{room}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": text},
                                  token=token)
    assert status == 200, resp
    return resp["event_id"]


def bodies(entry: dict[str, Any]) -> list[str]:
    return [e["content"]["body"] for e in entry.get("timeline", []) if e["type"] == "m.room.message"]


async def test_versions_advertise_simplified_sliding_sync(api) -> None:
    status, body = await api.call("GET", "/_matrix/client/versions")
    assert status == 200 and body["unstable_features"]["org.matrix.simplified_msc3575"] is True


async def test_lists_ranges_counts_recency_and_room_fields(api) -> None:
    alice = await api.register("alice")
    a = alice["access_token"]
    rooms = [await create_room(api, a, name=f"r{i}") for i in range(4)]
    await send(api, a, rooms[1], "one", "t1")
    await send(api, a, rooms[0], "zero", "t0")
    body = {"lists": {"top": {"ranges": [[0, 1]], "timeline_limit": 1, "required_state": [["m.room.name", ""]]},
                      "rest": {"ranges": [[2, 3]], "timeline_limit": 0, "required_state": []}}}
    first = await ss(api, a, body)
    assert set(first) == {"pos", "lists", "rooms", "extensions"} and first["extensions"] == {}
    assert first["lists"] == {"top": {"count": 4}, "rest": {"count": 4}}
    # Sorted by recency: the last message first, then the newest room without messages.
    order = sorted(first["rooms"], key=lambda r: -first["rooms"][r]["bump_stamp"])
    assert order == [rooms[0], rooms[1], rooms[3], rooms[2]]
    top = first["rooms"][rooms[0]]
    assert set(top) == {"initial", "name", "joined_count", "invited_count", "bump_stamp", "notification_count",
                        "highlight_count", "required_state", "timeline", "limited", "prev_batch", "num_live"}
    assert (top["initial"], top["name"], top["joined_count"], top["invited_count"]) == (True, "r0", 1, 0)
    assert (top["notification_count"], top["highlight_count"], top["num_live"], top["limited"]) == (0, 0, 0, True)
    assert bodies(top) == ["zero"] and "room_id" not in top["timeline"][0]
    assert top["timeline"][0]["unsigned"]["transaction_id"] == "t0"
    assert [(e["type"], e["content"]) for e in top["required_state"]] == [("m.room.name", {"name": "r0"})]
    rest = first["rooms"][rooms[2]]
    assert "timeline" not in rest and "required_state" not in rest and rest["limited"] is True
    # prev_batch paginates back with /messages.
    status, page = await api.call("GET", f"{R}/{rooms[0]}/messages", query={"from": top["prev_batch"], "limit": "1"},
                                  token=a)
    assert status == 200 and page["chunk"][0]["type"] == "m.room.name"

    # Nothing changed: no rooms; a message moves r3 up, and only r3 comes with what is new.
    second = await ss(api, a, body, pos=first["pos"])
    assert second["rooms"] == {} and second["lists"] == first["lists"] and second["pos"] != first["pos"]
    await send(api, a, rooms[3], "three", "t3")
    third = await ss(api, a, body, pos=second["pos"])
    assert list(third["rooms"]) == [rooms[3]]
    r3 = third["rooms"][rooms[3]]
    # r3 was sent by "rest" without state; in "top" it also needs m.room.name, which comes now (not initial).
    assert "initial" not in r3 and [e["type"] for e in r3["required_state"]] == ["m.room.name"]
    assert bodies(r3) == ["three"] and r3["num_live"] == 1 and r3["limited"] is True
    assert r3["unstable_expanded_timeline"] is True
    assert r3["bump_stamp"] > top["bump_stamp"]
    await send(api, a, rooms[3], "again", "t4")
    fourth = await ss(api, a, body, pos=third["pos"])
    r3 = fourth["rooms"][rooms[3]]
    assert set(r3) == {"bump_stamp", "notification_count", "highlight_count", "timeline", "limited", "prev_batch",
                       "num_live"}
    assert bodies(r3) == ["again"] and r3["num_live"] == 1 and r3["limited"] is False
    # Widening the window: r1 and r2 were last sent by "rest" (no state, no timeline), so they get the
    # name and a timeline now, without `initial`; r3 and r0 are already up to date.
    moved = await ss(api, a, {"lists": {"top": {"ranges": [[0, 3]], "timeline_limit": 1,
                                                "required_state": [["m.room.name", ""]]}}}, pos=fourth["pos"])
    assert set(moved["rooms"]) == {rooms[1], rooms[2]}
    r1 = moved["rooms"][rooms[1]]
    assert "initial" not in r1 and r1["unstable_expanded_timeline"] is True and bodies(r1) == ["one"]
    assert [e["content"] for e in r1["required_state"]] == [{"name": "r1"}] and r1["num_live"] == 0
    fresh = await ss(api, a, {"lists": {"top": {"ranges": [[0, 3]], "timeline_limit": 1}}})
    assert len(fresh["rooms"]) == 4 and all(r["initial"] for r in fresh["rooms"].values())


async def test_required_state_wildcards_lazy_members_and_me(api) -> None:
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    a, b, c = alice["access_token"], bob["access_token"], carol["access_token"]
    room = await create_room(api, a, preset="public_chat", name="Family")
    for token in (b, c):
        await api.call("POST", f"{R}/{room}/join", {}, token=token)
    await send(api, b, room, "from bob", "b1")

    def members(entry: dict[str, Any]) -> set[str]:
        return {e["state_key"] for e in entry.get("required_state", []) if e["type"] == "m.room.member"}

    lazy = {"room_subscriptions": {room: {"timeline_limit": 1, "required_state": [["m.room.member", "$LAZY"]]}}}
    first = await ss(api, a, lazy)
    entry = first["rooms"][room]
    assert bodies(entry) == ["from bob"] and members(entry) == {"@bob:test.local"}
    assert (entry["joined_count"], entry["name"]) == (3, "Family")
    # Carol speaks: her member event follows; bob's was already sent.
    await send(api, b, room, "bob again", "b2")
    await send(api, c, room, "from carol", "c1")
    nxt = await ss(api, a, lazy, pos=first["pos"])
    entry = nxt["rooms"][room]
    assert bodies(entry) == ["from carol"] and members(entry) == {"@carol:test.local"} and entry["limited"] is True
    await send(api, b, room, "bob once more", "b3")
    entry = (await ss(api, a, lazy, pos=nxt["pos"]))["rooms"][room]
    assert bodies(entry) == ["bob once more"] and "required_state" not in entry

    me = await ss(api, a, {"room_subscriptions": {room: {"timeline_limit": 0,
                                                        "required_state": [["m.room.member", "$ME"]]}}})
    assert members(me["rooms"][room]) == {"@alice:test.local"}
    # Asking for more state on a connection sends it without `initial`.
    widened = await ss(api, a, {"room_subscriptions": {room: {"timeline_limit": 0,
                                                             "required_state": [["m.room.member", "$ME"],
                                                                                ["m.room.name", ""]]}}},
                       pos=me["pos"])
    entry = widened["rooms"][room]
    assert "initial" not in entry and {e["type"] for e in entry["required_state"]} == {"m.room.member", "m.room.name"}
    every_member = await ss(api, a, {"room_subscriptions": {room: {"required_state": [["m.room.member", "*"]]}}})
    assert members(every_member["rooms"][room]) == {"@alice:test.local", "@bob:test.local", "@carol:test.local"}
    everything = await ss(api, a, {"room_subscriptions": {room: {"required_state": [["*", "*"]]}}})
    types = {e["type"] for e in everything["rooms"][room]["required_state"]}
    assert {"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.name", "m.room.member"} <= types
    any_type = await ss(api, a, {"room_subscriptions": {room: {"required_state": [["*", ""]]}}})
    assert "m.room.member" not in {e["type"] for e in any_type["rooms"][room]["required_state"]}


async def test_state_skipped_by_a_limited_timeline_still_arrives(api) -> None:
    alice = await api.register("alice")
    a = alice["access_token"]
    room = await create_room(api, a, name="Old")
    body = {"room_subscriptions": {room: {"timeline_limit": 1, "required_state": [["m.room.name", ""]]}}}
    first = await ss(api, a, body)
    assert first["rooms"][room]["name"] == "Old"
    status, _ = await api.call("PUT", f"{R}/{room}/state/m.room.name/", {"name": "New"}, token=a)
    assert status == 200
    await send(api, a, room, "after rename", "m1")
    entry = (await ss(api, a, body, pos=first["pos"]))["rooms"][room]
    assert entry["limited"] is True and bodies(entry) == ["after rename"] and entry["name"] == "New"
    assert [e["content"] for e in entry["required_state"]] == [{"name": "New"}]
    assert "joined_count" not in entry        # unchanged meta is not sent again


async def test_state_in_a_whole_timeline_is_in_required_state_too(api) -> None:
    """MSC4186: required_state carries "changes in the current state of the room"; clients of
    sliding sync (matrix-rust-sdk) take state from it, not from the timeline. Synapse sends them
    in both."""
    alice, bob, carol = [await api.register(n) for n in ("alice", "bob", "carol")]
    a, b, c = alice["access_token"], bob["access_token"], carol["access_token"]
    room = await create_room(api, a, preset="public_chat", name="Old")
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    body = {"room_subscriptions": {room: {"timeline_limit": 10,
                                          "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]]}}}
    first = await ss(api, a, body)
    status, _ = await api.call("PUT", f"{R}/{room}/state/m.room.name/", {"name": "New"}, token=a)
    assert status == 200
    status, _ = await api.call("PUT", f"/_matrix/client/v3/profile/{bob['user_id']}/displayname",
                               {"displayname": "Bobby"}, token=b)
    assert status == 200
    await api.call("POST", f"{R}/{room}/join", {}, token=c)      # carol joins and says nothing
    second = await ss(api, a, body, pos=first["pos"])
    entry = second["rooms"][room]
    assert entry["limited"] is False
    in_timeline = {(e["type"], e["state_key"]) for e in entry["timeline"] if "state_key" in e}
    state = {(e["type"], e["state_key"]): e["content"] for e in entry["required_state"]}
    assert in_timeline == set(state)
    assert state[("m.room.name", "")] == {"name": "New"}
    # With lazy members, every membership change while the timeline is whole.
    assert state[("m.room.member", bob["user_id"])]["displayname"] == "Bobby"
    assert state[("m.room.member", carol["user_id"])]["membership"] == "join"

    # A later sync with nothing new in state sends none.
    await send(api, b, room, "plain", "p1")
    again = await ss(api, a, body, pos=second["pos"])
    assert bodies(again["rooms"][room]) == ["plain"]
    assert [e["state_key"] for e in again["rooms"][room].get("required_state", [])] == []


async def test_a_lazy_member_sent_before_is_updated_across_a_limited_timeline(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    room = await create_room(api, a, preset="public_chat")
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    await send(api, b, room, "hi from bob", "b1")
    body = {"room_subscriptions": {room: {"timeline_limit": 1, "required_state": [["m.room.member", "$LAZY"]]}}}
    first = await ss(api, a, body)
    assert {e["state_key"] for e in first["rooms"][room]["required_state"]} == {bob["user_id"]}
    status, _ = await api.call("PUT", f"/_matrix/client/v3/profile/{bob['user_id']}/displayname",
                               {"displayname": "Bobby"}, token=b)
    assert status == 200
    for n in range(3):
        await send(api, a, room, f"alice {n}", f"a{n}")
    entry = (await ss(api, a, body, pos=first["pos"]))["rooms"][room]
    assert entry["limited"] is True and bodies(entry) == ["alice 2"]
    state = {e["state_key"]: e["content"] for e in entry["required_state"]}
    assert state[bob["user_id"]]["displayname"] == "Bobby"


async def test_subscriptions_heroes_invites_and_unread_counts(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    chat = await create_room(api, b, preset="trusted_private_chat", invite=["@alice:test.local"], is_direct=True)
    # The inviter's DM is named after the invitee before they join: createRoom's invite carries
    # their profile, as /invite's does.
    own = await ss(api, b, {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1, "required_state": []}}})
    assert own["rooms"][chat]["heroes"] == [{"user_id": "@alice:test.local", "displayname": "alice"}]
    first = await ss(api, a, {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 3,
                                                "required_state": [["*", "*"]]}}})
    invite = first["rooms"][chat]
    assert set(invite) == {"initial", "invite_state", "bump_stamp", "notification_count", "highlight_count",
                           "heroes", "is_dm"}
    assert invite["is_dm"] is True and invite["heroes"] == [{"user_id": "@bob:test.local", "displayname": "bob"}]
    assert any(e["type"] == "m.room.member" and e["state_key"] == "@alice:test.local" for e in invite["invite_state"])
    await api.call("POST", f"{R}/{chat}/join", {}, token=a)
    await send(api, b, chat, "hello alice", "h1")
    joined = await ss(api, a, {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 3,
                                                 "required_state": [["*", "*"]]}}}, pos=first["pos"])
    entry = joined["rooms"][chat]
    assert entry["initial"] is True and entry["notification_count"] == 1 and entry["joined_count"] == 2
    assert entry["heroes"] == [{"user_id": "@bob:test.local", "displayname": "bob"}] and "name" not in entry
    assert bodies(entry) == ["hello alice"] and entry["num_live"] >= 1
    # Reading clears the count, which reaches the client even with no new event.
    status, _ = await api.call("POST", f"{R}/{chat}/receipt/m.read/{entry['timeline'][-1]['event_id']}", {}, token=a)
    assert status == 200
    read = await ss(api, a, {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 3}}}, pos=joined["pos"])
    assert read["rooms"][chat]["notification_count"] == 0 and "timeline" not in read["rooms"][chat]

    # A subscription brings a room outside every range; rooms the user is not in are ignored.
    other = await create_room(api, a, name="Outside")
    stranger = await create_room(api, b, name="Not mine")
    sub = await ss(api, a, {"lists": {"all": {"ranges": [[0, 0]], "timeline_limit": 0}},
                            "room_subscriptions": {chat: {"timeline_limit": 1}, stranger: {"timeline_limit": 1}}})
    assert set(sub["rooms"]) == {other, chat} and sub["lists"]["all"]["count"] == 2


async def test_filters(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    dm = await create_room(api, a, preset="trusted_private_chat", invite=["@bob:test.local"])
    plain = await create_room(api, a, name="Plain")
    secret = await create_room(api, a, name="Secret", initial_state=[
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    space = await create_room(api, a, name="Space", creation_content={"type": "m.space"})
    status, _ = await api.call("PUT", f"{R}/{space}/state/m.space.child/{plain}", {"via": ["test.local"]}, token=a)
    assert status == 200
    invited = await create_room(api, b, invite=["@alice:test.local"])
    await api.call("PUT", "/_matrix/client/v3/user/@alice:test.local/account_data/m.direct", {"@bob:test.local": [dm]},
                   token=a)

    def listing(filters: dict[str, Any]) -> dict[str, Any]:
        return {"ranges": [[0, 20]], "timeline_limit": 0, "filters": filters}

    body = {"lists": {"dms": listing({"is_dm": True}), "not_dms": listing({"is_dm": False}),
                      "invites": listing({"is_invite": True}), "encrypted": listing({"is_encrypted": True}),
                      "spaces": listing({"room_types": ["m.space"]}), "rooms": listing({"not_room_types": ["m.space"]}),
                      "normal": listing({"room_types": [None]}), "in_space": listing({"spaces": [space]})}}
    got = await ss(api, a, body)
    assert {name: v["count"] for name, v in got["lists"].items()} == {
        "dms": 1, "not_dms": 4, "invites": 1, "encrypted": 1, "spaces": 1, "rooms": 4, "normal": 4, "in_space": 1}
    assert got["rooms"][dm]["is_dm"] is True and "is_dm" not in got["rooms"][plain]
    assert got["rooms"][invited]["invite_state"] and secret in got["rooms"]
    # m.direct changing moves rooms between lists on the same connection.
    await api.call("PUT", "/_matrix/client/v3/user/@alice:test.local/account_data/m.direct", {"@bob:test.local": []},
                   token=a)
    again = await ss(api, a, body, pos=got["pos"])
    assert again["lists"]["dms"]["count"] == 0 and again["lists"]["not_dms"]["count"] == 5


async def test_tag_filters(api) -> None:
    """Spec: MSC4186 "Filters": `tags` (any of them) and `not_tags` (none of them, taking priority)."""
    alice = await api.register("alice")
    a = alice["access_token"]
    rooms = {name: await create_room(api, a, name=name) for name in ("fav", "low", "both", "plain")}

    async def tag(room: str, name: str, method: str = "PUT") -> None:
        status, body = await api.call(method, f"/_matrix/client/v3/user/@alice:test.local/rooms/{room}/tags/{name}",
                                      {} if method == "PUT" else None, token=a)
        assert status == 200, body
    await tag(rooms["fav"], "m.favourite")
    await tag(rooms["low"], "m.lowpriority")
    await tag(rooms["both"], "m.favourite")
    await tag(rooms["both"], "u.work")
    await tag(rooms["both"], "m.lowpriority")

    def listing(filters: dict[str, Any]) -> dict[str, Any]:
        return {"ranges": [[0, 20]], "timeline_limit": 0, "filters": filters}

    body = {"lists": {"favourites": listing({"tags": ["m.favourite"]}),
                      "not_low": listing({"not_tags": ["m.lowpriority"]}),
                      "fav_not_low": listing({"tags": ["m.favourite", "u.work"], "not_tags": ["m.lowpriority"]}),
                      "untagged_only": listing({"not_tags": ["m.favourite", "m.lowpriority", "u.work"]})}}
    got = await ss(api, a, body)

    counts = {name: v["count"] for name, v in got["lists"].items()}
    assert counts == {"favourites": 2, "not_low": 2, "fav_not_low": 1, "untagged_only": 1}, counts
    # Tags changing on the same connection move rooms between lists.
    await tag(rooms["both"], "m.lowpriority", "DELETE")
    await tag(rooms["plain"], "m.lowpriority")
    again = await ss(api, a, body, pos=got["pos"])
    counts = {name: v["count"] for name, v in again["lists"].items()}
    assert counts == {"favourites": 2, "not_low": 2, "fav_not_low": 2, "untagged_only": 0}, counts


async def test_first_response_reads_room_facts_without_loading_each_room(api, monkeypatch) -> None:
    """A user in more rooms than the roomserver keeps: the list's facts come from one read and the
    rooms sent from current state; only a space has its state loaded, for its children. Loading every
    room had made a first response over 400 rooms take ~0.9 s, and pushed the rooms in use out."""
    import pocketserver.roomserver as roomserver
    alice = await api.register("alice")
    a = alice["access_token"]
    plain = [await create_room(api, a, name=f"r{i}") for i in range(5)]
    secret = await create_room(api, a, name="Secret", initial_state=[
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
    space = await create_room(api, a, name="Space", creation_content={"type": "m.space"})
    await create_room(api, a, name="Odd", creation_content={"type": 7})   # not a string: counts as no room type
    status, _ = await api.call("PUT", f"{R}/{space}/state/m.space.child/{plain[0]}", {"via": ["test.local"]}, token=a)
    assert status == 200
    await send(api, a, plain[3], "newest", "t1")
    rs = api.server.roomserver
    rs._rooms.clear()     # as if other users' rooms had pushed this user's out of the cache
    loaded: list[str] = []
    real_load = roomserver.load_room_state

    async def counting_load(db, room_id):
        loaded.append(room_id)
        return await real_load(db, room_id)
    monkeypatch.setattr(roomserver, "load_room_state", counting_load)

    def listing(filters: dict[str, Any]) -> dict[str, Any]:
        return {"ranges": [[0, 0]], "timeline_limit": 1, "filters": filters}
    everything = {**listing({}), "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]]}
    got = await ss(api, a, {"lists": {"all": everything, "encrypted": listing({"is_encrypted": True}),
                                      "spaces": listing({"room_types": ["m.space"]}),
                                      "normal": listing({"room_types": [None]}),
                                      "in_space": listing({"spaces": [space]})}})
    assert {name: v["count"] for name, v in got["lists"].items()} == {
        "all": 8, "encrypted": 1, "spaces": 1, "normal": 7, "in_space": 1}
    # Each list's top room: the newest message's, the encrypted one, the space, and the space's child.
    assert set(got["rooms"]) == {plain[3], secret, space, plain[0]}
    assert loaded == [space]
    assert got["rooms"][secret]["name"] == "Secret" and got["rooms"][plain[3]]["joined_count"] == 1
    assert bodies(got["rooms"][plain[3]]) == ["newest"]
    # Read for all the rooms at once, the state sent is the same: the name, and the timeline's sender.
    assert sorted((e["type"], e["state_key"]) for e in got["rooms"][plain[3]]["required_state"]) == [
        ("m.room.member", "@alice:test.local"), ("m.room.name", "")]
    assert [e["content"] for e in got["rooms"][plain[3]]["required_state"] if e["type"] == "m.room.name"] == [
        {"name": "r3"}]


async def test_pos_continuity_unknown_pos_and_conn_id(api) -> None:
    alice = await api.register("alice")
    a = alice["access_token"]
    room = await create_room(api, a, name="Kitchen")
    body = {"lists": {"all": {"ranges": [[0, 0]], "timeline_limit": 2}}}
    first = await ss(api, a, body)
    await send(api, a, room, "one", "1")
    second = await ss(api, a, body, pos=first["pos"])
    # A lost response: the same pos again gives the same news.
    retry = await ss(api, a, body, pos=first["pos"])
    assert bodies(retry["rooms"][room]) == bodies(second["rooms"][room]) == ["one"]
    third = await ss(api, a, body, pos=retry["pos"])
    assert third["rooms"] == {}
    # Positions before the one last used are forgotten; unknown ones are refused as Synapse does.
    for pos in (first["pos"], "garbage", third["pos"] + "9"):
        err = await ss(api, a, body, pos=pos, status=400)
        assert err["errcode"] == "M_UNKNOWN_POS"
    # conn_id keeps connections of one device apart; a request without pos restarts only its own.
    other = await ss(api, a, {**body, "conn_id": "notifications"})
    assert other["rooms"][room]["initial"] is True
    await ss(api, a, body, pos=third["pos"])
    await ss(api, a, {**body, "conn_id": "notifications"}, pos=other["pos"])
    err = await ss(api, a, {"lists": {"all": {"ranges": [[1, 0]]}}}, status=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await ss(api, a, {"lists": []}, status=400)
    assert err["errcode"] == "M_BAD_JSON"


async def test_long_poll_woken_by_new_message(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    room = await create_room(api, a, preset="public_chat")
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    body = {"lists": {"all": {"ranges": [[0, 5]], "timeline_limit": 5}}}
    first = await ss(api, b, body)
    started = time.monotonic()
    poll = asyncio.create_task(ss(api, b, body, pos=first["pos"], timeout=20000))
    while not api.server.notifier.waiting("@bob:test.local"):
        await asyncio.sleep(0)      # yield until the long-poll is asleep, its first look empty
    assert not poll.done()
    await send(api, a, room, "ping", "p")
    woke = await poll
    assert time.monotonic() - started < 5
    assert bodies(woke["rooms"][room]) == ["ping"] and woke["rooms"][room]["num_live"] == 1
    # With nothing new the poll ends at its timeout with an empty response and a usable pos.
    empty = await ss(api, b, body, pos=woke["pos"], timeout=10)
    assert empty["rooms"] == {} and (await ss(api, b, body, pos=empty["pos"]))["rooms"] == {}


async def test_to_device_and_e2ee_extensions(api) -> None:
    alice = await new_device(api, "alice")
    bob = await new_device(api, "bob", seed=2)
    ext = {"extensions": {"to_device": {"enabled": True, "limit": 2}, "e2ee": {"enabled": True}}}
    status, _ = await upload(api, alice, {"device_keys": alice.device_keys(), "one_time_keys": alice.one_time_keys(0, 3),
                                          "fallback_keys": alice.fallback_key()})
    assert status == 200
    first = await ss(api, alice.token, ext)
    assert first["extensions"]["e2ee"] == {"device_one_time_keys_count": {"signed_curve25519": 3},
                                           "device_unused_fallback_key_types": ["signed_curve25519"]}
    assert first["extensions"]["to_device"] == {"next_batch": "0", "events": []}
    for n in range(3):
        status, _ = await api.call("PUT", f"/_matrix/client/v3/sendToDevice/m.test/t{n}",
                                   {"messages": {alice.user_id: {alice.device_id: {"n": n}}}}, token=bob.token)
        assert status == 200
    second = await ss(api, alice.token, ext, pos=first["pos"])
    got = second["extensions"]["to_device"]
    assert [e["content"]["n"] for e in got["events"]] == [0, 1] and got["events"][0]["sender"] == bob.user_id
    assert got["events"][0]["type"] == "m.test"
    # Without acknowledging, the same messages come again; `since` acknowledges and deletes them.
    assert (await ss(api, alice.token, ext, pos=second["pos"]))["extensions"]["to_device"]["events"] == got["events"]
    acked = {"extensions": {**ext["extensions"], "to_device": {"enabled": True, "since": got["next_batch"]}}}
    third = await ss(api, alice.token, acked)
    assert [e["content"]["n"] for e in third["extensions"]["to_device"]["events"]] == [2]
    done = {"conn_id": "other", "extensions": {"to_device": {"enabled": True,
                                                             "since": third["extensions"]["to_device"]["next_batch"]}}}
    assert (await ss(api, alice.token, done))["extensions"]["to_device"]["events"] == []

    # Device lists: bob joins a room with alice and uploads keys.
    room = await create_room(api, alice.token, preset="public_chat")
    await api.call("POST", f"{R}/{room}/join", {}, token=bob.token)
    status, _ = await upload(api, bob, {"device_keys": bob.device_keys()})
    assert status == 200
    fourth = await ss(api, alice.token, ext, pos=third["pos"])
    assert fourth["extensions"]["e2ee"]["device_lists"] == {"changed": [bob.user_id], "left": []}
    await api.call("POST", f"{R}/{room}/leave", {}, token=bob.token)
    fifth = await ss(api, alice.token, ext, pos=fourth["pos"])
    assert fifth["extensions"]["e2ee"]["device_lists"] == {"changed": [], "left": [bob.user_id]}


async def test_account_data_extension_scoping(api) -> None:
    alice = await api.register("alice")
    a = alice["access_token"]
    in_list = await create_room(api, a, name="listed")
    outside = await create_room(api, a, name="outside")
    await send(api, a, in_list, "newest", "n")
    for room, value in ((in_list, 1), (outside, 2)):
        await api.call("PUT", f"/_matrix/client/v3/user/@alice:test.local/rooms/{room}/account_data/m.tag",
                       {"tags": {"u.n": {"order": value}}}, token=a)
    await api.call("PUT", "/_matrix/client/v3/user/@alice:test.local/account_data/org.example.cfg", {"a": 1}, token=a)
    body = {"lists": {"top": {"ranges": [[0, 0]], "timeline_limit": 0}},
            "extensions": {"account_data": {"enabled": True, "lists": ["top"], "rooms": []}}}
    first = await ss(api, a, body)
    data = first["extensions"]["account_data"]
    assert {"type": "org.example.cfg", "content": {"a": 1}} in data["global"]
    assert any(e["type"] == "m.push_rules" for e in data["global"])
    assert data["rooms"] == {in_list: [{"type": "m.tag", "content": {"tags": {"u.n": {"order": 1}}}}]}
    # Incremental: only what changed; a subscribed room new to the scope gets all of its data.
    await api.call("PUT", "/_matrix/client/v3/user/@alice:test.local/account_data/org.example.cfg", {"a": 2}, token=a)
    scoped = {**body, "room_subscriptions": {outside: {"timeline_limit": 0}},
              "extensions": {"account_data": {"enabled": True, "lists": ["top"], "rooms": [outside]}}}
    second = await ss(api, a, scoped, pos=first["pos"])
    data = second["extensions"]["account_data"]
    assert data["global"] == [{"type": "org.example.cfg", "content": {"a": 2}}]
    assert data["rooms"] == {outside: [{"type": "m.tag", "content": {"tags": {"u.n": {"order": 2}}}}]}
    third = await ss(api, a, scoped, pos=second["pos"])
    assert third["extensions"]["account_data"] == {"global": [], "rooms": {}}


async def test_receipts_and_typing_extensions(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    room = await create_room(api, a, preset="public_chat")
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    event_id = await send(api, a, room, "read me", "r")
    await api.call("POST", f"{R}/{room}/receipt/m.read/{event_id}", {}, token=b)
    body = {"lists": {"all": {"ranges": [[0, 5]], "timeline_limit": 1}},
            "extensions": {"receipts": {"enabled": True}, "typing": {"enabled": True}}}
    first = await ss(api, a, body)
    receipt = first["extensions"]["receipts"]["rooms"][room]
    assert receipt["type"] == "m.receipt"
    assert set(receipt["content"][event_id]["m.read"]) == {"@bob:test.local"}
    assert first["extensions"]["typing"] == {"rooms": {}}
    status, _ = await api.call("PUT", f"{R}/{room}/typing/@bob:test.local", {"typing": True, "timeout": 30000}, token=b)
    assert status == 200
    second = await ss(api, a, body, pos=first["pos"], timeout=5000)
    assert second["extensions"]["typing"]["rooms"][room] == {"type": "m.typing",
                                                            "content": {"user_ids": ["@bob:test.local"]}}
    assert second["extensions"]["receipts"] == {"rooms": {}}
    await api.call("PUT", f"{R}/{room}/typing/@bob:test.local", {"typing": False}, token=b)
    third = await ss(api, a, body, pos=second["pos"], timeout=5000)
    assert third["extensions"]["typing"]["rooms"][room]["content"] == {"user_ids": []}
    # Rooms outside the scope get nothing.
    scoped = {**body, "extensions": {"typing": {"enabled": True, "lists": []}}}
    await api.call("PUT", f"{R}/{room}/typing/@bob:test.local", {"typing": True, "timeout": 30000}, token=b)
    assert (await ss(api, a, scoped, pos=third["pos"]))["extensions"]["typing"] == {"rooms": {}}


async def test_latency_compared_with_sync(api) -> None:
    """Prints median latencies of /sync and sliding sync, initial and incremental (no assertion on time)."""
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    rooms = []
    for i in range(20):
        room = await create_room(api, a, preset="public_chat", name=f"room {i}")
        await api.call("POST", f"{R}/{room}/join", {}, token=b)
        for n in range(3):
            await send(api, a, room, f"{i}.{n}", f"{i}-{n}")
        rooms.append(room)
    body = {"lists": {"all": {"ranges": [[0, 19]], "timeline_limit": 10, "required_state": [["*", "*"]]}},
            "extensions": ALL_EXTENSIONS}
    timings: dict[str, list[float]] = {"sync initial": [], "sync incremental": [], "sliding initial": [],
                                       "sliding incremental": []}

    async def timed(name: str, method: str, path: str, query: dict[str, str] | None, json: Any = None) -> Any:
        started = time.perf_counter()
        status, resp = await api.call(method, path, json, token=b, query=query)
        timings[name].append((time.perf_counter() - started) * 1000)
        assert status == 200, resp
        return resp

    for round_ in range(7):
        full = await timed("sync initial", "GET", SYNC, None)
        first = await timed("sliding initial", "POST", SS, None, body)
        assert len(first["rooms"]) == 20
        await send(api, a, rooms[round_], f"new {round_}", f"new-{round_}")
        incr = await timed("sync incremental", "GET", SYNC, {"since": full["next_batch"]})
        nxt = await timed("sliding incremental", "POST", SS, {"pos": first["pos"]}, body)
        assert list(nxt["rooms"]) == [rooms[round_]] and rooms[round_] in incr["rooms"]["join"]
    print()
    for name, values in timings.items():
        print(f"latency median {name}: {statistics.median(values):.1f} ms (20 rooms, {len(values)} runs)")


async def test_a_kick_is_the_end_of_a_room_the_client_has_and_a_new_invite_is_sent(api) -> None:
    """Kicked (or banned, or leaving) from a room the connection has: the next response carries
    what happened since, ending with the kick, not the room again as `initial` (as Synapse). An
    invite rejected and made again between two requests is sent again, with its new inviter."""
    a, b, c = await api.tokens("alice", "bob", "carol")
    room = await create_room(api, a, preset="public_chat")
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=b))[0] == 200
    for n in range(3):
        await send(api, a, room, f"msg{n}", f"k{n}")
    body = {"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 3, "required_state": []}}}
    first = await ss(api, b, body)
    assert bodies(first["rooms"][room]) == ["msg0", "msg1", "msg2"]
    assert (await api.call("POST", f"{R}/{room}/kick", {"user_id": "@bob:test.local"}, token=a))[0] == 200
    second = await ss(api, b, body, pos=first["pos"])
    entry = second["rooms"][room]
    assert "initial" not in entry and entry["limited"] is False, entry
    assert [(e["type"], e.get("content", {}).get("membership")) for e in entry["timeline"]] == [
        ("m.room.member", "leave")]
    assert entry["num_live"] == 1

    other = await create_room(api, a, invite=["@bob:test.local"])
    third = await ss(api, b, body, pos=second["pos"])
    assert third["rooms"][other]["invite_state"]
    assert (await api.call("POST", f"{R}/{other}/leave", {}, token=b))[0] == 200
    await api.call("PUT", f"{R}/{other}/state/m.room.power_levels", {"users": {"@alice:test.local": 100,
                                                                                "@carol:test.local": 100}}, token=a)
    await api.call("POST", f"{R}/{other}/invite", {"user_id": "@carol:test.local"}, token=a)
    assert (await api.call("POST", f"{R}/{other}/join", {}, token=c))[0] == 200
    assert (await api.call("POST", f"{R}/{other}/invite", {"user_id": "@bob:test.local"}, token=c))[0] == 200
    fourth = await ss(api, b, body, pos=third["pos"])
    invite = fourth["rooms"][other]["invite_state"]
    mine = next(e for e in invite if e["type"] == "m.room.member" and e["state_key"] == "@bob:test.local")
    assert mine["sender"] == "@carol:test.local"


async def test_encryption_turned_on_after_a_kick_does_not_show_in_filters(api) -> None:
    """The is_encrypted filter judges a room the user left by its state at the leave, as its name
    and required_state are: encryption turned on afterwards is not theirs to learn (as Synapse's
    membership snapshots)."""
    a, b = await api.tokens("alice", "bob")
    room = await create_room(api, a, preset="public_chat")
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=b))[0] == 200
    body = {"lists": {"enc": {"ranges": [[0, 9]], "timeline_limit": 1, "filters": {"is_encrypted": True}},
                      "all": {"ranges": [[0, 9]], "timeline_limit": 1}}}
    first = await ss(api, b, body)
    assert first["lists"]["enc"]["count"] == 0
    await api.call("POST", f"{R}/{room}/kick", {"user_id": "@bob:test.local"}, token=a)
    await api.call("PUT", f"{R}/{room}/state/m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}, token=a)
    second = await ss(api, b, body, pos=first["pos"])
    assert second["lists"]["enc"]["count"] == 0 and second["lists"]["all"]["count"] == 1
    fresh = await ss(api, b, body)                 # a new connection reads the same
    assert fresh["lists"]["enc"]["count"] == 0 and fresh["lists"]["all"]["count"] == 1
