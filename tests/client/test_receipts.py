"""Receipts and read markers over HTTP: public, private and threaded receipts, m.fully_read, refusals.

Spec: client-server-api, "Receipts", "Fully read markers".
"""
from __future__ import annotations

import asyncio

from test_typing import ALICE, BOB, R, SYNC, shared_room


async def send(api, room: str, token: str, body: str, txn: str, relates: dict | None = None) -> str:
    content = {"msgtype": "m.text", "body": body, **({"m.relates_to": relates} if relates else {})}
    status, resp = await api.call("PUT", f"{R}/{room}/send/m.room.message/{txn}", content, token=token)
    assert status == 200, resp
    return resp["event_id"]


def receipts_in(sync: dict, room: str) -> dict:
    """The merged content of the room's m.receipt events."""
    merged: dict = {}
    entry = sync.get("rooms", {}).get("join", {}).get(room, {})
    for event in entry.get("ephemeral", {}).get("events", []):
        if event["type"] == "m.receipt":
            for event_id, by_type in event["content"].items():
                for receipt_type, users in by_type.items():
                    merged.setdefault(event_id, {}).setdefault(receipt_type, {}).update(users)
    return merged


async def test_read_receipt_seen_by_other_member(api) -> None:
    room, a, b = await shared_room(api)
    event = await send(api, room, a, "hello", "1")
    _, first = await api.call("GET", SYNC, token=a)

    status, body = await api.call("POST", f"{R}/{room}/receipt/m.read/{event}", {}, token=b)
    assert (status, body) == (200, {})
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=a)
    receipt = receipts_in(incr, room)[event]["m.read"][BOB]
    assert isinstance(receipt["ts"], int) and "thread_id" not in receipt
    # Initial sync has the latest receipt of each user.
    _, initial = await api.call("GET", SYNC, token=a)
    assert BOB in receipts_in(initial, room)[event]["m.read"]
    _, quiet = await api.call("GET", SYNC, query={"since": incr["next_batch"]}, token=a)
    assert receipts_in(quiet, room) == {}


async def test_long_poll_woken_by_receipt(api) -> None:
    room, a, b = await shared_room(api)
    event = await send(api, room, a, "hello", "1")
    _, first = await api.call("GET", SYNC, token=a)
    poll = asyncio.create_task(api.call("GET", SYNC, query={"since": first["next_batch"], "timeout": "20000"},
                                        token=a))
    while not api.server.notifier.waiting(ALICE):
        await asyncio.sleep(0)
    await api.call("POST", f"{R}/{room}/receipt/m.read/{event}", {}, token=b)
    _, woke = await asyncio.wait_for(poll, 10)
    assert BOB in receipts_in(woke, room)[event]["m.read"]


async def test_private_receipt_only_to_its_owner(api) -> None:
    room, a, b = await shared_room(api)
    event = await send(api, room, a, "hello", "1")
    _, first_a = await api.call("GET", SYNC, token=a)
    _, first_b = await api.call("GET", SYNC, token=b)
    status, _ = await api.call("POST", f"{R}/{room}/receipt/m.read.private/{event}", {}, token=b)
    assert status == 200
    _, mine = await api.call("GET", SYNC, query={"since": first_b["next_batch"]}, token=b)
    assert BOB in receipts_in(mine, room)[event]["m.read.private"]
    # A private receipt clears notifications just like a public one.
    _, counts = await api.call("GET", SYNC, token=b)
    assert counts["rooms"]["join"][room]["unread_notifications"]["notification_count"] == 0
    _, theirs = await api.call("GET", SYNC, query={"since": first_a["next_batch"]}, token=a)
    assert receipts_in(theirs, room) == {}
    _, initial = await api.call("GET", SYNC, token=a)
    assert "m.read.private" not in receipts_in(initial, room).get(event, {})


async def test_receipts_never_move_backwards(api) -> None:
    room, a, b = await shared_room(api)
    older = await send(api, room, a, "one", "1")
    newer = await send(api, room, a, "two", "2")
    await api.call("POST", f"{R}/{room}/receipt/m.read/{newer}", {}, token=b)
    _, first = await api.call("GET", SYNC, token=a)
    status, _ = await api.call("POST", f"{R}/{room}/receipt/m.read/{older}", {}, token=b)
    assert status == 200
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=a)
    assert receipts_in(incr, room) == {}
    _, initial = await api.call("GET", SYNC, token=a)
    got = receipts_in(initial, room)
    assert BOB in got[newer]["m.read"] and older not in got


async def test_fully_read_lands_in_room_account_data(api) -> None:
    room, a, b = await shared_room(api)
    older = await send(api, room, a, "one", "1")
    newer = await send(api, room, a, "two", "2")
    _, first = await api.call("GET", SYNC, token=b)
    status, _ = await api.call("POST", f"{R}/{room}/receipt/m.fully_read/{newer}", {}, token=b)
    assert status == 200
    path = f"/_matrix/client/v3/user/{BOB}/rooms/{room}/account_data/m.fully_read"
    assert await api.call("GET", path, token=b) == (200, {"event_id": newer})
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=b)
    assert {"type": "m.fully_read", "content": {"event_id": newer}} in \
        incr["rooms"]["join"][room]["account_data"]["events"]
    assert "m.fully_read" not in str(receipts_in(incr, room))
    await api.call("POST", f"{R}/{room}/receipt/m.fully_read/{older}", {}, token=b)      # not backwards
    assert await api.call("GET", path, token=b) == (200, {"event_id": newer})
    status, err = await api.call("POST", f"{R}/{room}/receipt/m.fully_read/{newer}", {"thread_id": "main"}, token=b)
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")


async def test_threaded_receipts(api) -> None:
    room, a, b = await shared_room(api)
    root = await send(api, room, a, "root", "1")
    in_thread = await send(api, room, a, "reply", "2", {"rel_type": "m.thread", "event_id": root})
    main = await send(api, room, a, "main", "3")
    _, first = await api.call("GET", SYNC, token=a)
    assert (await api.call("POST", f"{R}/{room}/receipt/m.read/{in_thread}", {"thread_id": root}, token=b))[0] == 200
    assert (await api.call("POST", f"{R}/{room}/receipt/m.read/{main}", {"thread_id": "main"}, token=b))[0] == 200
    assert (await api.call("POST", f"{R}/{room}/receipt/m.read/{main}", {}, token=b))[0] == 200
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=a)
    got = receipts_in(incr, room)
    assert got[in_thread]["m.read"][BOB]["thread_id"] == root
    # The main-timeline and the unthreaded receipt are separate entries of the same event and user;
    # merged per event, the later one (unthreaded) is what is listed.
    assert BOB in got[main]["m.read"]

    for body, event in (({"thread_id": ""}, main), ({"thread_id": 5}, main), ({"thread_id": root}, main),
                        ({"thread_id": "main"}, in_thread), ({"thread_id": "not-an-event"}, main)):
        status, err = await api.call("POST", f"{R}/{room}/receipt/m.read/{event}", body, token=b)
        assert (status, err["errcode"]) == (400, "M_INVALID_PARAM"), body


async def test_read_markers(api) -> None:
    room, a, b = await shared_room(api)
    event = await send(api, room, a, "one", "1")
    _, first = await api.call("GET", SYNC, token=a)
    status, body = await api.call("POST", f"{R}/{room}/read_markers",
                                  {"m.fully_read": event, "m.read": event, "m.read.private": event}, token=b)
    assert (status, body) == (200, {})
    path = f"/_matrix/client/v3/user/{BOB}/rooms/{room}/account_data/m.fully_read"
    assert await api.call("GET", path, token=b) == (200, {"event_id": event})
    _, incr = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=a)
    assert receipts_in(incr, room) == {event: {"m.read": {BOB: receipts_in(incr, room)[event]["m.read"][BOB]}}}
    status, err = await api.call("POST", f"{R}/{room}/read_markers", {"m.read": 7}, token=b)
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
    status, err = await api.call("POST", f"{R}/{room}/read_markers", {"m.read": "$unknown"}, token=b)
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")


async def test_refusals(api) -> None:
    room, a, b = await shared_room(api)
    event = await send(api, room, a, "one", "1")
    carol = (await api.register("carol"))["access_token"]
    status, err = await api.call("POST", f"{R}/{room}/receipt/m.read/{event}", {}, token=carol)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.call("POST", f"{R}/{room}/read_markers", {"m.read": event}, token=carol)
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    status, err = await api.call("POST", f"{R}/{room}/receipt/m.read/$nope", {}, token=b)
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    status, err = await api.call("POST", f"{R}/{room}/receipt/m.read/nope", {}, token=b)
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    _, other = await api.call("POST", "/_matrix/client/v3/createRoom", {}, token=a)
    foreign = await send(api, other["room_id"], a, "elsewhere", "2")
    status, err = await api.call("POST", f"{R}/{room}/receipt/m.read/{foreign}", {}, token=b)
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    status, err = await api.call("POST", f"{R}/{room}/receipt/m.bogus/{event}", {}, token=b)
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
    status, err = await api.call("POST", f"{R}/{room}/receipt/m.read/{event}", raw=b"[1]", token=b)
    assert (status, err["errcode"]) == (400, "M_BAD_JSON")
    # No body at all is accepted, as Synapse does.
    status, _ = await api.call("POST", f"{R}/{room}/receipt/m.read/{event}", token=b)
    assert status == 200


async def test_a_receipt_looks_its_event_up_without_a_reader_trip(api, monkeypatch) -> None:
    """Read receipts are the most frequent write of a conversation: the event they point at (and
    its thread) is a look-up by unique ID on the event loop's thread, not a wait for a reader."""
    from tests.sync.test_sync_reads import count_reads
    alice, bob = await api.register("alice"), await api.register("bob")
    room = await api.create_room(alice["access_token"], preset="public_chat")
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=bob["access_token"]))[0] == 200
    _, root = await api.call("PUT", f"{R}/{room}/send/m.room.message/1", {"msgtype": "m.text", "body": "soup?"},
                             token=alice["access_token"])
    _, reply = await api.call("PUT", f"{R}/{room}/send/m.room.message/2", {
        "msgtype": "m.text", "body": "leek", "m.relates_to": {"rel_type": "m.thread", "event_id": root["event_id"]}},
        token=alice["access_token"])
    reads = count_reads(api, monkeypatch)
    status, body = await api.call("POST", f"{R}/{room}/receipt/m.read/{reply['event_id']}",
                                  {"thread_id": root["event_id"]}, token=bob["access_token"])
    assert status == 200, body
    status, body = await api.call("POST", f"{R}/{room}/read_markers",
                                  {"m.fully_read": root["event_id"], "m.read": root["event_id"]},
                                  token=bob["access_token"])
    assert status == 200, body
    assert reads == []
