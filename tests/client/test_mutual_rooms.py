"""The rooms two users share, over HTTP and with matrix-js-sdk.

Spec: client-server-api, "GET /_matrix/client/v1/mutual_rooms"; MSC2666's unstable path.
"""
from __future__ import annotations

import aiohttp

from tests.js_client import JsClient

STABLE = "/_matrix/client/v1/mutual_rooms"
UNSTABLE = "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms"
BOB = "@bob:test.local"


async def test_only_rooms_both_are_joined_to(api) -> None:
    alice, bob, carol = await api.tokens("alice", "bob", "carol")
    shared = await api.create_room(alice, invite=[BOB])
    assert (await api.call("POST", f"/_matrix/client/v3/join/{shared}", {}, token=bob))[0] == 200
    other_shared = await api.create_room(bob, invite=["@alice:test.local"])
    assert (await api.call("POST", f"/_matrix/client/v3/join/{other_shared}", {}, token=alice))[0] == 200
    await api.create_room(alice, invite=[BOB])                       # bob only invited
    left = await api.create_room(alice, preset="public_chat")
    assert (await api.call("POST", f"/_matrix/client/v3/join/{left}", {}, token=bob))[0] == 200
    assert (await api.call("POST", f"/_matrix/client/v3/rooms/{left}/leave", {}, token=bob))[0] == 200
    await api.create_room(bob)                                       # bob alone
    with_carol = await api.create_room(alice, invite=["@carol:test.local"])
    assert (await api.call("POST", f"/_matrix/client/v3/join/{with_carol}", {}, token=carol))[0] == 200

    status, body = await api.call("GET", STABLE, query={"user_id": BOB}, token=alice)
    assert status == 200, body
    assert body == {"joined": sorted([shared, other_shared]), "count": 2}
    assert await api.call("GET", UNSTABLE, query={"user_id": BOB}, token=alice) == (
        200, {"joined": sorted([shared, other_shared])})
    assert await api.call("GET", STABLE, query={"user_id": "@alice:test.local"}, token=bob) == (
        200, {"joined": sorted([shared, other_shared]), "count": 2})
    assert await api.call("GET", STABLE, query={"user_id": "@carol:test.local"}, token=bob) == (
        200, {"joined": [], "count": 0})
    # A user nobody has heard of shares nothing (the spec: an empty list, not an error).
    assert await api.call("GET", STABLE, query={"user_id": "@nobody:elsewhere.example"}, token=alice) == (
        200, {"joined": [], "count": 0})

    # Leaving takes the room off both sides' lists.
    assert (await api.call("POST", f"/_matrix/client/v3/rooms/{shared}/leave", {}, token=alice))[0] == 200
    assert (await api.call("GET", STABLE, query={"user_id": BOB}, token=alice))[1]["joined"] == [other_shared]
    assert (await api.call("GET", STABLE, query={"user_id": "@alice:test.local"}, token=bob))[1]["joined"] == [
        other_shared]


async def test_refusals(api) -> None:
    [alice] = await api.tokens("alice")
    status, body = await api.call("GET", STABLE, query={"user_id": BOB})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    for path in (STABLE, UNSTABLE):
        status, body = await api.call("GET", path, token=alice)
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM"), path
        for bad in ("bob", "@:test.local", "@bob", "@bob:bad server"):
            status, body = await api.call("GET", path, query={"user_id": bad}, token=alice)
            assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), (path, bad)
        status, body = await api.call("GET", f"{path}?user_id={BOB}&user_id=@carol:test.local", token=alice)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), path
    # No batch token is ever handed out, so none can be sent back.
    status, body = await api.call("GET", STABLE, query={"user_id": BOB, "from": "x"}, token=alice)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("GET", UNSTABLE, query={"user_id": BOB, "batch_token": "x"}, token=alice)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    # One's own ID: 400 on the stable path (the spec), 422 on the unstable one (as Synapse).
    status, body = await api.call("GET", STABLE, query={"user_id": "@alice:test.local"}, token=alice)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api.call("GET", UNSTABLE, query={"user_id": "@alice:test.local"}, token=alice)
    assert (status, body["errcode"]) == (422, "M_INVALID_PARAM")


async def test_js_sdk_lists_shared_rooms(homeserver, http: aiohttp.ClientSession) -> None:
    """What Element's user panel asks: matrix-js-sdk picks the path from /versions' unstable features."""
    alice = await homeserver.register_shared_secret(http, "mralice", "pw")
    bob = await homeserver.register_shared_secret(http, "mrbob", "pw")
    auth = {"Authorization": f"Bearer {alice['access_token']}"}
    async with http.post(f"{homeserver.base_url}/_matrix/client/v3/createRoom", headers=auth,
                         json={"invite": [bob["user_id"]]}) as resp:
        room_id = (await resp.json())["room_id"]
    async with http.post(f"{homeserver.base_url}/_matrix/client/v3/join/{room_id}", json={},
                         headers={"Authorization": f"Bearer {bob['access_token']}"}) as resp:
        assert resp.status == 200
    js = await JsClient.start()
    try:
        await js.call("login", baseUrl=homeserver.base_url, user="mrbob", password="pw")
        assert (await js.call("getSharedRooms", userId=alice["user_id"]))["roomIds"] == [room_id]
    finally:
        await js.close()
