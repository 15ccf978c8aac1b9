"""Filters and account data: storage, validation and ownership.

Spec: client-server-api, "Filtering", "Client Config".
"""
from __future__ import annotations

import pytest


async def test_filter_roundtrip(api) -> None:
    me = await api.register("cal")
    token, base = me["access_token"], "/_matrix/client/v3/user/@cal:test.local/filter"
    definition = {"room": {"timeline": {"limit": 10, "types": ["m.room.message"]}, "state": {"lazy_load_members": True}},
                  "event_fields": ["type", "content.body"]}
    status, body = await api.call("POST", base, definition, token=token)
    assert status == 200 and body == {"filter_id": "0"}
    status, again = await api.call("POST", base, {}, token=token)
    assert again == {"filter_id": "1"}
    status, body = await api.call("GET", f"{base}/0", token=token)
    assert (status, body) == (200, definition)
    for missing in ("7", "abc", "99999999999999999999999"):
        status, body = await api.call("GET", f"{base}/{missing}", token=token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


@pytest.mark.parametrize("definition", [
    {"room": {"timeline": {"limit": "10"}}},
    {"room": {"timeline": {"limit": -1}}},
    {"room": {"rooms": "!a:b"}},
    {"room": {"not_rooms": ["#alias:b"]}},
    {"room": {"timeline": {"rooms": ["!a:"]}}},
    {"room": {"state": {"senders": ["alice"]}}},
    {"presence": {"not_senders": ["@alice"]}},
    {"event_format": "xml"},
    {"event_fields": [1]},
    {"presence": []},
])
async def test_bad_filters(api, definition) -> None:
    me = await api.register("dan")
    status, body = await api.call("POST", "/_matrix/client/v3/user/@dan:test.local/filter", definition,
                                  token=me["access_token"])
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_filters_name_rooms_of_every_room_version(api) -> None:
    """Room IDs with a server name and room version 12's (the create event's hash) both pass; so
    does an inline /sync filter's, and /messages compares whatever it is given."""
    me = await api.register("gus")
    v12_room = "!" + "A" * 43
    definition = {"room": {"rooms": ["!a:b.example", v12_room], "timeline": {"not_senders": ["@x:b.example"]}}}
    status, body = await api.call("POST", "/_matrix/client/v3/user/@gus:test.local/filter", definition,
                                  token=me["access_token"])
    assert status == 200, body
    status, body = await api.call("GET", "/_matrix/client/v3/sync", query={"filter": '{"room":{"rooms":["x"]}}'},
                                  token=me["access_token"])
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    _, room = await api.call("POST", "/_matrix/client/v3/createRoom", {}, token=me["access_token"])
    status, body = await api.call("GET", f"/_matrix/client/v3/rooms/{room['room_id']}/messages",
                                  query={"dir": "b", "filter": '{"senders":["gus"]}'}, token=me["access_token"])
    assert status == 200 and body["chunk"] == [], body


async def test_filters_belong_to_their_user(api) -> None:
    a = await api.register("eve")
    await api.register("fay")
    status, body = await api.call("POST", "/_matrix/client/v3/user/@fay:test.local/filter", {},
                                  token=a["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("GET", "/_matrix/client/v3/user/@fay:test.local/filter/0", token=a["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_account_data(api) -> None:
    me = await api.register("gus")
    token, base = me["access_token"], "/_matrix/client/v3/user/@gus:test.local"
    status, body = await api.call("GET", f"{base}/account_data/m.direct", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert (await api.call("PUT", f"{base}/account_data/m.direct", {"@x:y": ["!r:y"]}, token=token))[0] == 200
    assert (await api.call("PUT", f"{base}/account_data/m.direct", {"@x:y": ["!s:y"]}, token=token))[0] == 200
    assert (await api.call("GET", f"{base}/account_data/m.direct", token=token))[1] == {"@x:y": ["!s:y"]}

    room = f"{base}/rooms/!room:test.local/account_data"
    assert (await api.call("PUT", f"{room}/m.tag", {"tags": {"u.work": {}}}, token=token))[0] == 200
    assert (await api.call("GET", f"{room}/m.tag", token=token))[1] == {"tags": {"u.work": {}}}
    assert (await api.call("GET", f"{base}/account_data/m.tag", token=token))[0] == 404

    # The types the server manages are refused globally and per room alike (spec v1.10).
    for path in (f"{room}/m.fully_read", f"{base}/account_data/m.fully_read", f"{room}/m.push_rules",
                 f"{base}/account_data/m.push_rules"):
        status, body = await api.call("PUT", path, {"event_id": "$x"}, token=token)
        assert (status, body["errcode"]) == (405, "M_BAD_JSON"), path
    status, body = await api.call("PUT", f"{base}/rooms/not-a-room/account_data/m.tag", {}, token=token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("PUT", f"{base}/account_data/m.direct", raw=b"[]", token=token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_account_data_is_private(api) -> None:
    a = await api.register("hal")
    await api.register("ida")
    status, body = await api.call("GET", "/_matrix/client/v3/user/@ida:test.local/account_data/m.direct",
                                  token=a["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_account_data_positions_increase(api) -> None:
    from pocketserver.storage import account_data
    me = await api.register("jon")
    for i in range(3):
        await api.call("PUT", f"/_matrix/client/v3/user/@jon:test.local/account_data/t{i}", {}, token=me["access_token"])
    rows = await api.server.db.fetchall("SELECT type, stream_position FROM account_data WHERE user_id = ? "
                                        "ORDER BY stream_position", ("@jon:test.local",))
    assert [r[0] for r in rows] == ["t0", "t1", "t2"]
    assert account_data.STREAM == "account_data"
