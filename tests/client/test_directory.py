"""Room aliases, directory visibility and the published room list over HTTP.

Spec: client-server-api, "Room aliases", "Published room directory".
"""
from __future__ import annotations

from urllib.parse import quote

V3 = "/_matrix/client/v3"
R = f"{V3}/rooms"


def alias_path(alias: str) -> str:
    return f"{V3}/directory/room/{quote(alias)}"




async def test_alias_create_resolve_list_delete(api) -> None:
    a, b = await api.tokens("alice", "bob")
    room = await api.create_room(a, preset="public_chat")
    status, body = await api.call("PUT", alias_path("#family:test.local"), {"room_id": room}, token=a)
    assert (status, body) == (200, {})
    status, body = await api.call("GET", alias_path("#family:test.local"))     # no token needed
    assert (status, body) == (200, {"room_id": room, "servers": ["test.local"]})
    status, body = await api.call("GET", f"{R}/{room}/aliases", token=a)
    assert (status, body) == (200, {"aliases": ["#family:test.local"]})

    # Taken alias, bad grammar, remote alias, unknown room, missing room_id.
    status, body = await api.call("PUT", alias_path("#family:test.local"), {"room_id": room}, token=a)
    assert (status, body["errcode"]) == (409, "M_UNKNOWN")
    for bad in ("family", "#nocolon", "#:test.local", "#bad name:test.local", "#x:bad server"):
        status, body = await api.call("PUT", alias_path(bad), {"room_id": room}, token=a)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), bad
    status, body = await api.call("GET", alias_path("nohash"))
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("PUT", alias_path("#x:elsewhere.org"), {"room_id": room}, token=a)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("PUT", alias_path("#x:test.local"), {"room_id": "!nope:test.local"}, token=a)
    assert status == 400 and body["errcode"] == "M_UNKNOWN"
    status, body = await api.call("PUT", alias_path("#x:test.local"), {}, token=a)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api.call("PUT", alias_path("#x:test.local"), {"room_id": room})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")

    # Not a member: may neither create an alias nor list them.
    status, body = await api.call("PUT", alias_path("#bobs:test.local"), {"room_id": room}, token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("GET", f"{R}/{room}/aliases", token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("GET", f"{R}/!unknown:test.local/aliases", token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    # Bob joins and adds his own alias; he may delete it but not alice's (no power).
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=b))[0] == 200
    assert (await api.call("PUT", alias_path("#bobs:test.local"), {"room_id": room}, token=b))[0] == 200
    status, body = await api.call("DELETE", alias_path("#family:test.local"), token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert (await api.call("DELETE", alias_path("#bobs:test.local"), token=b))[0] == 200
    # Alice (power to set the canonical alias) may delete an alias someone else created.
    assert (await api.call("PUT", alias_path("#bobs2:test.local"), {"room_id": room}, token=b))[0] == 200
    assert (await api.call("DELETE", alias_path("#bobs2:test.local"), token=a))[0] == 200
    status, body = await api.call("DELETE", alias_path("#bobs2:test.local"), token=a)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("GET", alias_path("#bobs2:test.local"))
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("GET", alias_path("#family:elsewhere.org"))
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_delete_alias_updates_canonical_alias(api) -> None:
    (a,) = await api.tokens("alice")
    room = await api.create_room(a, room_alias_name="main")
    assert (await api.call("PUT", alias_path("#alt:test.local"), {"room_id": room}, token=a))[0] == 200
    status, _ = await api.call("PUT", f"{R}/{room}/state/m.room.canonical_alias",
                               {"alias": "#main:test.local", "alt_aliases": ["#alt:test.local"]}, token=a)
    assert status == 200
    assert (await api.call("DELETE", alias_path("#alt:test.local"), token=a))[0] == 200
    _, content = await api.call("GET", f"{R}/{room}/state/m.room.canonical_alias", token=a)
    assert content == {"alias": "#main:test.local"}
    assert (await api.call("DELETE", alias_path("#main:test.local"), token=a))[0] == 200
    _, content = await api.call("GET", f"{R}/{room}/state/m.room.canonical_alias", token=a)
    assert content == {}


async def test_world_readable_aliases_visible_to_anyone(api) -> None:
    a, b = await api.tokens("alice", "bob")
    room = await api.create_room(a, room_alias_name="open", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])
    status, body = await api.call("GET", f"{R}/{room}/aliases", token=b)
    assert (status, body) == (200, {"aliases": ["#open:test.local"]})


async def test_directory_visibility(api) -> None:
    a, b = await api.tokens("alice", "bob")
    room = await api.create_room(a, preset="public_chat")
    status, body = await api.call("GET", f"{V3}/directory/list/room/{room}")
    assert (status, body) == (200, {"visibility": "private"})
    status, body = await api.call("GET", f"{V3}/directory/list/room/!nope:test.local")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    # Bob: not in the room, then in it without power.
    status, body = await api.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "public"}, token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    status, body = await api.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "public"}, token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    status, body = await api.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "secret"}, token=a)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("PUT", f"{V3}/directory/list/room/!nope:test.local", {"visibility": "public"},
                                  token=a)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "public"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    assert (await api.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "public"}, token=a))[0] == 200
    _, body = await api.call("GET", f"{V3}/directory/list/room/{room}")
    assert body == {"visibility": "public"}
    assert (await api.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "private"}, token=a))[0] == 200
    _, body = await api.call("GET", f"{V3}/directory/list/room/{room}")
    assert body == {"visibility": "private"}


async def test_public_rooms_fields_filters_and_pagination(api) -> None:
    a, b = await api.tokens("alice", "bob")
    big = await api.create_room(a, visibility="public", name="Big room", topic="Lots of people", room_alias_name="big")
    await api.call("POST", f"{R}/{big}/join", {}, token=b)
    space = await api.create_room(a, visibility="public", name="Family space", creation_content={"type": "m.space"})
    quiet = await api.create_room(a, visibility="public", name="Quiet", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}},
        {"type": "m.room.avatar", "content": {"url": "mxc://test.local/abc"}}])
    await api.create_room(a, name="Hidden")     # private: never listed

    status, body = await api.call("GET", f"{V3}/publicRooms")
    assert status == 200, body
    assert [r["room_id"] for r in body["chunk"]][0] == big    # most members first
    assert {r["room_id"] for r in body["chunk"]} == {big, space, quiet}
    assert body["total_room_count_estimate"] == 3
    entry = body["chunk"][0]
    assert entry == {"room_id": big, "name": "Big room", "topic": "Lots of people",
                     "canonical_alias": "#big:test.local", "num_joined_members": 2, "world_readable": False,
                     "guest_can_join": False, "join_rule": "public"}
    quiet_entry = next(r for r in body["chunk"] if r["room_id"] == quiet)
    assert quiet_entry["world_readable"] is True and quiet_entry["avatar_url"] == "mxc://test.local/abc"
    assert next(r for r in body["chunk"] if r["room_id"] == space)["room_type"] == "m.space"

    # Pagination forwards with limit 1, then back.
    seen, since = [], None
    for _ in range(5):
        query = {"limit": "1", **({"since": since} if since else {})}
        _, page = await api.call("GET", f"{V3}/publicRooms", query=query)
        seen += [r["room_id"] for r in page["chunk"]]
        if len(seen) > 1:
            assert "prev_batch" in page
        since = page.get("next_batch")
        if since is None:
            break
    assert seen == [r["room_id"] for r in body["chunk"]]
    _, last = await api.call("POST", f"{V3}/publicRooms", {"limit": 2, "since": page["prev_batch"]}, token=a)
    assert [r["room_id"] for r in last["chunk"]] == seen[:2]
    assert "prev_batch" not in last and "next_batch" in last

    # Filters.
    _, found = await api.call("POST", f"{V3}/publicRooms", {"filter": {"generic_search_term": "PEOPLE"}}, token=a)
    assert [r["room_id"] for r in found["chunk"]] == [big]
    _, found = await api.call("POST", f"{V3}/publicRooms", {"filter": {"generic_search_term": "#big"}}, token=a)
    assert [r["room_id"] for r in found["chunk"]] == [big]
    _, found = await api.call("POST", f"{V3}/publicRooms", {"filter": {"room_types": ["m.space"]}}, token=a)
    assert [r["room_id"] for r in found["chunk"]] == [space]
    _, found = await api.call("POST", f"{V3}/publicRooms", {"filter": {"room_types": [None]}}, token=a)
    assert {r["room_id"] for r in found["chunk"]} == {big, quiet}
    _, found = await api.call("POST", f"{V3}/publicRooms", {"include_all_networks": True}, token=a)
    assert len(found["chunk"]) == 3
    _, found = await api.call("POST", f"{V3}/publicRooms", {"third_party_instance_id": "irc"}, token=a)
    assert found["chunk"] == []
    _, found = await api.call("GET", f"{V3}/publicRooms", query={"server": "test.local"})
    assert len(found["chunk"]) == 3


async def test_public_rooms_entries_follow_current_state(api) -> None:
    """An entry is made from the room's current state at the time of the request, not at publishing."""
    a, b, c = await api.tokens("alice", "bob", "carol")
    room = await api.create_room(a, visibility="public", name="Before")
    for token in (b, c):
        assert (await api.call("POST", f"{R}/{room}/join", {}, token=token))[0] == 200

    async def entry() -> dict:
        status, body = await api.call("GET", f"{V3}/publicRooms")
        assert status == 200, body
        return next(r for r in body["chunk"] if r["room_id"] == room)

    assert (await entry())["num_joined_members"] == 3
    assert (await api.call("POST", f"{R}/{room}/leave", {}, token=c))[0] == 200
    status, sent = await api.call("PUT", f"{R}/{room}/state/m.room.name", {"name": "After"}, token=a)
    assert status == 200, sent
    await api.call("PUT", f"{R}/{room}/state/m.room.topic",
                   {"m.topic": {"m.text": [{"mimetype": "text/html", "body": "<b>hi</b>"}, {"body": "hi"}]}}, token=a)
    await api.call("PUT", f"{R}/{room}/state/m.room.guest_access", {"guest_access": "can_join"}, token=a)
    found = await entry()
    assert (found["num_joined_members"], found["name"], found["topic"], found["guest_can_join"]) == (2, "After", "hi", True)
    # A redacted name is no name.
    status, body = await api.call("PUT", f"{R}/{room}/redact/{sent['event_id']}/r1", {}, token=a)
    assert status == 200, body
    assert "name" not in await entry()
    # Unpublished, it is gone.
    assert (await api.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "private"}, token=a))[0] == 200
    _, body = await api.call("GET", f"{V3}/publicRooms")
    assert room not in {r["room_id"] for r in body["chunk"]}


async def test_public_rooms_refusals(api) -> None:
    (a,) = await api.tokens("alice")
    status, body = await api.call("GET", f"{V3}/publicRooms", query={"server": "elsewhere.org"})
    assert (status, body["errcode"]) == (404, "M_UNKNOWN")
    status, body = await api.call("GET", f"{V3}/publicRooms", query={"server": "bad server"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("GET", f"{V3}/publicRooms", query={"limit": "ten"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("GET", f"{V3}/publicRooms", query={"since": "garbage"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("GET", f"{V3}/publicRooms", token="not-a-token")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, body = await api.call("POST", f"{V3}/publicRooms", {})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    for bad in ({"limit": "5"}, {"limit": True}, {"filter": []}, {"filter": {"room_types": "m.space"}},
                {"filter": {"generic_search_term": 5}}, {"since": 3}):
        status, body = await api.call("POST", f"{V3}/publicRooms", bad, token=a)
        assert (status, body["errcode"]) == (400, "M_BAD_JSON"), bad
    status, body = await api.call("POST", f"{V3}/publicRooms", {"limit": -1}, token=a)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("POST", f"{V3}/publicRooms",
                                  {"include_all_networks": True, "third_party_instance_id": "irc"}, token=a)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("POST", f"{V3}/publicRooms", raw=b"not json", token=a)
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")


async def test_creator_and_admin_powers(api) -> None:
    a, b = await api.tokens("alice", "bob")
    admin = (await api.server.registration.create_user("root", "pw", admin=True, login=True))["access_token"]
    # Alice created the room but gave away her power: as its creator she may still publish it.
    room = await api.create_room(a, room_version="11", preset="public_chat")
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    _, levels = await api.call("GET", f"{R}/{room}/state/m.room.power_levels", token=a)
    levels["users"] = {"@bob:test.local": 100}
    assert (await api.call("PUT", f"{R}/{room}/state/m.room.power_levels", levels, token=a))[0] == 200
    assert (await api.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "public"}, token=a))[0] == 200
    # The admin, outside the room, may unpublish it, list its aliases and delete any of them.
    assert (await api.call("PUT", alias_path("#bobs:test.local"), {"room_id": room}, token=b))[0] == 200
    status, body = await api.call("GET", f"{R}/{room}/aliases", token=admin)
    assert (status, body) == (200, {"aliases": ["#bobs:test.local"]})
    assert (await api.call("PUT", f"{V3}/directory/list/room/{room}", {"visibility": "private"}, token=admin))[0] == 200
    assert (await api.call("DELETE", alias_path("#bobs:test.local"), token=admin))[0] == 200
    # An admin may create an alias for a room they are not in.
    assert (await api.call("PUT", alias_path("#root:test.local"), {"room_id": room}, token=admin))[0] == 200


async def test_two_rooms_created_at_once_with_one_alias(api) -> None:
    """Both pass the check before their writes; the second write finds the alias taken and its
    room is not created: 400 M_ROOM_IN_USE (spec, createRoom), not a 500."""
    import asyncio
    a, b = await api.tokens("alice", "bob")
    answers = await asyncio.gather(*(api.call("POST", "/_matrix/client/v3/createRoom", {"room_alias_name": "race"},
                                              token=t) for t in (a, b)))
    assert sorted(s for s, _ in answers) == [200, 400], answers
    refused = next(body for s, body in answers if s == 400)
    assert refused["errcode"] == "M_ROOM_IN_USE"
    won = next(body for s, body in answers if s == 200)
    _, alias = await api.call("GET", "/_matrix/client/v3/directory/room/%23race:test.local")
    assert alias["room_id"] == won["room_id"]
    status, body = await api.call("POST", "/_matrix/client/v3/createRoom",
                                  {"initial_state": [{"type": f"x.{n}", "content": {}} for n in range(101)]}, token=a)
    assert (status, body["errcode"], body["error"]) == (400, "M_BAD_JSON", "initial_state may hold at most 100 events")


async def test_the_directory_lists_only_rooms_one_could_join_or_read(api) -> None:
    """A published room made invite-only, or left by everyone, is not listed (its name and topic
    stay private); opened again, it is. As Synapse's get_largest_public_rooms."""
    a, b = await api.tokens("alice", "bob")
    secret = await api.create_room(a, visibility="public", preset="public_chat", name="Secret plans",
                                   topic="do not share")
    empty = await api.create_room(b, visibility="public", preset="public_chat", name="Abandoned")
    readable = await api.create_room(a, visibility="public", preset="private_chat", name="Readable", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])

    async def listed() -> set[str]:
        _, body = await api.call("GET", "/_matrix/client/v3/publicRooms")
        assert body["total_room_count_estimate"] == len(body["chunk"])
        return {r["room_id"] for r in body["chunk"]}

    assert await listed() == {secret, empty, readable}
    await api.call("PUT", f"/_matrix/client/v3/rooms/{secret}/state/m.room.join_rules", {"join_rule": "invite"},
                   token=a)
    await api.call("POST", f"/_matrix/client/v3/rooms/{empty}/leave", {}, token=b)
    assert await listed() == {readable}
    _, body = await api.call("POST", "/_matrix/client/v3/publicRooms", {"filter": {"generic_search_term": "secret"}},
                             token=b)
    assert body["chunk"] == []
    await api.call("PUT", f"/_matrix/client/v3/rooms/{secret}/state/m.room.join_rules", {"join_rule": "knock"},
                   token=a)
    assert await listed() == {secret, readable}
