"""Room upgrades over HTTP: the replacement room, copied state, tombstone, aliases and refusals.

Spec: client-server-api, "Room Upgrades".
"""
from __future__ import annotations

from urllib.parse import quote

import pytest

V3 = "/_matrix/client/v3"
R = f"{V3}/rooms"



async def state_map(api, room, token):
    status, events = await api.call("GET", f"{R}/{room}/state", token=token)
    assert status == 200, events
    return {(e["type"], e["state_key"]): e for e in events}


@pytest.mark.parametrize("old_version,new_version", [("10", "11"), ("11", "12"), ("12", "12"), ("12", "11"),
                                                      ("1", "10")])
async def test_upgrade_copies_state_and_tombstones(api, old_version, new_version) -> None:
    a, b, c = await api.tokens("alice", "bob", "carol")
    status, body = await api.call("POST", f"{V3}/createRoom", {
        "room_version": old_version, "preset": "public_chat", "visibility": "public", "name": "Family",
        "topic": "Dinner", "room_alias_name": "family",
        "initial_state": [{"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
                          {"type": "m.room.avatar", "content": {"url": "mxc://test.local/a"}},
                          {"type": "org.example.custom", "content": {"x": 1}}]}, token=a)
    assert status == 200, body
    old = body["room_id"]
    await api.call("POST", f"{R}/{old}/join", {}, token=b)
    await api.call("POST", f"{R}/{old}/join", {}, token=c)
    await api.call("POST", f"{R}/{old}/ban", {"user_id": "@carol:test.local", "reason": "spam"}, token=a)
    await api.call("PUT", f"{V3}/directory/room/{quote('#alt:test.local')}", {"room_id": old}, token=a)

    status, body = await api.call("POST", f"{R}/{old}/upgrade", {"new_version": new_version}, token=a)
    assert status == 200, body
    new = body["replacement_room"]
    assert new != old and new.startswith("!")

    state = await state_map(api, new, a)
    create = state[("m.room.create", "")]["content"]
    assert create["room_version"] == new_version
    assert create["predecessor"]["room_id"] == old
    old_state = await state_map(api, old, a)
    tombstone = old_state[("m.room.tombstone", "")]
    assert tombstone["content"]["replacement_room"] == new
    if new_version == "12":
        assert "event_id" not in create["predecessor"]
    else:
        assert create["predecessor"]["event_id"] == tombstone["event_id"]
    assert state[("m.room.name", "")]["content"] == {"name": "Family"}
    assert state[("m.room.topic", "")]["content"] == {"topic": "Dinner"}
    assert state[("m.room.avatar", "")]["content"] == {"url": "mxc://test.local/a"}
    assert state[("m.room.encryption", "")]["content"]["algorithm"] == "m.megolm.v1.aes-sha2"
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
    assert state[("m.room.member", "@alice:test.local")]["content"]["membership"] == "join"
    assert ("m.room.member", "@bob:test.local") not in state           # memberships are not copied
    assert state[("m.room.member", "@carol:test.local")]["content"] == {"membership": "ban", "reason": "spam"}
    assert ("org.example.custom", "") not in state
    users_pl = state[("m.room.power_levels", "")]["content"]["users"]
    if new_version == "12":
        assert "@alice:test.local" not in users_pl      # creators have infinite power, never listed
    else:
        assert users_pl["@alice:test.local"] == 100

    # Aliases moved with the canonical alias; directory entry moved; old room locked down.
    _, resolved = await api.call("GET", f"{V3}/directory/room/{quote('#family:test.local')}")
    assert resolved["room_id"] == new
    _, aliases = await api.call("GET", f"{R}/{new}/aliases", token=a)
    assert aliases["aliases"] == ["#alt:test.local", "#family:test.local"]
    assert state[("m.room.canonical_alias", "")]["content"] == {"alias": "#family:test.local"}
    assert old_state[("m.room.canonical_alias", "")]["content"] == {}
    _, vis = await api.call("GET", f"{V3}/directory/list/room/{old}")
    assert vis == {"visibility": "private"}
    _, vis = await api.call("GET", f"{V3}/directory/list/room/{new}")
    assert vis == {"visibility": "public"}
    old_pl = old_state[("m.room.power_levels", "")]["content"]
    assert old_pl["events_default"] == 50 and old_pl["invite"] == 50
    status, body = await api.call("PUT", f"{R}/{old}/send/m.room.message/1", {"body": "still here?"}, token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # Bob can follow into the public replacement room.
    assert (await api.call("POST", f"{R}/{new}/join", {}, token=b))[0] == 200


async def test_upgrade_gives_temporary_power_and_restores_it(api) -> None:
    a, b = await api.tokens("alice", "bob")
    # Bob may send the tombstone (level 50) but not everything the copy needs (state_default 60).
    _, body = await api.call("POST", f"{V3}/createRoom", {
        "room_version": "10", "preset": "public_chat",
        "power_level_content_override": {"state_default": 60, "users": {"@alice:test.local": 100,
                                                                        "@bob:test.local": 50},
                                         "events": {"m.room.tombstone": 50}}}, token=a)
    old = body["room_id"]
    await api.call("POST", f"{R}/{old}/join", {}, token=b)
    status, body = await api.call("POST", f"{R}/{old}/upgrade", {"new_version": "11"}, token=b)
    assert status == 200, body
    state = await state_map(api, body["replacement_room"], b)
    levels = state[("m.room.power_levels", "")]["content"]
    assert levels["users"]["@bob:test.local"] == 50 and levels["state_default"] == 60


async def test_upgrade_to_v12_with_additional_creators(api) -> None:
    a, b = await api.tokens("alice", "bob")
    _, body = await api.call("POST", f"{V3}/createRoom", {"room_version": "11", "preset": "public_chat"}, token=a)
    old = body["room_id"]
    status, body = await api.call("POST", f"{R}/{old}/upgrade",
                                  {"new_version": "12", "additional_creators": ["@bob:test.local"]}, token=a)
    assert status == 200, body
    state = await state_map(api, body["replacement_room"], a)
    assert state[("m.room.create", "")]["content"]["additional_creators"] == ["@bob:test.local"]
    assert "@bob:test.local" not in state[("m.room.power_levels", "")]["content"]["users"]


async def test_upgrade_space_copies_children(api) -> None:
    (a,) = await api.tokens("alice")
    _, body = await api.call("POST", f"{V3}/createRoom", {"creation_content": {"type": "m.space"}}, token=a)
    space = body["room_id"]
    await api.call("PUT", f"{R}/{space}/state/m.space.child/!child:test.local", {"via": ["test.local"]}, token=a)
    status, body = await api.call("POST", f"{R}/{space}/upgrade", {"new_version": "12"}, token=a)
    assert status == 200, body
    state = await state_map(api, body["replacement_room"], a)
    assert state[("m.room.create", "")]["content"]["type"] == "m.space"
    assert state[("m.space.child", "!child:test.local")]["content"] == {"via": ["test.local"]}


async def test_upgrade_refusals(api) -> None:
    a, b, c = await api.tokens("alice", "bob", "carol")
    _, body = await api.call("POST", f"{V3}/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    status, body = await api.call("POST", f"{R}/{room}/upgrade", {"new_version": "99"}, token=a)
    assert (status, body["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    status, body = await api.call("POST", f"{R}/{room}/upgrade", {"new_version": 11}, token=a)
    assert (status, body["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")
    status, body = await api.call("POST", f"{R}/{room}/upgrade", {}, token=a)
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.call("POST", f"{R}/{room}/upgrade", raw=b"[", token=a)
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    status, body = await api.call("POST", f"{R}/{room}/upgrade",
                                  {"new_version": "12", "additional_creators": "bob"}, token=a)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api.call("POST", f"{R}/{room}/upgrade",
                                  {"new_version": "12", "additional_creators": ["bob"]}, token=a)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # Bob is in the room but lacks the tombstone's power level; carol is not in the room.
    status, body = await api.call("POST", f"{R}/{room}/upgrade", {"new_version": "12"}, token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("POST", f"{R}/{room}/upgrade", {"new_version": "12"}, token=c)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("POST", f"{R}/!nope:test.local/upgrade", {"new_version": "12"}, token=a)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("POST", f"{R}/{room}/upgrade", {"new_version": "12"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    # Nothing changed in the room after the refusals.
    state = await state_map(api, room, a)
    assert ("m.room.tombstone", "") not in state


async def test_joining_the_new_room_carries_tags_dm_and_push_rules(api) -> None:
    """Spec, "Room Upgrades": "When a user joins the new room, the server should automatically
    transfer/replicate some of the user's personalized settings such as notifications, tags, etc."
    As Synapse: the old room's tags, its place in m.direct and the push rules naming it."""
    a, b = await api.tokens("alice", "bob")
    alice, bob = "@alice:test.local", "@bob:test.local"
    status, body = await api.call("POST", f"{V3}/createRoom", {"preset": "public_chat", "is_direct": True,
                                                              "invite": [bob]}, token=a)
    old = body["room_id"]
    await api.call("POST", f"{R}/{old}/join", {}, token=b)
    calls = [
        (a, "PUT", f"{V3}/user/{alice}/rooms/{old}/tags/m.favourite", {"order": 0.25}),
        (a, "PUT", f"{V3}/user/{alice}/account_data/m.direct", {bob: [old, "!other:test.local"]}),
        (a, "PUT", f"{V3}/pushrules/global/room/{old}", {"actions": ["dont_notify"]}),   # "mentions only"
        (b, "PUT", f"{V3}/pushrules/global/override/{old}", {                              # "mute"
            "actions": [], "conditions": [{"kind": "event_match", "key": "room_id", "pattern": old}]}),
        (b, "PUT", f"{V3}/user/{bob}/rooms/{old}/tags/u.family", {}),
    ]
    for token, method, path, content in calls:
        status, resp = await api.call(method, path, content, token=token)
        assert status == 200, (path, resp)

    status, body = await api.call("POST", f"{R}/{old}/upgrade", {"new_version": "11"}, token=a)
    assert status == 200, body
    new = body["replacement_room"]
    # The upgrader joins the new room as it is made.
    status, tags = await api.call("GET", f"{V3}/user/{alice}/rooms/{new}/tags", token=a)
    assert tags == {"tags": {"m.favourite": {"order": 0.25}}}
    _, direct = await api.call("GET", f"{V3}/user/{alice}/account_data/m.direct", token=a)
    assert direct == {bob: [old, "!other:test.local", new]}
    status, rule = await api.call("GET", f"{V3}/pushrules/global/room/{new}", token=a)
    _, original = await api.call("GET", f"{V3}/pushrules/global/room/{old}", token=a)
    assert status == 200 and rule == {**original, "rule_id": new} and rule["enabled"] is True
    # Bob's come with him when he joins (he could not before: not in the new room).
    status, tags = await api.call("GET", f"{V3}/user/{bob}/rooms/{new}/tags", token=b)
    assert status == 403 or tags == {"tags": {}}
    status, _ = await api.call("POST", f"{R}/{new}/join", {}, token=b)
    assert status == 200
    _, tags = await api.call("GET", f"{V3}/user/{bob}/rooms/{new}/tags", token=b)
    assert tags == {"tags": {"u.family": {}}}
    status, rule = await api.call("GET", f"{V3}/pushrules/global/override/{new}", token=b)
    assert status == 200 and rule["conditions"] == [{"kind": "event_match", "key": "room_id", "pattern": new}]
    _, rules = await api.call("GET", f"{V3}/pushrules/", token=b)
    ids = [r["rule_id"] for r in rules["global"]["override"]]
    assert ids.index(new) + 1 == ids.index(old)                    # just before the rule it copies
    # And they work: bob's mute keeps alice's message in the new room from counting for him.
    status, _ = await api.call("PUT", f"{R}/{new}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hi"},
                               token=a)
    assert status == 200
    _, sync = await api.call("GET", f"{V3}/sync", token=b)
    assert sync["rooms"]["join"][new]["unread_notifications"]["notification_count"] == 0
    # A later rejoin does not bring back what the user has changed since.
    await api.call("DELETE", f"{V3}/user/{bob}/rooms/{new}/tags/u.family", token=b)
    await api.call("PUT", f"/_matrix/client/v3/profile/{bob}/displayname", {"displayname": "Bobby"}, token=b)
    _, tags = await api.call("GET", f"{V3}/user/{bob}/rooms/{new}/tags", token=b)
    assert tags == {"tags": {}}


async def test_a_room_only_claiming_a_predecessor_gets_no_ones_settings(api) -> None:
    """Anyone can name any room as the predecessor of a room they create. A member's settings move
    only when the old room's tombstone names the new room (Synapse copies them on the claim alone):
    otherwise mallory's room, claiming to replace alice's DM with bob, would be listed as that DM."""
    a, m = await api.tokens("alice", "mallory")
    await api.register("bob")
    alice, bob = "@alice:test.local", "@bob:test.local"
    _, body = await api.call("POST", f"{V3}/createRoom", {"is_direct": True, "invite": [bob]}, token=a)
    dm = body["room_id"]
    for method, path, content in [("PUT", f"{V3}/user/{alice}/account_data/m.direct", {bob: [dm]}),
                                  ("PUT", f"{V3}/user/{alice}/rooms/{dm}/tags/m.favourite", {}),
                                  ("PUT", f"{V3}/pushrules/global/room/{dm}", {"actions": ["notify"]})]:
        assert (await api.call(method, path, content, token=a))[0] == 200
    status, body = await api.call("POST", f"{V3}/createRoom", {
        "preset": "public_chat", "creation_content": {"predecessor": {"room_id": dm}}, "invite": [alice]}, token=m)
    assert status == 200, body
    fake = body["room_id"]
    assert (await api.call("POST", f"{R}/{fake}/join", {}, token=a))[0] == 200
    _, direct = await api.call("GET", f"{V3}/user/{alice}/account_data/m.direct", token=a)
    assert direct == {bob: [dm]}
    _, tags = await api.call("GET", f"{V3}/user/{alice}/rooms/{fake}/tags", token=a)
    assert tags == {"tags": {}}
    status, _ = await api.call("GET", f"{V3}/pushrules/global/room/{fake}", token=a)
    assert status == 404


async def test_an_upgrade_asked_for_twice_makes_one_room(api) -> None:
    """A double click or a retry: the same user's second request gets the first's replacement
    room, another user's concurrent upgrade is refused (as Synapse); the tombstone, the alias and
    the power levels then agree on one room."""
    import asyncio
    a, b = await api.tokens("alice", "bob")
    status, body = await api.call("POST", f"{V3}/createRoom", {"room_version": "10", "preset": "public_chat",
                                                               "room_alias_name": "twice"}, token=a)
    old = body["room_id"]
    await api.call("POST", f"{R}/{old}/join", {}, token=b)
    await api.call("PUT", f"{R}/{old}/state/m.room.power_levels", {
        "users": {"@alice:test.local": 100, "@bob:test.local": 100}}, token=a)
    answers = await asyncio.gather(*(api.call("POST", f"{R}/{old}/upgrade", {"new_version": "11"}, token=t)
                                     for t in (a, a, b)))
    assert [s for s, _ in answers[:2]] == [200, 200] and answers[0][1] == answers[1][1], answers
    assert answers[2][0] == 400 and answers[2][1]["errcode"] == "M_UNKNOWN", answers[2]
    new = answers[0][1]["replacement_room"]
    status, again = await api.call("POST", f"{R}/{old}/upgrade", {"new_version": "11"}, token=a)   # a retry
    assert (status, again) == (200, {"replacement_room": new})
    _, tombstone = await api.call("GET", f"{R}/{old}/state/m.room.tombstone", token=a)
    assert tombstone["replacement_room"] == new
    _, alias = await api.call("GET", f"{V3}/directory/room/{quote('#twice:test.local')}", token=a)
    assert alias["room_id"] == new
    _, levels = await api.call("GET", f"{R}/{new}/state/m.room.power_levels", token=a)
    assert levels.get("events_default", 0) == 0


async def test_a_failed_switch_over_leaves_the_old_room_as_it_was(api, monkeypatch) -> None:
    """The aliases and the directory entry move in the tombstone's write, not the new room's: if
    that write fails (a crash between the two), the old room keeps them, and asking again works."""
    from pocketserver.storage.database import DatabaseError
    (a,) = await api.tokens("alice")
    status, body = await api.call("POST", f"{V3}/createRoom", {"preset": "public_chat", "visibility": "public",
                                                               "room_alias_name": "kept"}, token=a)
    old = body["room_id"]
    rs = api.server.roomserver
    real_persist = rs.persist
    calls = []

    async def failing_second(room, pdus, **kwargs):
        calls.append(room.room_id)
        if len(calls) == 2:
            raise DatabaseError("disk gone")
        return await real_persist(room, pdus, **kwargs)

    monkeypatch.setattr(rs, "persist", failing_second)
    status, _ = await api.call("POST", f"{R}/{old}/upgrade", {"new_version": "11"}, token=a)
    assert status == 500
    monkeypatch.undo()
    rs.forget(old)
    _, alias = await api.call("GET", f"{V3}/directory/room/{quote('#kept:test.local')}", token=a)
    assert alias["room_id"] == old
    status, _ = await api.call("GET", f"{R}/{old}/state/m.room.tombstone", token=a)
    assert status == 404
    _, public = await api.call("GET", f"{V3}/publicRooms")
    assert [r["room_id"] for r in public["chunk"]] == [old]
    status, body = await api.call("POST", f"{R}/{old}/upgrade", {"new_version": "11"}, token=a)
    assert status == 200, body
    _, alias = await api.call("GET", f"{V3}/directory/room/{quote('#kept:test.local')}", token=a)
    assert alias["room_id"] == body["replacement_room"]
    _, public = await api.call("GET", f"{V3}/publicRooms")
    assert [r["room_id"] for r in public["chunk"]] == [body["replacement_room"]]
