"""matrix-js-sdk (Node) and matrix-nio side by side on a real server: each sees the other.

Spec: client-server-api, "Syncing", "Room membership", "Events on Change of Profile Information".
"""
from __future__ import annotations

import asyncio

from nio import AsyncClient, LoginResponse, RoomMessageText

from tests.js_client import JsClient


async def test_js_sdk_and_nio_see_each_other(homeserver, http) -> None:
    await homeserver.register_shared_secret(http, "js-alice", "js-alice-pw")
    await homeserver.register_shared_secret(http, "nio-bob", "nio-bob-pw")
    js = await JsClient.start()
    bob = AsyncClient(homeserver.base_url, "nio-bob")
    try:
        login = await js.call("login", baseUrl=homeserver.base_url, user="js-alice", password="js-alice-pw")
        assert login["user_id"] == "@js-alice:test.local"
        assert isinstance(await bob.login("nio-bob-pw"), LoginResponse)
        await bob.sync(timeout=0)

        room_id = (await js.call("createRoom", name="Both SDKs", invite=["@nio-bob:test.local"]))["room_id"]
        sync = await bob.sync(timeout=10_000, since=bob.next_batch)
        assert room_id in sync.rooms.invite
        await bob.join(room_id)
        await js.wait_for(lambda e: e["event"] == "timeline" and e["type"] == "m.room.member"
                          and e["sender"] == "@nio-bob:test.local")

        # js-sdk -> nio
        await js.call("send", roomId=room_id, body="from js")
        bodies: list[str] = []
        for _ in range(5):
            sync = await bob.sync(timeout=10_000, since=bob.next_batch)
            room = sync.rooms.join.get(room_id)
            bodies += [e.body for e in (room.timeline.events if room else []) if isinstance(e, RoomMessageText)]
            if "from js" in bodies:
                break
        assert "from js" in bodies

        # nio -> js-sdk (delivered through the SDK's own long-polling sync loop)
        await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "from nio"})
        seen = await js.wait_for(lambda e: e["event"] == "timeline" and e.get("body") == "from nio")
        assert seen["sender"] == "@nio-bob:test.local"

        # A display name change made with nio reaches the js-sdk's member list.
        await bob.set_displayname("Bob the Builder")
        await js.wait_for(lambda e: e["event"] == "member_name" and e["user_id"] == "@nio-bob:test.local"
                          and e["name"] == "Bob the Builder")
        members = dict((await js.call("members", roomId=room_id))["joined"])
        assert members["@nio-bob:test.local"] == "Bob the Builder"
    finally:
        await js.close()
        await bob.close()


async def test_typing_receipts_and_unread_counts_across_sdks(homeserver, http) -> None:
    from nio import ReceiptEvent, RoomMessageText

    await homeserver.register_shared_secret(http, "js-carol", "js-carol-pw")
    await homeserver.register_shared_secret(http, "nio-dave", "nio-dave-pw")
    js = await JsClient.start()
    dave = AsyncClient(homeserver.base_url, "nio-dave")
    try:
        await js.call("login", baseUrl=homeserver.base_url, user="js-carol", password="js-carol-pw")
        assert isinstance(await dave.login("nio-dave-pw"), LoginResponse)
        room_id = (await js.call("createRoom", name="Counts", invite=["@nio-dave:test.local"]))["room_id"]
        await dave.sync(timeout=0)
        await dave.join(room_id)
        await js.wait_for(lambda e: e["event"] == "timeline" and e["type"] == "m.room.member"
                          and e["sender"] == "@nio-dave:test.local")

        # nio types; the js-sdk sees it.
        await dave.room_typing(room_id, True, timeout=30_000)
        await js.wait_for(lambda e: e["event"] == "typing" and e["user_id"] == "@nio-dave:test.local" and e["typing"])

        # nio sends a message: the js-sdk user has one unread notification.
        sent = await dave.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "are you there?"})
        await js.wait_for(lambda e: e["event"] == "timeline" and e.get("body") == "are you there?")
        counts = await js.call("unread", roomId=room_id)
        assert counts["total"] == 1 and counts["highlight"] == 0, counts

        # The js-sdk reads it: its count goes back to 0 and nio sees the read receipt.
        await dave.sync(timeout=0, since=dave.next_batch)
        await js.call("readReceipt", roomId=room_id, eventId=sent.event_id)
        await js.wait_for(lambda e: e["event"] == "receipt" and sent.event_id in e["content"]
                          and "@js-carol:test.local" in str(e["content"]))
        # The SDK applies the server's counts from the sync that carries the receipt.
        for _ in range(20):
            counts = await js.call("unread", roomId=room_id)
            if counts["total"] == 0:
                break
            await asyncio.sleep(0.1)   # the SDK updates its counts asynchronously; poll it briefly
        assert counts["total"] == 0, counts
        seen_receipt = False
        for _ in range(5):
            sync = await dave.sync(timeout=10_000, since=dave.next_batch)
            room = sync.rooms.join.get(room_id)
            for event in room.ephemeral if room else []:
                if isinstance(event, ReceiptEvent) and any(
                        r.event_id == sent.event_id and r.user_id == "@js-carol:test.local" for r in event.receipts):
                    seen_receipt = True
            if seen_receipt:
                break
        assert seen_receipt
        assert not isinstance(sent, RoomMessageText)
    finally:
        await js.close()
        await dave.close()


async def test_relations_through_the_js_sdk(homeserver, http) -> None:
    """Edits and thread replies sent with nio are listed by the js-sdk's relations API."""
    await homeserver.register_shared_secret(http, "js-erin", "js-erin-pw")
    await homeserver.register_shared_secret(http, "nio-fred", "nio-fred-pw")
    js = await JsClient.start()
    fred = AsyncClient(homeserver.base_url, "nio-fred")
    try:
        await js.call("login", baseUrl=homeserver.base_url, user="js-erin", password="js-erin-pw")
        assert isinstance(await fred.login("nio-fred-pw"), LoginResponse)
        room_id = (await js.call("createRoom", name="Threads", invite=["@nio-fred:test.local"]))["room_id"]
        await fred.sync(timeout=0)
        await fred.join(room_id)
        root = await fred.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "root"})
        edit = await fred.room_send(room_id, "m.room.message", {
            "msgtype": "m.text", "body": "* root!", "m.new_content": {"msgtype": "m.text", "body": "root!"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": root.event_id}})
        reply = await fred.room_send(room_id, "m.room.message", {
            "msgtype": "m.text", "body": "in thread",
            "m.relates_to": {"rel_type": "m.thread", "event_id": root.event_id}})
        related = (await js.call("relations", roomId=room_id, eventId=root.event_id))["events"]
        assert {(e["event_id"], e["rel_type"]) for e in related} == {(edit.event_id, "m.replace"),
                                                                      (reply.event_id, "m.thread")}
        threads = (await js.call("relations", roomId=room_id, eventId=root.event_id, relType="m.thread"))["events"]
        assert [e["event_id"] for e in threads] == [reply.event_id]
    finally:
        await js.close()
        await fred.close()
