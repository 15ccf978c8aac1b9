"""The whole-history shortcut of history visibility applies only while a room was always shared.

Spec: client-server-api, "Room History Visibility".
"""
from __future__ import annotations

R = "/_matrix/client/v3/rooms"


async def bodies(api, room, token):
    _, page = await api.call("GET", f"{R}/{room}/messages", query={"limit": "50"}, token=token)
    return [e["content"].get("body") for e in page["chunk"] if e["type"] == "m.room.message"]


async def test_visibility_change_is_seen_by_the_shortcut(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"body": "shared era"}, token=a)
    assert await bodies(api, room, a) == ["shared era"]          # fills the shortcut's cache for the room
    await api.call("PUT", f"{R}/{room}/state/m.room.history_visibility", {"history_visibility": "joined"}, token=a)
    await api.call("PUT", f"{R}/{room}/send/m.room.message/2", {"body": "joined era"}, token=a)
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    await api.call("PUT", f"{R}/{room}/send/m.room.message/3", {"body": "with bob"}, token=a)
    # Rule 3 lets bob see the shared-era message; the joined-era one before his join stays hidden.
    assert await bodies(api, room, b) == ["with bob", "shared era"]
    assert await bodies(api, room, a) == ["with bob", "joined era", "shared era"]


async def test_shared_room_shows_history_before_join(api) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"body": "before bob"}, token=a)
    status, _ = await api.call("GET", f"{R}/{room}/messages", token=b)
    assert status == 403
    await api.call("POST", f"{R}/{room}/join", {}, token=b)
    assert await bodies(api, room, b) == ["before bob"]
    await api.call("POST", f"{R}/{room}/leave", {}, token=b)
    await api.call("PUT", f"{R}/{room}/send/m.room.message/2", {"body": "after bob left"}, token=a)
    assert await bodies(api, room, b) == ["before bob"]
