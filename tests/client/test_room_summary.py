"""Room summaries (MSC3266) and the space hierarchy over HTTP.

Spec: client-server-api, "GET /_matrix/client/v1/room_summary/{roomIdOrAlias}",
"GET /_matrix/client/v1/rooms/{roomId}/hierarchy".
"""
from __future__ import annotations

from urllib.parse import quote

V1 = "/_matrix/client/v1"
V3 = "/_matrix/client/v3"
R = f"{V3}/rooms"
UNSTABLE = "/_matrix/client/unstable/im.nheko.summary"




async def test_summary_fields_and_membership(api) -> None:
    a, b = await api.tokens("alice", "bob")
    room = await api.create_room(a, preset="public_chat", name="Family", topic="Dinner", room_alias_name="family",
                        initial_state=[{"type": "m.room.encryption", "content": {"algorithm": "m.megolm.v1.aes-sha2"}},
                                       {"type": "m.room.avatar", "content": {"url": "mxc://test.local/x"}}])
    status, body = await api.call("GET", f"{V1}/room_summary/{room}", token=a)
    assert status == 200, body
    assert body == {"room_id": room, "name": "Family", "topic": "Dinner", "canonical_alias": "#family:test.local",
                    "num_joined_members": 1, "avatar_url": "mxc://test.local/x", "world_readable": False,
                    "guest_can_join": False, "join_rule": "public", "room_version": "12",
                    "encryption": "m.megolm.v1.aes-sha2", "membership": "join"}
    # By alias, as a non-member (leave), and without a token (no membership).
    status, body = await api.call("GET", f"{V1}/room_summary/{quote('#family:test.local')}", token=b)
    assert status == 200 and body["room_id"] == room and body["membership"] == "leave"
    status, body = await api.call("GET", f"{V1}/room_summary/{room}")
    assert status == 200 and "membership" not in body
    for path in (f"{UNSTABLE}/summary/{room}", f"{UNSTABLE}/rooms/{room}/summary"):
        status, body = await api.call("GET", path, token=a)
        assert status == 200 and body["room_id"] == room and body["im.nheko.summary.version"] == "12"


async def test_summary_visibility(api) -> None:
    a, b, c = await api.tokens("alice", "bob", "carol")
    private = await api.create_room(a, preset="private_chat", name="Secret")
    knock = await api.create_room(a, preset="private_chat", initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "knock"}}])
    readable = await api.create_room(a, preset="private_chat", initial_state=[
        {"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}])
    # Hidden from outsiders (same answer as an unknown room), with or without a token.
    for token in (b, None):
        status, body = await api.call("GET", f"{V1}/room_summary/{private}", token=token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("GET", f"{V1}/room_summary/!unknown:test.local", token=b)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("GET", f"{V1}/room_summary/{quote('#missing:test.local')}", token=b)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("GET", f"{V1}/room_summary/nonsense", token=b)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("GET", f"{V1}/room_summary/{private}", token="bad-token")
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    # Knockable and world-readable rooms are open; an invite opens a private room.
    status, body = await api.call("GET", f"{V1}/room_summary/{knock}", token=b)
    assert status == 200 and body["join_rule"] == "knock"
    status, body = await api.call("GET", f"{V1}/room_summary/{readable}")
    assert status == 200 and body["world_readable"] is True
    await api.call("POST", f"{R}/{private}/invite", {"user_id": "@bob:test.local"}, token=a)
    status, body = await api.call("GET", f"{V1}/room_summary/{private}", token=b)
    assert status == 200 and body["membership"] == "invite" and body["name"] == "Secret"
    # Restricted: visible to members of an allowed room only.
    restricted = await api.create_room(a, preset="private_chat", initial_state=[
        {"type": "m.room.join_rules", "content": {"join_rule": "restricted",
                                                  "allow": [{"type": "m.room_membership", "room_id": knock}]}}])
    status, body = await api.call("GET", f"{V1}/room_summary/{restricted}", token=c)
    assert status == 404
    status, body = await api.call("GET", f"{V1}/room_summary/{restricted}", token=a)
    assert status == 200 and body["allowed_room_ids"] == [knock]


async def make_space(api, token, name, children, **extra):
    space = await api.create_room(token, preset="public_chat", name=name, creation_content={"type": "m.space"}, **extra)
    for i, (child, suggested) in enumerate(children):
        content = {"via": ["test.local"], "order": f"{i:02d}"}
        if suggested:
            content["suggested"] = True
        status, body = await api.call("PUT", f"{R}/{space}/state/m.space.child/{child}", content, token=token)
        assert status == 200, body
    return space


async def test_hierarchy_walk_depth_suggested_and_pagination(api) -> None:
    a, b = await api.tokens("alice", "bob")
    r1 = await api.create_room(a, preset="public_chat", name="r1")
    r2 = await api.create_room(a, preset="public_chat", name="r2")
    hidden = await api.create_room(a, preset="private_chat", name="hidden")
    sub = await make_space(api, a, "sub", [(r2, False)])
    root = await make_space(api, a, "root", [(r1, True), (sub, False), (hidden, False),
                                             ("!unknown:test.local", False)])
    # An m.space.child without `via` is not a child.
    await api.call("PUT", f"{R}/{root}/state/m.space.child/{r2}", {}, token=a)

    status, body = await api.call("GET", f"{V1}/rooms/{root}/hierarchy", token=b)
    assert status == 200, body
    assert [r["room_id"] for r in body["rooms"]] == [root, r1, sub, r2]     # depth first, in `order`
    assert "next_batch" not in body
    root_entry = body["rooms"][0]
    assert root_entry["room_type"] == "m.space" and root_entry["name"] == "root"
    assert [c["state_key"] for c in root_entry["children_state"]] == [r1, sub, hidden, "!unknown:test.local"]
    assert set(root_entry["children_state"][0]) == {"type", "state_key", "content", "sender", "origin_server_ts"}
    assert body["rooms"][1]["children_state"] == []

    # Alice is in the hidden room, so she sees it.
    _, body = await api.call("GET", f"{V1}/rooms/{root}/hierarchy", token=a)
    assert [r["room_id"] for r in body["rooms"]] == [root, r1, sub, r2, hidden]

    _, body = await api.call("GET", f"{V1}/rooms/{root}/hierarchy", query={"max_depth": "0"}, token=b)
    assert [r["room_id"] for r in body["rooms"]] == [root]
    _, body = await api.call("GET", f"{V1}/rooms/{root}/hierarchy", query={"max_depth": "1"}, token=b)
    assert [r["room_id"] for r in body["rooms"]] == [root, r1, sub]
    _, body = await api.call("GET", f"{V1}/rooms/{root}/hierarchy", query={"suggested_only": "true"}, token=b)
    assert [r["room_id"] for r in body["rooms"]] == [root, r1]

    seen, token = [], None
    for _ in range(10):
        query = {"limit": "1", **({"from": token} if token else {})}
        status, page = await api.call("GET", f"{V1}/rooms/{root}/hierarchy", query=query, token=b)
        assert status == 200, page
        seen += [r["room_id"] for r in page["rooms"]]
        token = page.get("next_batch")
        if token is None:
            break
    assert seen == [root, r1, sub, r2]

    # Cycles end the walk: the sub-space pointing back at the root adds nothing.
    await api.call("PUT", f"{R}/{sub}/state/m.space.child/{root}", {"via": ["test.local"]}, token=a)
    _, body = await api.call("GET", f"{V1}/rooms/{root}/hierarchy", token=b)
    assert [r["room_id"] for r in body["rooms"]] == [root, r1, sub, r2]


async def test_hierarchy_refusals(api) -> None:
    a, b = await api.tokens("alice", "bob")
    secret = await api.create_room(a, preset="private_chat", creation_content={"type": "m.space"})
    space = await make_space(api, a, "root", [])
    status, body = await api.call("GET", f"{V1}/rooms/{secret}/hierarchy", token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("GET", f"{V1}/rooms/!unknown:test.local/hierarchy", token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("GET", f"{V1}/rooms/{space}/hierarchy")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    for query in ({"limit": "0"}, {"limit": "x"}, {"max_depth": "-1"}, {"suggested_only": "yes"},
                  {"from": "unknown-token"}):
        status, body = await api.call("GET", f"{V1}/rooms/{space}/hierarchy", query=query, token=b)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), query

    child = await api.create_room(a, preset="public_chat")
    await api.call("PUT", f"{R}/{space}/state/m.space.child/{child}", {"via": ["test.local"]}, token=a)
    _, page = await api.call("GET", f"{V1}/rooms/{space}/hierarchy", query={"limit": "1"}, token=b)
    token = page["next_batch"]
    status, body = await api.call("GET", f"{V1}/rooms/{space}/hierarchy",
                                  query={"limit": "1", "from": token, "max_depth": "3"}, token=b)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # A token belongs to its user.
    status, body = await api.call("GET", f"{V1}/rooms/{space}/hierarchy", query={"from": token}, token=a)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # The same token gives the same page again.
    _, again = await api.call("GET", f"{V1}/rooms/{space}/hierarchy", query={"from": token}, token=b)
    _, once_more = await api.call("GET", f"{V1}/rooms/{space}/hierarchy", query={"from": token}, token=b)
    assert [r["room_id"] for r in again["rooms"]] == [r["room_id"] for r in once_more["rooms"]] == [child]
