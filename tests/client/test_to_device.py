"""Send-to-device messages over HTTP: delivery in /sync, acknowledgement, `*`, idempotency, paging.

Spec: client-server-api, "Send-to-Device messaging", "PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}".
"""
from __future__ import annotations

import asyncio
from typing import Any

SYNC = "/_matrix/client/v3/sync"
SEND = "/_matrix/client/v3/sendToDevice"


async def login(api, user: str) -> dict[str, Any]:
    status, body = await api.call("POST", "/_matrix/client/v3/login", {
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": "pw"})
    assert status == 200, body
    return body


async def sync(api, session: dict[str, Any], since: str | None = None) -> dict[str, Any]:
    status, body = await api.call("GET", SYNC, query={"since": since} if since else None,
                                  token=session["access_token"])
    assert status == 200, body
    return body


async def send(api, session: dict[str, Any], txn_id: str, messages: dict[str, Any],
               event_type: str = "m.test") -> tuple[int, Any]:
    return await api.call("PUT", f"{SEND}/{event_type}/{txn_id}", {"messages": messages},
                          token=session["access_token"])


async def test_delivered_until_acknowledged(api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    first = await sync(api, bob)
    assert first["to_device"] == {"events": []}
    status, body = await send(api, alice, "t1", {bob["user_id"]: {bob["device_id"]: {"n": 1}}})
    assert (status, body) == (200, {})
    got = await sync(api, bob, first["next_batch"])
    assert got["to_device"]["events"] == [{"sender": alice["user_id"], "type": "m.test", "content": {"n": 1}}]
    # Syncing again from the same token (a lost response) delivers it again...
    again = await sync(api, bob, first["next_batch"])
    assert again["to_device"]["events"] == got["to_device"]["events"]
    # ...and a sync from the newer token acknowledges it, so it is gone for good.
    after = await sync(api, bob, got["next_batch"])
    assert after["to_device"]["events"] == []
    assert (await sync(api, bob, first["next_batch"]))["to_device"]["events"] == []


async def test_star_reaches_every_device_and_retries_are_idempotent(api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    phone = await login(api, "bob")
    for _ in range(2):
        status, _ = await send(api, alice, "same-txn", {bob["user_id"]: {"*": {"hello": "all"}}})
        assert status == 200
    for session in (bob, phone):
        events = (await sync(api, session))["to_device"]["events"]
        assert events == [{"sender": alice["user_id"], "type": "m.test", "content": {"hello": "all"}}]
    # The transaction ID is per sending device: another device may reuse it.
    alice_laptop = await login(api, "alice")
    await send(api, alice_laptop, "same-txn", {bob["user_id"]: {phone["device_id"]: {"from": "laptop"}}})
    events = (await sync(api, phone))["to_device"]["events"]
    assert [e["content"] for e in events] == [{"hello": "all"}, {"from": "laptop"}]


async def test_at_most_100_per_sync(api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    for i in range(150):
        await send(api, alice, f"m{i}", {bob["user_id"]: {bob["device_id"]: {"i": i}}})
    first = await sync(api, bob)
    assert [e["content"]["i"] for e in first["to_device"]["events"]] == list(range(100))
    second = await sync(api, bob, first["next_batch"])
    assert [e["content"]["i"] for e in second["to_device"]["events"]] == list(range(100, 150))
    third = await sync(api, bob, second["next_batch"])
    assert third["to_device"]["events"] == []


async def test_long_poll_wakes_on_to_device(api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    first = await sync(api, bob)
    poll = asyncio.create_task(api.call("GET", SYNC, query={"since": first["next_batch"], "timeout": "20000"},
                                        token=bob["access_token"]))
    while not api.server.notifier.waiting(bob["user_id"]):
        await asyncio.sleep(0)
    await send(api, alice, "wake", {bob["user_id"]: {bob["device_id"]: {"wake": True}}})
    status, woke = await asyncio.wait_for(poll, 5)
    assert status == 200 and woke["to_device"]["events"][0]["content"] == {"wake": True}


async def test_refusals_and_ignored_targets(api) -> None:
    alice = await api.register("alice")
    bob = await api.register("bob")
    # Remote users (federation is off) and unknown devices are skipped, not errors.
    status, _ = await send(api, alice, "r1", {"@zoe:elsewhere.example": {"D": {}}, bob["user_id"]: {"NOPE": {}}})
    assert status == 200
    assert (await sync(api, bob))["to_device"]["events"] == []
    # A user ID of bad grammar is skipped too (as Synapse): the others still get theirs.
    status, _ = await send(api, alice, "r2", {"not-a-user": {"D": {}}, bob["user_id"]: {bob["device_id"]: {"n": 1}}})
    assert status == 200
    assert [e["content"] for e in (await sync(api, bob))["to_device"]["events"]] == [{"n": 1}]
    for bad in ({bob["user_id"]: []}, {bob["user_id"]: {bob["device_id"]: "text"}}):
        status, body = await send(api, alice, "bad", bad)
        assert status == 400 and body["errcode"] in ("M_BAD_JSON", "M_INVALID_PARAM"), (bad, body)
    status, body = await api.call("PUT", f"{SEND}/m.test/x", {}, token=alice["access_token"])
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.call("PUT", f"{SEND}/m.test/x", {"messages": {}})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await api.call("PUT", f"{SEND}/{'t' * 300}/x", {"messages": {}}, token=alice["access_token"])
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_deleted_device_loses_its_inbox(api) -> None:
    alice = await api.register("alice")
    await api.register("bob")
    phone = await login(api, "bob")
    await send(api, alice, "x", {phone["user_id"]: {phone["device_id"]: {"secret": 1}}})
    status, _ = await api.call("POST", "/_matrix/client/v3/logout", {}, token=phone["access_token"])
    assert status == 200
    rows = await api.server.db.fetchall("SELECT * FROM to_device_inbox WHERE device_id = ?", (phone["device_id"],))
    assert rows == []
