"""Room tags over HTTP and through matrix-js-sdk: set, list, remove, and seen as m.tag in /sync.

Spec: client-server-api, "Room Tagging".
"""
from __future__ import annotations

from urllib.parse import quote

from tests.js_client import JsClient

V3 = "/_matrix/client/v3"


def tags_path(user_id: str, room_id: str, tag: str | None = None) -> str:
    path = f"{V3}/user/{quote(user_id)}/rooms/{quote(room_id)}/tags"
    return path if tag is None else f"{path}/{quote(tag)}"


async def test_js_sdk_tags_a_room_and_sees_the_tags_in_sync(homeserver, http) -> None:
    await homeserver.register_shared_secret(http, "js-tagger", "js-tagger-pw")
    js = await JsClient.start()
    try:
        await js.call("login", baseUrl=homeserver.base_url, user="js-tagger", password="js-tagger-pw")
        room_id = (await js.call("createRoom", name="Tagged"))["room_id"]
        await js.call("setRoomTag", roomId=room_id, tag="m.favourite", order=0.25)
        await js.call("setRoomTag", roomId=room_id, tag="u.Work")
        seen = await js.wait_for(lambda e: e["event"] == "tags" and e["room_id"] == room_id
                                 and set(e["tags"]) == {"m.favourite", "u.Work"})
        assert seen["tags"] == {"m.favourite": {"order": 0.25}, "u.Work": {}}
        assert (await js.call("getRoomTags", roomId=room_id))["tags"] == seen["tags"]

        await js.call("deleteRoomTag", roomId=room_id, tag="u.Work")
        await js.wait_for(lambda e: e["event"] == "tags" and e["room_id"] == room_id
                          and e["tags"] == {"m.favourite": {"order": 0.25}})
        assert (await js.call("getRoomTags", roomId=room_id))["tags"] == {"m.favourite": {"order": 0.25}}
    finally:
        await js.close()


async def test_tags_in_sync_and_their_limits(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    me = alice["user_id"]
    room_id = await api.create_room(a, name="Mine")
    status, body = await api.call("GET", tags_path(me, room_id), token=a)
    assert (status, body) == (200, {"tags": {}})
    _, first = await api.call("GET", f"{V3}/sync", token=a)

    status, body = await api.call("PUT", tags_path(me, room_id, "m.lowpriority"), {"order": 1}, token=a)
    assert status == 200 and body == {}, body
    _, later = await api.call("GET", f"{V3}/sync", query={"since": first["next_batch"], "timeout": "0"}, token=a)
    account_data = later["rooms"]["join"][room_id]["account_data"]["events"]
    assert {"type": "m.tag", "content": {"tags": {"m.lowpriority": {"order": 1}}}} in account_data
    # The same data through the room account data API.
    status, body = await api.call("GET", f"{V3}/user/{quote(me)}/rooms/{quote(room_id)}/account_data/m.tag", token=a)
    assert (status, body) == (200, {"tags": {"m.lowpriority": {"order": 1}}})

    # Removing a tag the room does not have changes nothing, and the next sync brings nothing.
    status, body = await api.call("DELETE", tags_path(me, room_id, "u.none"), token=a)
    assert status == 200, body
    _, quiet = await api.call("GET", f"{V3}/sync", query={"since": later["next_batch"], "timeout": "0"}, token=a)
    assert room_id not in quiet.get("rooms", {}).get("join", {}), quiet

    # Another user's tags are neither readable nor writable.
    for method, path in (("GET", tags_path(me, room_id)), ("PUT", tags_path(me, room_id, "u.x")),
                         ("DELETE", tags_path(me, room_id, "m.lowpriority"))):
        status, body = await api.call(method, path, {} if method == "PUT" else None, token=b)
        assert status == 403 and body["errcode"] == "M_FORBIDDEN", (method, body)

    # Bad input: an order that is not a number, a tag name over 255 bytes, a body that is not an object.
    status, body = await api.call("PUT", tags_path(me, room_id, "u.x"), {"order": "first"}, token=a)
    assert status == 400 and body["errcode"] == "M_BAD_JSON", body
    status, body = await api.call("PUT", tags_path(me, room_id, "u." + "é" * 127), {}, token=a)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM", body
    status, body = await api.call("PUT", tags_path(me, room_id, "u.x"), raw=b"[1]", token=a)
    assert status == 400 and body["errcode"] in ("M_BAD_JSON", "M_NOT_JSON"), body
    # All of a room's tags together are bounded, and a refused tag leaves the others as they were.
    status, body = await api.call("PUT", tags_path(me, room_id, "u.big"), {"note": "x" * 60_000}, token=a)
    assert status == 200, body
    status, body = await api.call("PUT", tags_path(me, room_id, "u.bigger"), {"note": "y" * 10_000}, token=a)
    assert status == 413 and body["errcode"] == "M_TOO_LARGE", body
    _, body = await api.call("GET", tags_path(me, room_id), token=a)
    assert set(body["tags"]) == {"m.lowpriority", "u.big"}


async def test_only_a_room_with_a_membership_can_be_tagged(api) -> None:
    """As Synapse: a room the user never had a membership in is refused (403); a left room is not."""
    alice = await api.register("alice")
    bob = await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    _, created = await api.call("POST", f"{V3}/createRoom", {"preset": "public_chat"}, token=a)
    room = created["room_id"]
    for room_id in (room, "!nowhere:test.local"):
        status, body = await api.call("PUT", tags_path(bob["user_id"], room_id, "u.x"), {}, token=b)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), room_id
    assert await api.call("GET", tags_path(bob["user_id"], room), token=b) == (200, {"tags": {}})
    await api.call("POST", f"{V3}/join/{room}", {}, token=b)
    await api.call("POST", f"{V3}/rooms/{room}/leave", {}, token=b)
    assert await api.call("PUT", tags_path(bob["user_id"], room, "u.x"), {}, token=b) == (200, {})
    assert await api.call("GET", tags_path(bob["user_id"], room), token=b) == (200, {"tags": {"u.x": {}}})
