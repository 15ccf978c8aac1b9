"""Abuse limits: rates on sends, room creation, invites, joins, uploads, receipts and typing; caps on
rooms joined, devices, filter size and page sizes.

Spec: client-server-api, "Rate limiting" (429 M_LIMIT_EXCEEDED with retry_after_ms); a count at
its cap answers 403 M_FORBIDDEN, a too-large filter 413 M_TOO_LARGE.
"""
from __future__ import annotations

from typing import Any

from tests.conftest import Api

SLOW = 0.001     # per second: nothing refills during a test


def assert_limited(status: int, body: Any) -> None:
    assert status == 429, body
    assert body["errcode"] == "M_LIMIT_EXCEEDED" and body["retry_after_ms"] > 0, body


async def create_room(api: Api, token: str, **extra: Any) -> tuple[int, Any]:
    return await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat", **extra}, token=token)


async def test_sends_are_rate_limited_per_user(make_api) -> None:
    api = await make_api(rc_message_per_second=SLOW, rc_message_burst=3)
    alice, bob = await api.register("alice"), await api.register("bob")
    status, room = await create_room(api, alice["access_token"])
    assert status == 200, room    # creating a room's events does not count as sends
    room_id = room["room_id"]
    assert (await api.call("POST", f"/_matrix/client/v3/join/{room_id}", {}, token=bob["access_token"]))[0] == 200
    sent = []
    for i in range(3):
        status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t{i}",
                                      {"msgtype": "m.text", "body": str(i)}, token=alice["access_token"])
        assert status == 200, body
        sent.append(body["event_id"])
    status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t3",
                                  {"msgtype": "m.text", "body": "3"}, token=alice["access_token"])
    assert_limited(status, body)
    # A retried transaction is not a new send: it still answers with its first event ID.
    status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t0",
                                  {"msgtype": "m.text", "body": "0"}, token=alice["access_token"])
    assert status == 200 and body["event_id"] == sent[0]
    # State events and redactions draw on the same allowance.
    status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/state/m.room.topic",
                                  {"topic": "x"}, token=alice["access_token"])
    assert_limited(status, body)
    status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/redact/{sent[0]}/r1", {},
                                  token=alice["access_token"])
    assert_limited(status, body)
    # The limit is per user: bob still sends.
    status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/b",
                                  {"msgtype": "m.text", "body": "b"}, token=bob["access_token"])
    assert status == 200, body


async def test_room_creation_is_rate_limited(make_api) -> None:
    api = await make_api(rc_room_creation_per_second=SLOW, rc_room_creation_burst=2)
    alice = await api.register("alice")
    for _ in range(2):
        assert (await create_room(api, alice["access_token"]))[0] == 200
    assert_limited(*await create_room(api, alice["access_token"]))


async def test_invites_are_rate_limited_per_sender_and_per_recipient(make_api) -> None:
    api = await make_api(rc_invites_per_second=SLOW, rc_invites_burst=2,
                         rc_invites_received_per_second=SLOW, rc_invites_received_burst=1)
    alice = await api.register("alice")
    users = [await api.register(f"u{i}") for i in range(3)]
    status, room = await create_room(api, alice["access_token"], preset="private_chat")
    room_id = room["room_id"]
    for user in users[:2]:
        status, body = await api.call("POST", f"/_matrix/client/v3/rooms/{room_id}/invite",
                                      {"user_id": user["user_id"]}, token=alice["access_token"])
        assert status == 200, body
    status, body = await api.call("POST", f"/_matrix/client/v3/rooms/{room_id}/invite",
                                  {"user_id": users[2]["user_id"]}, token=alice["access_token"])
    assert_limited(status, body)
    # A recipient is protected from invite spam whoever sends it, createRoom's invite list included.
    carol = await api.register("carol")
    assert_limited(*await create_room(api, carol["access_token"], preset="private_chat",
                                      invite=[users[0]["user_id"]]))


async def test_joins_are_rate_limited(make_api) -> None:
    api = await make_api(rc_joins_per_second=SLOW, rc_joins_burst=1)
    alice, bob = await api.register("alice"), await api.register("bob")
    rooms = [(await create_room(api, alice["access_token"]))[1]["room_id"] for _ in range(2)]
    status, body = await api.call("POST", f"/_matrix/client/v3/join/{rooms[0]}", {}, token=bob["access_token"])
    assert status == 200, body
    status, body = await api.call("POST", f"/_matrix/client/v3/join/{rooms[1]}", {}, token=bob["access_token"])
    assert_limited(status, body)
    # Joining a room one is already in (a profile refresh) is not a new join.
    status, body = await api.call("POST", f"/_matrix/client/v3/join/{rooms[0]}", {}, token=bob["access_token"])
    assert status == 200, body


async def test_rooms_per_user_are_capped(make_api) -> None:
    api = await make_api(max_rooms_per_user=2)
    alice, bob = await api.register("alice"), await api.register("bob")
    rooms = [(await create_room(api, alice["access_token"]))[1]["room_id"] for _ in range(2)]
    status, body = await create_room(api, alice["access_token"])
    assert status == 403 and body["errcode"] == "M_FORBIDDEN" and "too many rooms" in body["error"], body
    for room_id in rooms:
        assert (await api.call("POST", f"/_matrix/client/v3/join/{room_id}", {}, token=bob["access_token"]))[0] == 200
    status, body = await create_room(api, bob["access_token"])
    assert status == 403, body
    # Leaving one makes room for another.
    assert (await api.call("POST", f"/_matrix/client/v3/rooms/{rooms[0]}/leave", {}, token=alice["access_token"]))[0] == 200
    assert (await create_room(api, alice["access_token"]))[0] == 200


async def test_devices_per_user_are_capped(make_api) -> None:
    api = await make_api(max_devices_per_user=2)
    await api.register("alice", device_id="FIRST")

    async def login(**extra: Any) -> tuple[int, Any]:
        return await api.call("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw",
            **extra})

    assert (await login(device_id="SECOND"))[0] == 200
    status, body = await login()
    assert status == 403 and body["errcode"] == "M_FORBIDDEN" and "Too many devices" in body["error"], body
    # Logging in again as an existing device replaces its tokens and is allowed.
    status, body = await login(device_id="SECOND")
    assert status == 200, body
    assert (await api.call("POST", "/_matrix/client/v3/logout", {}, token=body["access_token"]))[0] == 200
    assert (await login())[0] == 200


async def test_media_uploads_are_rate_limited(make_api) -> None:
    api = await make_api(rc_media_upload_per_second=SLOW, rc_media_upload_burst=2)
    alice = await api.register("alice")
    for _ in range(2):
        status, body = await api.call("POST", "/_matrix/media/v3/upload", raw=b"x",
                                      headers={"Content-Type": "text/plain"}, token=alice["access_token"])
        assert status == 200, body
    status, body = await api.call("POST", "/_matrix/media/v3/upload", raw=b"x",
                                  headers={"Content-Type": "text/plain"}, token=alice["access_token"])
    assert_limited(status, body)
    assert_limited(*await api.call("POST", "/_matrix/media/v1/create", token=alice["access_token"]))


async def test_receipts_and_read_markers_are_rate_limited_per_user(make_api) -> None:
    api = await make_api(rc_receipts_per_second=SLOW, rc_receipts_burst=3)
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = (await create_room(api, alice["access_token"]))[1]["room_id"]
    assert (await api.call("POST", f"/_matrix/client/v3/join/{room_id}", {}, token=bob["access_token"]))[0] == 200
    status, sent = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t1",
                                  {"msgtype": "m.text", "body": "hi"}, token=alice["access_token"])
    assert status == 200, sent
    event_id = sent["event_id"]
    receipt = f"/_matrix/client/v3/rooms/{room_id}/receipt/m.read/{event_id}"
    markers = f"/_matrix/client/v3/rooms/{room_id}/read_markers"
    for _ in range(2):
        status, body = await api.call("POST", receipt, {}, token=bob["access_token"])
        assert status == 200, body
    status, body = await api.call("POST", markers, {"m.fully_read": event_id}, token=bob["access_token"])
    assert status == 200, body
    # Receipts and read markers draw on one allowance.
    assert_limited(*await api.call("POST", receipt, {}, token=bob["access_token"]))
    assert_limited(*await api.call("POST", markers, {"m.read": event_id}, token=bob["access_token"]))
    # The limit is per user: alice still posts hers.
    status, body = await api.call("POST", receipt, {}, token=alice["access_token"])
    assert status == 200, body


async def test_typing_is_rate_limited_per_user(make_api) -> None:
    api = await make_api(rc_typing_per_second=SLOW, rc_typing_burst=2)
    alice, bob = await api.register("alice"), await api.register("bob")
    room_id = (await create_room(api, alice["access_token"]))[1]["room_id"]
    assert (await api.call("POST", f"/_matrix/client/v3/join/{room_id}", {}, token=bob["access_token"]))[0] == 200
    typing = f"/_matrix/client/v3/rooms/{room_id}/typing/{bob['user_id']}"
    for value in (True, False):
        status, body = await api.call("PUT", typing, {"typing": value, "timeout": 30000}, token=bob["access_token"])
        assert status == 200, body
    assert_limited(*await api.call("PUT", typing, {"typing": True, "timeout": 30000}, token=bob["access_token"]))
    # The refused change was not made: nobody is typing in the room.
    status, body = await api.call("GET", "/_matrix/client/v3/sync", token=alice["access_token"])
    assert status == 200, body
    typing_events = [e for e in body["rooms"]["join"][room_id]["ephemeral"]["events"] if e["type"] == "m.typing"]
    assert all(e["content"]["user_ids"] == [] for e in typing_events), typing_events
    status, body = await api.call("PUT", f"/_matrix/client/v3/rooms/{room_id}/typing/{alice['user_id']}",
                                  {"typing": True, "timeout": 30000}, token=alice["access_token"])
    assert status == 200, body


async def test_registration_token_guesses_are_rate_limited_per_address(make_api) -> None:
    """Every token check (the validity endpoint, the UIA stage, its fallback page) spends from one
    allowance per address, kept apart from registrations themselves."""
    api = await make_api(rc_registration_per_second=SLOW, rc_registration_burst=4)
    status, body = await api.call("POST", "/_matrix/client/v3/register", {"username": "g", "password": "pw"})
    session = body["session"]

    async def by_validity(token: str) -> int:
        status, body = await api.call("GET", "/_matrix/client/v1/register/m.login.registration_token/validity",
                                      query={"token": token})
        assert status == 429 or body == {"valid": False}, body
        return status

    async def by_stage(token: str) -> int:
        status, body = await api.call("POST", "/_matrix/client/v3/register", {
            "username": "g", "password": "pw",
            "auth": {"type": "m.login.registration_token", "token": token, "session": session}})
        assert body["errcode"] == {401: "M_UNAUTHORIZED", 429: "M_LIMIT_EXCEEDED"}[status], body
        return status

    async def by_fallback_page(token: str) -> int:
        resp = await api.client.open("/_matrix/client/v3/auth/m.login.registration_token/fallback/web",
                                     method="POST", form={"session": session, "token": token})
        text = await resp.get_data(as_text=True)
        assert ("Too many attempts" if resp.status_code == 429 else "not valid") in text
        return resp.status_code

    assert [await by_validity("g1"), await by_stage("g2"), await by_fallback_page("g3"), await by_validity("g4")] \
        == [200, 401, 200, 200]
    # The allowance is spent: each way of checking a token is refused now.
    assert [await by_validity("g5"), await by_stage("g6"), await by_fallback_page("g7")] == [429, 429, 429]


async def test_filter_size_and_page_sizes_are_bounded(api: Api) -> None:
    alice = await api.register("alice")
    token, user = alice["access_token"], alice["user_id"]
    huge = {"room": {"rooms": ["!" + "r" * 100 + str(i) for i in range(1000)]}}
    status, body = await api.call("POST", f"/_matrix/client/v3/user/{user}/filter", huge, token=token)
    assert status == 413 and body["errcode"] == "M_TOO_LARGE", body
    status, body = await api.call("POST", f"/_matrix/client/v3/user/{user}/filter",
                                  {"room": {"timeline": {"limit": 10}}}, token=token)
    assert status == 200, body
    status, room = await create_room(api, token)
    for i in range(5):
        await api.call("PUT", f"/_matrix/client/v3/rooms/{room['room_id']}/send/m.room.message/{i}",
                       {"msgtype": "m.text", "body": str(i)}, token=token)
    # An absurd page size is capped (at 1000), not an error and not a full-table read.
    status, body = await api.call("GET", f"/_matrix/client/v3/rooms/{room['room_id']}/messages",
                                  query={"dir": "b", "limit": "100000000"}, token=token)
    assert status == 200 and 5 <= len(body["chunk"]) <= 1000, body
