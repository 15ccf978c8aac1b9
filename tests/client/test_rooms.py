"""Rooms over HTTP: create, membership, send, state, redact, paginate, visibility and refusals.

Spec: client-server-api, "Rooms", "Room membership", "Events", "Redactions", "Room History Visibility".
"""
from __future__ import annotations

import json

import pytest

R = "/_matrix/client/v3/rooms"


async def users(api, *names):
    return [await api.register(n) for n in names]


@pytest.mark.parametrize("version", ["1", "6", "10", "11", "12"])
async def test_create_send_read(api, version) -> None:
    (alice,) = await users(api, "alice")
    t = alice["access_token"]
    status, body = await api.call("POST", "/_matrix/client/v3/createRoom",
                                  {"name": "Family", "topic": "Dinner", "room_version": version}, token=t)
    assert status == 200, body
    room = body["room_id"]
    assert room.startswith("!")
    status, body = await api.call("PUT", f"{R}/{room}/send/m.room.message/txn1",
                                  {"msgtype": "m.text", "body": "hello"}, token=t)
    assert status == 200, body
    event_id = body["event_id"]
    status, again = await api.call("PUT", f"{R}/{room}/send/m.room.message/txn1",
                                   {"msgtype": "m.text", "body": "hello"}, token=t)
    assert again["event_id"] == event_id    # idempotent per transaction ID

    status, body = await api.call("GET", f"{R}/{room}/messages", query={"dir": "b", "limit": "3"}, token=t)
    assert status == 200, body
    assert [e["type"] for e in body["chunk"]][0] == "m.room.message"
    assert body["chunk"][0]["content"]["body"] == "hello"
    assert body["chunk"][0]["unsigned"]["transaction_id"] == "txn1"
    status, body = await api.call("GET", f"{R}/{room}/state/m.room.name", token=t)
    assert (status, body) == (200, {"name": "Family"})
    status, state = await api.call("GET", f"{R}/{room}/state", token=t)
    types = {e["type"] for e in state}
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules",
            "m.room.history_visibility", "m.room.name", "m.room.topic"} <= types
    create = next(e for e in state if e["type"] == "m.room.create")
    assert create["content"]["room_version"] == version
    status, body = await api.call("GET", f"{R}/{room}/event/{event_id}", token=t)
    assert status == 200 and body["event_id"] == event_id and "auth_events" not in body
    status, body = await api.call("GET", "/_matrix/client/v3/joined_rooms", token=t)
    assert body["joined_rooms"] == [room]


async def test_membership_and_refusals(api) -> None:
    alice, bob, carol = await users(api, "alice", "bob", "carol")
    a, b, c = alice["access_token"], bob["access_token"], carol["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"}, token=a)
    room = body["room_id"]

    # Non-member send is refused.
    status, body = await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"body": "x"}, token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # Joining an invite-only room without an invite is refused.
    status, body = await api.call("POST", f"{R}/{room}/join", {}, token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    assert (await api.call("POST", f"{R}/{room}/invite", {"user_id": "@bob:test.local"}, token=a))[0] == 200
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=b))[0] == 200
    assert (await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"body": "hi"}, token=b))[0] == 200

    # Insufficient power level: bob may not change the room name (state_default 50).
    status, body = await api.call("PUT", f"{R}/{room}/state/m.room.name", {"name": "mine"}, token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    status, body = await api.call("GET", f"{R}/{room}/joined_members", token=b)
    assert set(body["joined"]) == {"@alice:test.local", "@bob:test.local"}

    # Ban, then the banned user cannot rejoin, be invited, knock or be kicked (M_BAD_STATE, as Synapse);
    # unban lets an invite through again, and a second unban is refused the same way.
    assert (await api.call("POST", f"{R}/{room}/ban", {"user_id": "@bob:test.local", "reason": "spam"}, token=a))[0] == 200
    status, body = await api.call("POST", f"{R}/{room}/join", {}, token=b)
    assert (status, body["errcode"]) == (403, "M_BAD_STATE")
    status, body = await api.call("POST", f"{R}/{room}/invite", {"user_id": "@bob:test.local"}, token=a)
    assert (status, body["errcode"]) == (403, "M_BAD_STATE")
    status, body = await api.call("POST", f"{R}/{room}/kick", {"user_id": "@bob:test.local"}, token=a)
    assert (status, body["errcode"]) == (403, "M_BAD_STATE")
    status, body = await api.call("POST", f"/_matrix/client/v3/knock/{room}", {}, token=b)
    assert (status, body["errcode"]) == (403, "M_BAD_STATE")
    assert (await api.call("POST", f"{R}/{room}/unban", {"user_id": "@bob:test.local"}, token=a))[0] == 200
    status, body = await api.call("POST", f"{R}/{room}/unban", {"user_id": "@bob:test.local"}, token=a)
    assert (status, body["errcode"]) == (403, "M_BAD_STATE")
    status, body = await api.call("GET", f"{R}/{room}/members", query={"membership": "leave"}, token=a)
    assert [e["state_key"] for e in body["chunk"]] == ["@bob:test.local"]

    # Kick needs power; carol (not in the room) cannot read it.
    status, body = await api.call("GET", f"{R}/{room}/messages", token=c)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("GET", f"{R}/{room}/state", token=c)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_a_repeated_membership_change_sends_nothing(api) -> None:
    """Same sender, membership and content as the member's current event: answered, nothing sent (as Synapse)."""
    alice, bob = await users(api, "alice", "bob")
    a, b = alice["access_token"], bob["access_token"]
    room = await api.create_room(a, preset="public_chat")

    async def member_events() -> list[dict]:
        status, body = await api.call("GET", f"{R}/{room}/messages", query={"dir": "b", "limit": "50"}, token=a)
        assert status == 200, body
        return [e for e in body["chunk"] if e["type"] == "m.room.member" and e["state_key"] == "@bob:test.local"]

    status, first = await api.call("POST", f"{R}/{room}/join", {}, token=b)
    assert status == 200
    for _ in range(2):
        assert await api.call("POST", f"{R}/{room}/join", {}, token=b) == (200, first)
    assert len(await member_events()) == 1

    # A changed content is a change: a profile refresh, a different reason.
    assert (await api.call("PUT", "/_matrix/client/v3/profile/@bob:test.local/displayname",
                           {"displayname": "Bob"}, token=b))[0] == 200
    assert len(await member_events()) == 2
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=b))[0] == 200
    assert len(await member_events()) == 2

    for _ in range(2):
        assert (await api.call("POST", f"{R}/{room}/ban", {"user_id": "@bob:test.local", "reason": "spam"},
                               token=a))[0] == 200
    assert len(await member_events()) == 3
    assert (await api.call("POST", f"{R}/{room}/ban", {"user_id": "@bob:test.local", "reason": "more spam"},
                           token=a))[0] == 200
    events = await member_events()
    assert len(events) == 4 and events[0]["content"] == {"membership": "ban", "reason": "more spam"}


async def test_history_visibility_joined(api) -> None:
    alice, bob = await users(api, "alice", "bob")
    a, b = alice["access_token"], bob["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {
        "preset": "public_chat", "initial_state": [{"type": "m.room.history_visibility",
                                                    "content": {"history_visibility": "joined"}}]}, token=a)
    room = body["room_id"]
    await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"body": "before bob"}, token=a)
    assert (await api.call("POST", f"/_matrix/client/v3/join/{room}", {}, token=b))[0] == 200
    await api.call("PUT", f"{R}/{room}/send/m.room.message/2", {"body": "after bob"}, token=a)
    _, body = await api.call("GET", f"{R}/{room}/messages", query={"limit": "50"}, token=b)
    bodies = [e["content"].get("body") for e in body["chunk"] if e["type"] == "m.room.message"]
    assert bodies == ["after bob"]
    _, body = await api.call("GET", f"{R}/{room}/messages", query={"limit": "50"}, token=a)
    assert [e["content"].get("body") for e in body["chunk"] if e["type"] == "m.room.message"] == ["after bob", "before bob"]


async def test_redaction(api) -> None:
    alice, bob = await users(api, "alice", "bob")
    a, b = alice["access_token"], bob["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    _, sent = await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"body": "oops", "msgtype": "m.text"}, token=a)
    status, body = await api.call("PUT", f"{R}/{room}/redact/{sent['event_id']}/r1", {"reason": "typo"}, token=b)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")   # bob has no redact power
    status, body = await api.call("PUT", f"{R}/{room}/redact/{sent['event_id']}/r1", {"reason": "typo"}, token=a)
    assert status == 200
    _, event = await api.call("GET", f"{R}/{room}/event/{sent['event_id']}", token=b)
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"]["content"]["reason"] == "typo"


@pytest.mark.parametrize("version", ["10", "11", "12"])
async def test_a_redaction_sent_through_send_is_checked_as_redact_checks_it(api, version) -> None:
    """PUT /send/m.room.redaction redacts under /redact's rules: one's own events, or with the
    `redact` power level; never the create event. Before v11, `redacts` given in the content goes
    top-level (as Synapse with MSC4169). Spec: client-server-api, "Redactions"."""
    alice, bob = await users(api, "alice", "bob")
    a, b = alice["access_token"], bob["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat", "room_version": version,
                                                                        "name": "Kept"}, token=a)
    room = body["room_id"]
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    _, mine = await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"body": "alice's", "msgtype": "m.text"},
                             token=a)
    _, name = await api.call("GET", f"{R}/{room}/state/m.room.name", token=a, query={"format": "event"})
    for n, target in enumerate((mine["event_id"], name["event_id"])):
        status, body = await api.call("PUT", f"{R}/{room}/send/m.room.redaction/x{n}", {"redacts": target}, token=b)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    _, event = await api.call("GET", f"{R}/{room}/event/{mine['event_id']}", token=a)
    assert event["content"]["body"] == "alice's"
    _, state = await api.call("GET", f"{R}/{room}/state/m.room.name", token=a)
    assert state == {"name": "Kept"}

    _, create = await api.call("GET", f"{R}/{room}/state/m.room.create", token=a, query={"format": "event"})
    status, body = await api.call("PUT", f"{R}/{room}/send/m.room.redaction/c", {"redacts": create["event_id"]},
                                  token=a)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), body
    status, body = await api.call("PUT", f"{R}/{room}/send/m.room.redaction/none", {"reason": "no target"}, token=a)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON"), body
    status, body = await api.call("PUT", f"{R}/{room}/send/m.room.redaction/gone", {"redacts": "$unknown"}, token=a)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), body

    _, own = await api.call("PUT", f"{R}/{room}/send/m.room.message/2", {"body": "bob's", "msgtype": "m.text"}, token=b)
    for sender, target in ((b, own["event_id"]), (a, mine["event_id"])):      # one's own; with the power
        status, body = await api.call("PUT", f"{R}/{room}/send/m.room.redaction/{target}", {"redacts": target,
                                                                                       "reason": "r"}, token=sender)
        assert status == 200, body
        _, event = await api.call("GET", f"{R}/{room}/event/{target}", token=a)
        assert event["content"] == {}, event
        assert event["unsigned"]["redacted_because"]["content"]["reason"] == "r"


async def test_pagination_tokens(api) -> None:
    (alice,) = await users(api, "alice")
    a = alice["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {}, token=a)
    room = body["room_id"]
    for i in range(7):
        await api.call("PUT", f"{R}/{room}/send/m.room.message/{i}", {"body": str(i)}, token=a)
    seen, token = [], None
    for _ in range(10):
        query = {"dir": "b", "limit": "3", "filter": '{"types": ["m.room.message"]}'}
        if token:
            query["from"] = token
        _, page = await api.call("GET", f"{R}/{room}/messages", query=query, token=a)
        seen += [e["content"]["body"] for e in page["chunk"]]
        token = page.get("end")
        if token is None:
            break
    assert seen == [str(i) for i in reversed(range(7))]
    _, fwd = await api.call("GET", f"{R}/{room}/messages", query={"dir": "f", "limit": "100"}, token=a)
    assert fwd["chunk"][0]["type"] == "m.room.create"


async def test_a_filtered_page_is_filled_from_further_back(api) -> None:
    """A filter that leaves out most events still fills the page (Synapse filters as it reads):
    an image between 30 messages is found on the first page, in either direction, and the end
    token continues right after the last event returned."""
    (alice,) = await users(api, "alice")
    a = alice["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {}, token=a)
    room = body["room_id"]
    for i in range(30):
        content = {"msgtype": "m.image", "body": f"img{i}", "url": "mxc://test.local/x"} if i in (3, 20) \
            else {"msgtype": "m.text", "body": str(i)}
        await api.call("PUT", f"{R}/{room}/send/m.room.message/{i}", content, token=a)
    images = json.dumps({"contains_url": True, "types": ["m.room.message"]})
    _, page = await api.call("GET", f"{R}/{room}/messages", query={"dir": "b", "limit": "1", "filter": images},
                             token=a)
    assert [e["content"]["body"] for e in page["chunk"]] == ["img20"] and "end" in page
    _, page = await api.call("GET", f"{R}/{room}/messages",
                             query={"dir": "b", "limit": "1", "filter": images, "from": page["end"]}, token=a)
    assert [e["content"]["body"] for e in page["chunk"]] == ["img3"]
    _, page = await api.call("GET", f"{R}/{room}/messages",
                             query={"dir": "b", "limit": "1", "filter": images, "from": page["end"]}, token=a)
    assert page["chunk"] == [] and "end" not in page                 # the start of the room
    _, fwd = await api.call("GET", f"{R}/{room}/messages", query={"dir": "f", "limit": "5", "filter": images},
                            token=a)
    assert [e["content"]["body"] for e in fwd["chunk"]] == ["img3", "img20"]
    # lazy_load_members alone selects every event: one page of the limit, as without a filter.
    lazy = json.dumps({"lazy_load_members": True})
    _, page = await api.call("GET", f"{R}/{room}/messages", query={"dir": "b", "limit": "4", "filter": lazy}, token=a)
    assert [e["content"]["body"] for e in page["chunk"]] == ["29", "28", "27", "26"]


async def test_context_applies_its_filter(api) -> None:
    """Spec, GET /context: the filter applies to events_before, events_after and state, not to the
    event itself; with lazy_load_members the state holds the members who sent what is returned."""
    alice, bob, carol = await users(api, "alice", "bob", "carol")
    a, b, c = alice["access_token"], bob["access_token"], carol["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    for token in (b, c):
        await api.call("POST", f"{R}/{room}/join", {}, token=token)
    sent = []
    for n, token in enumerate((b, a, b)):
        _, resp = await api.call("PUT", f"{R}/{room}/send/m.room.message/{n}",
                                 {"msgtype": "m.text", "body": f"m{n}"}, token=token)
        sent.append(resp["event_id"])
        await api.call("PUT", f"{R}/{room}/send/m.reaction/r{n}", {"m.relates_to": {
            "rel_type": "m.annotation", "event_id": resp["event_id"], "key": str(n)}}, token=a)
    only_messages = json.dumps({"types": ["m.room.message"], "lazy_load_members": True})
    status, ctx = await api.call("GET", f"{R}/{room}/context/{sent[1]}",
                                 query={"limit": "10", "filter": only_messages}, token=a)
    assert status == 200, ctx
    assert [e["content"]["body"] for e in ctx["events_before"]] == ["m0"]
    assert [e["content"]["body"] for e in ctx["events_after"]] == ["m2"]
    members = {e["state_key"] for e in ctx["state"] if e["type"] == "m.room.member"}
    assert members == set()          # the state filter's types leave member events out
    lazy = json.dumps({"lazy_load_members": True})
    _, ctx = await api.call("GET", f"{R}/{room}/context/{sent[1]}", query={"limit": "2", "filter": lazy}, token=a)
    members = {e["state_key"] for e in ctx["state"] if e["type"] == "m.room.member"}
    assert members == {e["sender"] for e in (ctx["event"], *ctx["events_before"], *ctx["events_after"])}
    assert "@carol:test.local" not in members
    _, plain = await api.call("GET", f"{R}/{room}/context/{sent[1]}", query={"limit": "2"}, token=a)
    assert "@carol:test.local" in {e["state_key"] for e in plain["state"] if e["type"] == "m.room.member"}
    status, err = await api.call("GET", f"{R}/{room}/context/{sent[1]}", query={"filter": "{bad"}, token=a)
    assert (status, err["errcode"]) == (400, "M_NOT_JSON")


async def test_bad_room_requests(api) -> None:
    (alice,) = await users(api, "alice")
    a = alice["access_token"]
    for body, errcode in [({"room_version": "99"}, "M_UNSUPPORTED_ROOM_VERSION"), ({"preset": "nope"}, "M_BAD_JSON"),
                          ({"invite": "bob"}, "M_BAD_JSON"), ({"invite": ["not-a-user"]}, "M_INVALID_PARAM"),
                          ({"initial_state": [{"type": 1}]}, "M_BAD_JSON")]:
        status, resp = await api.call("POST", "/_matrix/client/v3/createRoom", body, token=a)
        assert (status, resp["errcode"]) == (400, errcode), body
    status, resp = await api.call("PUT", f"{R}/!nope:test.local/send/m.room.message/1", {}, token=a)
    assert (status, resp["errcode"]) == (403, "M_FORBIDDEN")     # "not in room", as Synapse
    status, resp = await api.call("POST", "/_matrix/client/v3/join/#missing:test.local", {}, token=a)
    assert (status, resp["errcode"]) == (404, "M_NOT_FOUND")
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"room_alias_name": "family"}, token=a)
    status, resp = await api.call("POST", "/_matrix/client/v3/createRoom", {"room_alias_name": "family"}, token=a)
    assert (status, resp["errcode"]) == (400, "M_ROOM_IN_USE")
    status, resp = await api.call("PUT", f"{R}/{body['room_id']}/send/m.room.message/big", {"body": "x" * 70000}, token=a)
    assert (status, resp["errcode"]) == (413, "M_TOO_LARGE")
    status, resp = await api.call("GET", f"{R}/{body['room_id']}/messages", query={"dir": "x"}, token=a)
    assert (status, resp["errcode"]) == (400, "M_INVALID_PARAM")
    status, resp = await api.call("GET", f"{R}/{body['room_id']}/messages", query={"from": "garbage"}, token=a)
    assert (status, resp["errcode"]) == (400, "M_INVALID_PARAM")


async def test_answers_as_synapse_where_the_spec_leaves_room(api) -> None:
    """Status codes found by sending the same requests to Synapse (see docs/synapse-parity.md)."""
    alice, bob = await users(api, "alice", "bob")
    a, b = alice["access_token"], bob["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat"}, token=a)
    room = body["room_id"]
    _, body = await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"msgtype": "m.text", "body": "hi"}, token=a)
    event_id = body["event_id"]

    # A room one is not in, known or not: 403 "not in room" for reads and sends alike.
    for room_id in (room, "!nowhere:test.local", "notaroom"):
        for method, path, body in [("GET", "messages", None), ("GET", "state", None), ("GET", "members", None),
                                   ("GET", "joined_members", None), ("PUT", "send/m.room.message/2", {"body": "x"}),
                                   ("PUT", "state/m.room.topic", {"topic": "x"})]:
            status, resp = await api.call(method, f"{R}/{room_id}/{path}", body, token=b)
            assert (status, resp["errcode"]) == (403, "M_FORBIDDEN"), (room_id, path)
    # One event of a room one may not read is simply not found (the spec's only error there).
    for room_id in (room, "!nowhere:test.local"):
        status, resp = await api.call("GET", f"{R}/{room_id}/event/{event_id}", token=b)
        assert (status, resp["errcode"]) == (404, "M_NOT_FOUND")
    assert (await api.call("GET", f"{R}/{room}/event/{event_id}", token=a))[0] == 200

    # Content clients could not show, or power levels of the wrong shape: 400 M_BAD_JSON, not 403.
    for event_type, content in [("m.room.name", {"name": 5}), ("m.room.topic", {"topic": ["x"]}),
                                ("m.room.power_levels", {"users": "x"}),
                                ("m.room.power_levels", {"users": {alice["user_id"]: "high"}}),
                                ("m.room.power_levels", {"users": {alice["user_id"]: 100}, "ban": "50"})]:
        status, resp = await api.call("PUT", f"{R}/{room}/state/{event_type}", content, token=a)
        assert (status, resp["errcode"]) == (400, "M_BAD_JSON"), content
    for empty in ({"name": None}, {"name": ""}, {}):     # "no name", as the spec reads these
        assert (await api.call("PUT", f"{R}/{room}/state/m.room.name", empty, token=a))[0] == 200
    for body in ({"power_level_content_override": {"users": "x"}},
                 {"initial_state": [{"type": "m.room.name", "content": {"name": 5}}]}):
        status, resp = await api.call("POST", "/_matrix/client/v3/createRoom", body, token=a)
        assert (status, resp["errcode"]) == (400, "M_BAD_JSON"), body

    # createRoom refuses the invitees /invite refuses, before it creates anything.
    _, before = await api.call("GET", "/_matrix/client/v3/joined_rooms", token=a)
    for invitee, expected in [("@zoe:elsewhere.example", (403, "M_FORBIDDEN")),
                              ("@nobody:test.local", (404, "M_NOT_FOUND"))]:
        status, resp = await api.call("POST", "/_matrix/client/v3/createRoom", {"invite": [invitee]}, token=a)
        assert (status, resp["errcode"]) == expected, invitee
        status, resp = await api.call("POST", f"{R}/{room}/invite", {"user_id": invitee}, token=a)
        assert (status, resp["errcode"]) == expected, invitee
    assert await api.call("GET", "/_matrix/client/v3/joined_rooms", token=a) == (200, before)

    # The spec's errcode for an alias of bad syntax; a filter that is not JSON is M_NOT_JSON.
    status, resp = await api.call("PUT", f"{R}/{room}/state/m.room.canonical_alias", {"alias": "bad"}, token=a)
    assert (status, resp["errcode"]) == (400, "M_INVALID_PARAM")
    for path in (f"{R}/{room}/messages", "/_matrix/client/v3/sync"):
        status, resp = await api.call("GET", path, query={"filter": "{bad"}, token=a)
        assert (status, resp["errcode"]) == (400, "M_NOT_JSON"), path
    # Someone outside the room learns nothing of whom they try to invite.
    status, resp = await api.call("POST", f"{R}/{room}/invite", {"user_id": "@nobody:test.local"}, token=b)
    assert (status, resp["errcode"]) == (403, "M_FORBIDDEN")

    # A missing user_id is a missing parameter.
    for action in ("invite", "kick", "ban", "unban"):
        status, resp = await api.call("POST", f"{R}/{room}/{action}", {}, token=a)
        assert (status, resp["errcode"]) == (400, "M_MISSING_PARAM"), action
    # Forgetting a room one has no membership in changes nothing and succeeds.
    for room_id in (room, "!nowhere:test.local"):
        assert await api.call("POST", f"{R}/{room_id}/forget", {}, token=b) == (200, {})
    status, resp = await api.call("POST", f"{R}/{room}/forget", {}, token=a)
    assert (status, resp["errcode"]) == (400, "M_UNKNOWN")     # still joined: leave first
