"""Typing notifications over HTTP: start, stop, timeout, long-poll wake-up and refusals.

Spec: client-server-api, "Typing Notifications".
"""
from __future__ import annotations

import asyncio
import time

R = "/_matrix/client/v3/rooms"
SYNC = "/_matrix/client/v3/sync"
ALICE, BOB = "@alice:test.local", "@bob:test.local"


async def shared_room(api) -> tuple[str, str, str]:
    """alice and bob joined to one public room; returns (room, alice's token, bob's token)."""
    a = (await api.register("alice"))["access_token"]
    b = (await api.register("bob"))["access_token"]
    _, body = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=a)
    room = body["room_id"]
    status, _ = await api.call("POST", f"{R}/{room}/join", {}, token=b)
    assert status == 200
    return room, a, b


def typing_in(sync: dict, room: str) -> list[list[str]]:
    entry = sync.get("rooms", {}).get("join", {}).get(room, {})
    return [e["content"]["user_ids"] for e in entry.get("ephemeral", {}).get("events", []) if e["type"] == "m.typing"]


async def test_start_and_stop_seen_by_other_member(api) -> None:
    room, a, b = await shared_room(api)
    _, first = await api.call("GET", SYNC, token=b)
    assert typing_in(first, room) == []

    status, body = await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"typing": True, "timeout": 30000}, token=a)
    assert (status, body) == (200, {})
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=b)
    assert typing_in(incr, room) == [[ALICE]]
    # An initial sync shows the current typers too.
    _, initial = await api.call("GET", SYNC, token=b)
    assert typing_in(initial, room) == [[ALICE]]

    # Nothing new: the next incremental sync has no m.typing.
    _, quiet = await api.call("GET", SYNC, query={"since": incr["next_batch"]}, token=b)
    assert typing_in(quiet, room) == []

    await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"typing": False}, token=a)
    _, stopped = await api.call("GET", SYNC, query={"since": incr["next_batch"]}, token=b)
    assert typing_in(stopped, room) == [[]]


async def test_long_poll_woken_by_typing(api) -> None:
    room, a, b = await shared_room(api)
    _, first = await api.call("GET", SYNC, token=b)
    started = time.monotonic()
    poll = asyncio.create_task(api.call("GET", SYNC, query={"since": first["next_batch"], "timeout": "20000"},
                                        token=b))
    while not api.server.notifier.waiting(BOB):
        await asyncio.sleep(0)
    assert not poll.done()
    await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"typing": True, "timeout": 10000}, token=a)
    _, woke = await asyncio.wait_for(poll, 10)
    assert time.monotonic() - started < 5
    assert typing_in(woke, room) == [[ALICE]]


async def test_timeout_expires_and_wakes_waiters(api) -> None:
    room, a, b = await shared_room(api)
    _, first = await api.call("GET", SYNC, token=b)
    await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"typing": True, "timeout": 50}, token=a)
    _, typing = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=b)
    assert typing_in(typing, room) == [[ALICE]]
    # The expiry timer moves the typing stream and wakes bob's long-poll: no polling involved.
    _, expired = await asyncio.wait_for(
        api.call("GET", SYNC, query={"since": typing["next_batch"], "timeout": "10000"}, token=b), 10)
    assert typing_in(expired, room) == [[]]
    assert api.server.typing.typing_users(room) == []


async def test_timeout_is_capped(api) -> None:
    room, a, _ = await shared_room(api)
    await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"typing": True, "timeout": 10**12}, token=a)
    until, _ = api.server.typing._rooms[room].typers[ALICE]
    assert until - time.monotonic() <= 120.5


async def test_refusals(api) -> None:
    room, a, b = await shared_room(api)
    carol = (await api.register("carol"))["access_token"]
    status, err = await api.call("PUT", f"{R}/{room}/typing/{BOB}", {"typing": True}, token=a)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.call("PUT", f"{R}/{room}/typing/@carol:test.local", {"typing": True}, token=carol)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.call("PUT", f"{R}/!nowhere:test.local/typing/{ALICE}", {"typing": True}, token=a)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"typing": "yes"}, token=a)
    assert (status, err["errcode"]) == (400, "M_BAD_JSON")
    status, err = await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"timeout": 5}, token=a)
    assert (status, err["errcode"]) == (400, "M_MISSING_PARAM")
    status, err = await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"typing": True, "timeout": "x"}, token=a)
    assert (status, err["errcode"]) == (400, "M_BAD_JSON")
    status, err = await api.call("PUT", f"{R}/{room}/typing/{ALICE}", raw=b"nope", token=a)
    assert (status, err["errcode"]) == (400, "M_NOT_JSON")
    status, err = await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"typing": True})
    assert (status, err["errcode"]) == (401, "M_MISSING_TOKEN")


async def test_token_from_before_a_restart_gets_current_state(api) -> None:
    room, a, b = await shared_room(api)
    _, first = await api.call("GET", SYNC, token=b)
    parts = first["next_batch"].split("_")
    parts[5] = "999"            # a typing position ahead of the in-memory stream, as after a restart
    _, resync = await api.call("GET", SYNC, query={"since": "_".join(parts)}, token=b)
    assert typing_in(resync, room) == [[]]


async def test_leaver_and_filter(api) -> None:
    room, a, b = await shared_room(api)
    await api.call("PUT", f"{R}/{room}/typing/{BOB}", {"typing": True, "timeout": 30000}, token=b)
    await api.call("PUT", f"{R}/{room}/typing/{ALICE}", {"typing": True, "timeout": 30000}, token=a)
    _, initial = await api.call("GET", SYNC, token=a)
    assert typing_in(initial, room) == [[BOB, ALICE]]
    await api.call("POST", f"{R}/{room}/leave", {}, token=b)
    _, after = await api.call("GET", SYNC, token=a)
    assert typing_in(after, room) == [[ALICE]]
    no_typing = '{"room": {"ephemeral": {"not_types": ["m.typing"]}}}'
    _, filtered = await api.call("GET", SYNC, query={"filter": no_typing}, token=a)
    assert typing_in(filtered, room) == []
