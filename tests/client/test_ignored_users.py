"""Ignoring users: their messages and invites stop reaching the user who ignores them.

Spec: client-server-api, "Ignoring Users" (state events still come through; the change applies to
the next /sync at once). As Synapse, history reads and notifications leave them out too.
"""
from __future__ import annotations

import aiohttp

from tests.js_client import JsClient

R = "/_matrix/client/v3/rooms"
SYNC = "/_matrix/client/v3/sync"


async def ignore(api, who: dict, *user_ids: str) -> None:
    status, body = await api.call("PUT", f"/_matrix/client/v3/user/{who['user_id']}/account_data/m.ignored_user_list",
                                  {"ignored_users": {u: {} for u in user_ids}}, token=who["access_token"])
    assert status == 200, body


async def send(api, who: dict, room: str, body: str, txn: str) -> str:
    status, resp = await api.call("PUT", f"{R}/{room}/send/m.room.message/{txn}", {"msgtype": "m.text", "body": body},
                                  token=who["access_token"])
    assert status == 200, resp
    return resp["event_id"]


def timeline_bodies(sync: dict, room: str) -> list[str]:
    events = sync["rooms"]["join"].get(room, {}).get("timeline", {}).get("events", [])
    return [e["content"].get("body") or e["type"] for e in events]


async def test_messages_invites_and_notifications_of_ignored_users(api) -> None:
    bob, mallory, carol = [await api.register(n) for n in ("bob", "mallory", "carol")]
    b = bob["access_token"]
    room = await api.create_room(carol["access_token"], preset="public_chat")
    for who in (bob, mallory):
        assert (await api.call("POST", f"{R}/{room}/join", {}, token=who["access_token"]))[0] == 200
    status, first = await api.call("GET", SYNC, token=b)
    await ignore(api, bob, mallory["user_id"])

    hidden = await send(api, mallory, room, "buy my stuff", "m1")
    status, body = await api.call("PUT", f"{R}/{room}/state/m.room.topic/", {"topic": "now with topic"},
                                  token=carol["access_token"])
    assert status == 200
    await api.call("POST", f"{R}/{room}/invite", {"user_id": mallory["user_id"]}, token=carol["access_token"])
    shown = await send(api, carol, room, "hello bob", "c1")

    # /sync, incremental and initial: mallory's message is gone; carol's and the state are there.
    status, sync = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=b)
    assert status == 200
    assert timeline_bodies(sync, room) == ["m.room.topic", "hello bob"]
    status, sync = await api.call("GET", SYNC, token=b)
    assert "buy my stuff" not in timeline_bodies(sync, room) and "hello bob" in timeline_bodies(sync, room)
    # Nothing of hers counts as unread.
    assert sync["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 1

    # History reads: /messages, /context, /event.
    status, page = await api.call("GET", f"{R}/{room}/messages", query={"dir": "b", "limit": "20"}, token=b)
    assert hidden not in {e["event_id"] for e in page["chunk"]} and shown in {e["event_id"] for e in page["chunk"]}
    status, context = await api.call("GET", f"{R}/{room}/context/{shown}", query={"limit": "10"}, token=b)
    assert hidden not in {e["event_id"] for e in context["events_before"]}
    status, body = await api.call("GET", f"{R}/{room}/event/{hidden}", token=b)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("GET", "/_matrix/client/v3/notifications", token=b)
    assert [n["event"]["event_id"] for n in body["notifications"]] == [shown]
    # Carol ignores no one and sees it all.
    status, page = await api.call("GET", f"{R}/{room}/messages", query={"dir": "b", "limit": "20"},
                                  token=carol["access_token"])
    assert hidden in {e["event_id"] for e in page["chunk"]}

    # An invite from mallory to a new room never reaches bob, in /sync or sliding sync.
    other = await api.create_room(mallory["access_token"], preset="private_chat")
    status, _ = await api.call("POST", f"{R}/{other}/invite", {"user_id": bob["user_id"]},
                               token=mallory["access_token"])
    assert status == 200
    status, sync = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=b)
    assert other not in sync["rooms"].get("invite", {})
    status, body = await api.call("GET", "/_matrix/client/v3/notifications", token=b)
    assert [n["event"]["event_id"] for n in body["notifications"]] == [shown]      # nor pushed
    status, sliding = await api.call("POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
                                     {"lists": {"all": {"ranges": [[0, 20]], "timeline_limit": 5}}}, token=b)
    assert status == 200, sliding
    assert other not in sliding.get("rooms", {}) and sliding["lists"]["all"]["count"] == 1

    # No longer ignored: what she sends from now on comes through; the invite shows again.
    await ignore(api, bob)
    status, sync = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=b)
    assert other in sync["rooms"].get("invite", {})
    later = await send(api, mallory, room, "sorry", "m2")
    status, page = await api.call("GET", f"{R}/{room}/messages", query={"dir": "b", "limit": "1"}, token=b)
    assert [e["event_id"] for e in page["chunk"]] == [later]


async def test_js_sdk_ignores_a_user(homeserver, http: aiohttp.ClientSession) -> None:
    """Element's "Ignore": js-sdk writes the list; the server's /sync stops delivering her messages."""
    peer = {}
    for name in ("js-ignorer", "js-spammer", "js-friend"):
        peer[name] = await homeserver.register_shared_secret(http, name, f"{name}-pw")

    async def call(name: str, method: str, path: str, body=None):
        async with http.request(method, f"{homeserver.base_url}{path}", json=body,
                                headers={"Authorization": f"Bearer {peer[name]['access_token']}"}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    js = await JsClient.start()
    try:
        await js.call("login", baseUrl=homeserver.base_url, user="js-ignorer", password="js-ignorer-pw")
        room = (await js.call("createRoom", name="Open", invite=[peer["js-spammer"]["user_id"],
                                                                peer["js-friend"]["user_id"]]))["room_id"]
        for name in ("js-spammer", "js-friend"):
            await call(name, "POST", f"{R}/{room}/join", {})
        await js.call("setIgnoredUsers", userIds=[peer["js-spammer"]["user_id"]])
        await call("js-spammer", "PUT", f"{R}/{room}/send/m.room.message/s1", {"msgtype": "m.text", "body": "spam"})
        await call("js-friend", "PUT", f"{R}/{room}/send/m.room.message/f1", {"msgtype": "m.text", "body": "hi"})
        await js.wait_for(lambda e: e["event"] == "timeline" and e["body"] == "hi")
        assert not [e for e in js.events if e["event"] == "timeline" and e["body"] == "spam"]
    finally:
        await js.close()
