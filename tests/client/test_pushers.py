"""Pushers over HTTP, and delivery to a real push gateway on 127.0.0.1.

Spec: client-server-api, "Client behaviour" (pushers/set, pushers); push-gateway-api, "POST /_matrix/push/v1/notify".
"""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import pytest
from aiohttp import web

R = "/_matrix/client/v3/rooms"
SET = "/_matrix/client/v3/pushers/set"
ALICE, BOB = "@alice:test.local", "@bob:test.local"


class Gateway:
    """A push gateway that records every notify call and answers as told."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.count = 0
        self.reject: set[str] = set()
        self.fail_next = 0
        self.url = ""

    async def notify(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.count += 1
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": "try later"}, status=503)
        await self.calls.put(body)
        keys = [d["pushkey"] for d in body["notification"]["devices"]]
        return web.json_response({"rejected": [k for k in keys if k in self.reject]})

    async def next_call(self) -> dict[str, Any]:
        return (await asyncio.wait_for(self.calls.get(), 10))["notification"]


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    app = web.Application()
    app.router.add_post("/_matrix/push/v1/notify", gw.notify)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    gw.url = f"http://127.0.0.1:{port}/_matrix/push/v1/notify"
    yield gw
    await runner.cleanup()


def pusher_body(url: str, pushkey: str = "key-1", **data: Any) -> dict[str, Any]:
    return {"kind": "http", "app_id": "org.example.app", "pushkey": pushkey, "app_display_name": "Example",
            "device_display_name": "Phone", "lang": "en", "data": {"url": url, **data}}


async def two_in_a_room(api: Any) -> tuple[str, str, str]:
    a = (await api.register("alice"))["access_token"]
    b = (await api.register("bob"))["access_token"]
    await api.call("PUT", "/_matrix/client/v3/profile/@alice:test.local/displayname", {"displayname": "Alice"},
                   token=a)
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat", "name": "Kitchen"},
                             token=a)
    room = body["room_id"]
    status, body = await api.call("POST", f"{R}/{room}/join", {}, token=b)
    assert status == 200, body
    return a, b, room


async def send(api: Any, token: str, room: str, txn: str, content: dict[str, Any]) -> str:
    status, body = await api.call("PUT", f"{R}/{room}/send/m.room.message/{txn}", content, token=token)
    assert status == 200, body
    return body["event_id"]


async def wait_until(api: Any, condition: Any) -> None:
    """Wait on the pushers' change signal (not a timer) until `condition()` holds."""
    updated = api.server.push.pushers.updated

    async def loop() -> None:
        while not condition():
            updated.clear()
            await updated.wait()

    await asyncio.wait_for(loop(), 10)


async def test_set_and_get_pushers(api, gateway) -> None:
    a, b, _ = await two_in_a_room(api)
    status, body = await api.call("POST", SET, {**pusher_body(gateway.url, format="event_id_only"),
                                                   "profile_tag": "xyz"}, token=b)
    assert status == 200 and body == {}, body
    status, body = await api.call("GET", "/_matrix/client/v3/pushers", token=b)
    assert status == 200
    assert body["pushers"] == [{"pushkey": "key-1", "kind": "http", "app_id": "org.example.app",
                                "app_display_name": "Example", "device_display_name": "Phone", "lang": "en",
                                "profile_tag": "xyz", "data": {"url": gateway.url, "format": "event_id_only"}}]
    _, body = await api.call("GET", "/_matrix/client/v3/pushers", token=a)
    assert body == {"pushers": []}

    # Same app_id and pushkey from another user without append: bob's pusher goes away.
    status, _ = await api.call("POST", SET, pusher_body(gateway.url), token=a)
    assert status == 200
    _, body = await api.call("GET", "/_matrix/client/v3/pushers", token=b)
    assert body == {"pushers": []}
    status, _ = await api.call("POST", SET, {**pusher_body(gateway.url), "append": True}, token=b)
    assert status == 200
    _, body = await api.call("GET", "/_matrix/client/v3/pushers", token=a)
    assert len(body["pushers"]) == 1

    status, _ = await api.call("POST", SET, {"kind": None, "app_id": "org.example.app", "pushkey": "key-1"}, token=a)
    assert status == 200
    _, body = await api.call("GET", "/_matrix/client/v3/pushers", token=a)
    assert body == {"pushers": []}
    _, body = await api.call("GET", "/_matrix/client/v3/pushers", token=b)
    assert len(body["pushers"]) == 1


@pytest.mark.parametrize("change,errcode", [
    ({"data": {"url": "ftp://127.0.0.1/_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
    ({"data": {"url": "https://gw.example/other/path"}}, "M_INVALID_PARAM"),
    ({"data": {"url": "https:///_matrix/push/v1/notify"}}, "M_INVALID_PARAM"),
    ({"data": {"url": 5}}, "M_INVALID_PARAM"),
    ({"data": {}}, "M_MISSING_PARAM"),
    ({"data": "x"}, "M_INVALID_PARAM"),
    ({"data": None}, "M_INVALID_PARAM"),
    ({"kind": "email"}, "M_INVALID_PARAM"),
    ({"kind": 3}, "M_INVALID_PARAM"),
    ({"pushkey": "k" * 513}, "M_INVALID_PARAM"),
    ({"app_id": "a" * 65}, "M_INVALID_PARAM"),
    ({"lang": None}, "M_INVALID_PARAM"),
    ({"append": "yes"}, "M_INVALID_PARAM"),
])
async def test_pushers_set_rejects_bad_input(api, change: dict[str, Any], errcode: str) -> None:
    b = (await api.register("bob"))["access_token"]
    body = {**pusher_body("https://gw.example/_matrix/push/v1/notify"), **change}
    status, resp = await api.call("POST", SET, body, token=b)
    assert status == 400 and resp["errcode"] == errcode, resp


async def test_pushers_set_missing_fields(api) -> None:
    b = (await api.register("bob"))["access_token"]
    status, resp = await api.call("POST", SET, {"kind": "http", "app_id": "x"}, token=b)
    assert status == 400 and resp["errcode"] == "M_MISSING_PARAM"
    status, resp = await api.call("POST", SET, {"kind": "http", "app_id": "x", "pushkey": "k"}, token=b)
    assert status == 400 and resp["errcode"] == "M_MISSING_PARAM"
    status, resp = await api.call("POST", SET, raw=b"{", token=b)
    assert status == 400 and resp["errcode"] == "M_NOT_JSON"


async def test_message_produces_one_notify(api, gateway) -> None:
    a, b, room = await two_in_a_room(api)
    status, _ = await api.call("POST", SET, pusher_body(gateway.url, custom="keep"), token=b)
    assert status == 200
    # Bob's own message notifies nobody; alice's next one is the first call the gateway sees.
    await send(api, b, room, "own", {"msgtype": "m.text", "body": "mine"})
    event_id = await send(api, a, room, "1", {"msgtype": "m.text", "body": "hello there"})
    n = await gateway.next_call()
    assert n["event_id"] == event_id and n["room_id"] == room
    assert n["type"] == "m.room.message" and n["sender"] == ALICE
    assert n["content"] == {"msgtype": "m.text", "body": "hello there"}
    assert n["sender_display_name"] == "Alice" and n["room_name"] == "Kitchen"
    assert n["counts"] == {"unread": 1}
    assert n["prio"] == "high"          # two members: .m.rule.room_one_to_one plays a sound
    [device] = n["devices"]
    assert device["app_id"] == "org.example.app" and device["pushkey"] == "key-1"
    assert isinstance(device["pushkey_ts"], int) and device["pushkey_ts"] < 10**11    # seconds
    assert device["data"] == {"custom": "keep"}
    assert device["tweaks"] == {"sound": "default"}

    mention = await send(api, a, room, "2", {"msgtype": "m.text", "body": "hey",
                                             "m.mentions": {"user_ids": [BOB]}})
    n = await gateway.next_call()
    assert n["event_id"] == mention and n["counts"] == {"unread": 2}
    assert n["devices"][0]["tweaks"] == {"sound": "default", "highlight": True}
    assert gateway.count == 2


async def test_reading_elsewhere_sends_a_badge_update(api, gateway) -> None:
    """A read receipt that lowers the badge sends a notification with only counts and devices, so a
    phone's badge clears when its owner reads on another device (as Synapse's badge pushes)."""
    a, b, room = await two_in_a_room(api)
    await api.call("POST", SET, pusher_body(gateway.url, format="event_id_only"), token=b)
    first = await send(api, a, room, "1", {"msgtype": "m.text", "body": "one"})
    second = await send(api, a, room, "2", {"msgtype": "m.text", "body": "two"})
    assert (await gateway.next_call())["event_id"] == first
    assert (await gateway.next_call())["counts"] == {"unread": 2}
    status, body = await api.call("POST", f"{R}/{room}/receipt/m.read/{first}", {}, token=b)
    assert status == 200, body
    badge = await gateway.next_call()
    assert set(badge) == {"counts", "prio", "devices"} and badge["counts"] == {"unread": 1}
    assert badge["devices"][0]["pushkey"] == "key-1"
    # Read up to the end through the read markers: the badge goes to zero, and says so.
    status, body = await api.call("POST", f"{R}/{room}/read_markers", {"m.fully_read": second, "m.read": second},
                                  token=b)
    assert status == 200, body
    assert (await gateway.next_call())["counts"] == {"unread": 0}
    # A receipt that changes nothing (the same event again) sends nothing.
    await api.call("POST", f"{R}/{room}/receipt/m.read/{second}", {}, token=b)
    third = await send(api, a, room, "3", {"msgtype": "m.text", "body": "three"})
    assert (await gateway.next_call())["event_id"] == third
    assert gateway.count == 5


async def test_low_priority_and_suppressed_events(api, gateway) -> None:
    a, b, room = await two_in_a_room(api)
    c = (await api.register("carol"))["access_token"]
    await api.call("POST", f"{R}/{room}/join", {}, token=c)
    await api.call("POST", SET, pusher_body(gateway.url), token=b)
    await send(api, a, room, "n", {"msgtype": "m.notice", "body": "bot says"})
    event_id = await send(api, a, room, "m", {"msgtype": "m.text", "body": "group message"})
    n = await gateway.next_call()
    assert n["event_id"] == event_id and n["prio"] == "low"
    assert n["devices"][0]["tweaks"] == {}
    assert gateway.count == 1


async def test_event_id_only_sends_no_content(api, gateway) -> None:
    a, b, room = await two_in_a_room(api)
    await api.call("POST", SET, pusher_body(gateway.url, format="event_id_only"), token=b)
    event_id = await send(api, a, room, "1", {"msgtype": "m.text", "body": "top secret"})
    n = await gateway.next_call()
    assert set(n) <= {"event_id", "room_id", "counts", "prio", "devices"}
    assert n["event_id"] == event_id and n["room_id"] == room and n["counts"] == {"unread": 1}
    assert n["devices"][0]["data"] == {"format": "event_id_only"}
    assert "top secret" not in repr(n)


async def test_invite_notifies_invitee(api, gateway) -> None:
    a = (await api.register("alice"))["access_token"]
    b = (await api.register("bob"))["access_token"]
    await api.call("POST", SET, pusher_body(gateway.url), token=b)
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"invite": [BOB]}, token=a)
    n = await gateway.next_call()
    assert n["room_id"] == body["room_id"] and n["type"] == "m.room.member"
    assert n["membership"] == "invite" and n["user_is_target"] is True
    assert n["prio"] == "high" and n["counts"] == {"unread": 1}


async def test_rejected_pushkey_is_removed(api, gateway) -> None:
    a, b, room = await two_in_a_room(api)
    await api.call("POST", SET, pusher_body(gateway.url, pushkey="dead-key"), token=b)
    gateway.reject.add("dead-key")
    await send(api, a, room, "1", {"msgtype": "m.text", "body": "anyone?"})
    await gateway.next_call()
    await wait_until(api, lambda: not api.server.push.pushers.for_user(BOB))
    _, body = await api.call("GET", "/_matrix/client/v3/pushers", token=b)
    assert body == {"pushers": []}
    await send(api, a, room, "2", {"msgtype": "m.text", "body": "still?"})
    assert gateway.calls.empty() and gateway.count == 1


async def test_failed_notify_is_retried(api, gateway) -> None:
    a, b, room = await two_in_a_room(api)
    api.server.push.pushers.backoff_base_ms = 5
    await api.call("POST", SET, pusher_body(gateway.url), token=b)
    gateway.fail_next = 2
    event_id = await send(api, a, room, "1", {"msgtype": "m.text", "body": "retry me"})
    n = await gateway.next_call()
    assert n["event_id"] == event_id
    assert gateway.count == 3


async def test_logging_out_removes_the_devices_pushers(api) -> None:
    """Pushers belong to the device that set them: logging it out removes them."""
    me = await api.register("logout-pusher")
    token = me["access_token"]
    status, _ = await api.call("POST", "/_matrix/client/v3/pushers/set", {
        "kind": "http", "app_id": "org.example.app", "pushkey": "key-1", "app_display_name": "App",
        "device_display_name": "Phone", "lang": "en", "data": {"url": "https://push.example/_matrix/push/v1/notify"}},
        token=token)
    assert status == 200
    assert len((await api.call("GET", "/_matrix/client/v3/pushers", token=token))[1]["pushers"]) == 1
    _, other = await api.call("POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "logout-pusher"}, "password": "pw"})
    assert (await api.call("POST", "/_matrix/client/v3/logout", {}, token=token))[0] == 200
    _, listed = await api.call("GET", "/_matrix/client/v3/pushers", token=other["access_token"])
    assert listed["pushers"] == []
    assert api.server.push.pushers.for_user("@logout-pusher:test.local") == []


async def test_after_an_outage_only_unread_messages_ring_in_order_with_todays_badge(api, gateway) -> None:
    """While the gateway is down the pusher backs off as a whole (no request per queued
    notification); once it is back, what the user read meanwhile is not pushed, the rest goes in
    order, and the badge is the unread count as it is sent, so the last push leaves the phone's
    badge right. As Synapse's HTTP pusher."""
    a, b, room = await two_in_a_room(api)
    pushers = api.server.push.pushers
    pushers.backoff_base_ms = 300
    await api.call("POST", SET, pusher_body(gateway.url), token=b)
    gateway.fail_next = 1_000_000
    sent = [await send(api, a, room, str(n), {"msgtype": "m.text", "body": f"msg {n}"}) for n in range(10)]
    await asyncio.sleep(0.5)
    assert gateway.count <= 3, gateway.count          # one try per backoff step, not one per message
    status, _ = await api.call("POST", f"{R}/{room}/receipt/m.read/{sent[6]}", {}, token=b)
    assert status == 200
    gateway.fail_next = 0
    pushers.backoff_base_ms = 1
    pushers._wake.set()       # noqa: SLF001 -- as the next retry would, without waiting for it
    calls = [await gateway.next_call() for _ in range(4)]
    assert [c.get("event_id") for c in calls] == sent[7:] + [None], calls
    assert [c["counts"] for c in calls] == [{"unread": 3}] * 3 + [{"unread": 3}]
    await asyncio.sleep(0.2)
    assert gateway.calls.empty()
