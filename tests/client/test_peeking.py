"""Room previews: a room's initial sync and the peek event stream, for members, former members
and outsiders of world-readable rooms; matrix-js-sdk's peekInRoom against them.

Spec: client-server-api, "Room Previews", "GET /_matrix/client/v3/rooms/{roomId}/initialSync",
"GET /_matrix/client/v3/events".
"""
from __future__ import annotations

import asyncio
import signal
import time
from urllib.parse import quote

from tests.conftest import start_server
from tests.js_client import JsClient

V3 = "/_matrix/client/v3"
WORLD_READABLE = [{"type": "m.room.history_visibility", "content": {"history_visibility": "world_readable"}}]


async def send(api, token: str, room_id: str, body: str, txn: str) -> str:
    status, resp = await api.call("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/{txn}",
                                  {"msgtype": "m.text", "body": body}, token=token)
    assert status == 200, resp
    return resp["event_id"]


def bodies(events: list[dict]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def test_initial_sync_for_outsiders_members_and_leavers(api) -> None:
    alice, bob, eve = [await api.register(n) for n in ("alice", "bob", "eve")]
    a, b, e = alice["access_token"], bob["access_token"], eve["access_token"]
    room = await api.create_room(a, preset="public_chat", visibility="public", name="Open house",
                                 initial_state=WORLD_READABLE)
    for i in range(3):
        await send(api, a, room, f"m{i}", f"t{i}")

    status, body = await api.call("GET", f"{V3}/rooms/{room}/initialSync", query={"limit": "2"}, token=e)
    assert status == 200, body
    assert "membership" not in body and body["room_id"] == room and body["visibility"] == "public"
    assert bodies(body["messages"]["chunk"]) == ["m1", "m2"]              # the latest, oldest first
    assert {(s["type"], s["state_key"]) for s in body["state"]} >= {("m.room.create", ""), ("m.room.name", "")}
    assert body["presence"] == [] and body["account_data"] == []
    # The start token pages further back through /messages.
    status, older = await api.call("GET", f"{V3}/rooms/{room}/messages",
                                   query={"from": body["messages"]["start"], "dir": "b", "limit": "1"}, token=e)
    assert status == 200 and bodies(older["chunk"]) == ["m0"], older

    # A member sees their membership, the joined members' presence and their room account data.
    await api.call("PUT", f"{V3}/user/{quote(alice['user_id'])}/rooms/{room}/tags/m.favourite", {}, token=a)
    status, body = await api.call("GET", f"{V3}/rooms/{room}/initialSync", token=a)
    assert body["membership"] == "join"
    assert [p["sender"] for p in body["presence"]] == [alice["user_id"]]
    assert {"type": "m.tag", "content": {"tags": {"m.favourite": {}}}} in body["account_data"]

    # A former member reads up to their leave, and sees it.
    assert (await api.call("POST", f"{V3}/rooms/{room}/join", {}, token=b))[0] == 200
    assert (await api.call("POST", f"{V3}/rooms/{room}/leave", {}, token=b))[0] == 200
    await api.call("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility",
                   {"history_visibility": "shared"}, token=a)
    await send(api, a, room, "after bob left", "t9")
    status, body = await api.call("GET", f"{V3}/rooms/{room}/initialSync", token=b)
    assert status == 200 and body["membership"] == "leave", body
    assert "after bob left" not in bodies(body["messages"]["chunk"])
    assert body["messages"]["chunk"][-1]["sender"] == bob["user_id"]      # his leave is the last he saw
    # No longer world-readable: the outsider is refused.
    status, body = await api.call("GET", f"{V3}/rooms/{room}/initialSync", token=e)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN", body


async def test_peek_events_long_poll(api) -> None:
    alice, eve = await api.register("alice"), await api.register("eve")
    a, e = alice["access_token"], eve["access_token"]
    room = await api.create_room(a, preset="public_chat", initial_state=WORLD_READABLE)
    private = await api.create_room(a, preset="private_chat")
    status, first = await api.call("GET", f"{V3}/events", query={"room_id": room, "timeout": "0"}, token=e)
    assert status == 200 and first["chunk"] == [], first

    async def later() -> None:
        await asyncio.sleep(0.3)
        await send(api, a, private, "elsewhere", "p1")    # another room's event does not end the wait
        await asyncio.sleep(0.2)
        await send(api, a, room, "hello peekers", "t1")

    task = asyncio.create_task(later())
    status, got = await api.call("GET", f"{V3}/events",
                                 query={"room_id": room, "from": first["end"], "timeout": "10000"}, token=e)
    await task
    assert status == 200 and bodies(got["chunk"]) == ["hello peekers"], got
    assert got["start"] == first["end"] and got["end"] != first["end"]
    status, quiet = await api.call("GET", f"{V3}/events", query={"room_id": room, "from": got["end"], "timeout": "0"},
                                   token=e)
    assert quiet["chunk"] == [] and quiet["end"] == got["end"], quiet

    status, body = await api.call("GET", f"{V3}/events", query={"room_id": private, "timeout": "0"}, token=e)
    assert status == 403 and body["errcode"] == "M_FORBIDDEN", body
    status, body = await api.call("GET", f"{V3}/events", query={"timeout": "0"}, token=e)
    assert status == 404 and body["errcode"] == "M_UNRECOGNIZED", body
    status, body = await api.call("GET", f"{V3}/events", query={"room_id": room, "from": "nonsense"}, token=e)
    assert status == 400, body


async def test_js_sdk_peeks_into_a_world_readable_room(homeserver, http) -> None:
    host = await homeserver.register_shared_secret(http, "peek-host", "peek-host-pw")
    await homeserver.register_shared_secret(http, "peeker", "peeker-pw")
    headers = {"Authorization": f"Bearer {host['access_token']}"}
    base = homeserver.base_url
    async with http.post(f"{base}{V3}/createRoom", json={"preset": "public_chat", "name": "Shop window",
                                                         "initial_state": WORLD_READABLE}, headers=headers) as resp:
        room = (await resp.json())["room_id"]
    for i, text in enumerate(("first", "second")):
        async with http.put(f"{base}{V3}/rooms/{room}/send/m.room.message/w{i}", json={"msgtype": "m.text", "body": text},
                            headers=headers) as resp:
            assert resp.status == 200
    js = await JsClient.start()
    try:
        await js.call("login", baseUrl=base, user="peeker", password="peeker-pw")
        peeked = await js.call("peek", roomId=room)
        assert peeked["bodies"] == ["first", "second"] and peeked["name"] == "Shop window"
        # New messages reach the peeking client through its /events long-poll.
        await asyncio.sleep(0.5)
        async with http.put(f"{base}{V3}/rooms/{room}/send/m.room.message/w9", json={"msgtype": "m.text", "body": "third"},
                            headers=headers) as resp:
            assert resp.status == 200
        await js.wait_for(lambda ev: ev["event"] == "timeline" and ev["room_id"] == room and ev["body"] == "third")
    finally:
        await js.close()


async def test_stopping_answers_a_peek_at_once(tmp_path, http) -> None:
    """SIGTERM during a peek long-poll: answered at once with nothing new, and a clean exit."""
    server = start_server(tmp_path)
    try:
        user = await server.register_shared_secret(http, "peeker", "peeker-pw")
        headers = {"Authorization": f"Bearer {user['access_token']}"}
        async with http.post(f"{server.base_url}{V3}/createRoom",
                             json={"preset": "public_chat", "initial_state": WORLD_READABLE}, headers=headers) as resp:
            room = (await resp.json())["room_id"]

        async def peek() -> tuple[int, dict]:
            async with http.get(f"{server.base_url}{V3}/events", params={"room_id": room, "timeout": "60000"},
                                headers=headers) as resp:
                return resp.status, await resp.json()

        polling = asyncio.create_task(peek())
        await asyncio.sleep(1)
        assert not polling.done()
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status, body = await asyncio.wait_for(polling, 5)
        assert status == 200 and body["chunk"] == [], body
        assert await asyncio.to_thread(server.process.wait, 5) == 0
        assert time.monotonic() - started < 5
    finally:
        server.stop()


async def test_one_event_by_its_id_alone(api) -> None:
    """The deprecated GET /events/{eventId}: the event with its room, for whoever may read it."""
    alice, bob, carol = await api.tokens("alice", "bob", "carol")
    _, created = await api.call("POST", f"{V3}/createRoom", {"preset": "public_chat"}, token=alice)
    room = created["room_id"]
    await api.call("POST", f"{V3}/join/{room}", {}, token=bob)
    before = await send(api, alice, room, "before bob left", "e1")
    await api.call("POST", f"{V3}/rooms/{room}/leave", {}, token=bob)
    after = await send(api, alice, room, "after bob left", "e2")

    status, event = await api.call("GET", f"{V3}/events/{quote(before)}", token=alice)
    assert status == 200 and (event["room_id"], event["content"]["body"]) == (room, "before bob left")
    assert event["unsigned"]["transaction_id"] == "e1"
    assert (await api.call("GET", f"{V3}/events/{quote(before)}", token=bob))[0] == 200   # up to his leave
    for token, event_id in ((bob, after), (carol, before), (alice, "$nope")):
        status, body = await api.call("GET", f"{V3}/events/{quote(event_id)}", token=token)
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), event_id
