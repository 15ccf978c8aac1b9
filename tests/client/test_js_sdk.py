"""matrix-js-sdk (Node) and matrix-nio side by side on a real server: each sees the other.

Spec: client-server-api, "Syncing", "Room membership", "Events on Change of Profile Information".
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from nio import AsyncClient, LoginResponse, RoomInviteResponse, RoomKickResponse, RoomMessageText

from tests.js_client import JsClient


@contextlib.asynccontextmanager
async def js_and_nio(homeserver, http, js_user: str, nio_user: str,
                     **login: Any) -> AsyncIterator[tuple[JsClient, AsyncClient]]:
    """A logged-in js-sdk client (`login`: more options of its login command) and a logged-in nio
    client, each a fresh user; closed afterwards."""
    await homeserver.register_shared_secret(http, js_user, js_user + "-pw")
    await homeserver.register_shared_secret(http, nio_user, nio_user + "-pw")
    js = await JsClient.start()
    nio = AsyncClient(homeserver.base_url, nio_user)
    try:
        logged_in = await js.call("login", baseUrl=homeserver.base_url, user=js_user, password=js_user + "-pw",
                                  **login)
        assert logged_in["user_id"] == f"@{js_user}:test.local"
        assert isinstance(await nio.login(nio_user + "-pw"), LoginResponse)
        yield js, nio
    finally:
        await js.close()
        await nio.close()


async def js_room_with(js: JsClient, nio: AsyncClient, name: str) -> str:
    """The js-sdk user creates a room and invites the nio user, who joins; the js-sdk sees the join."""
    await nio.sync(timeout=0)
    room_id = (await js.call("createRoom", name=name, invite=[nio.user_id]))["room_id"]
    sync = await nio.sync(timeout=10_000, since=nio.next_batch)
    assert room_id in sync.rooms.invite
    await nio.join(room_id)
    await js.wait_for(lambda e: e["event"] == "timeline" and e["type"] == "m.room.member" and e["sender"] == nio.user_id)
    return room_id


async def test_js_sdk_and_nio_see_each_other(homeserver, http) -> None:
    async with js_and_nio(homeserver, http, "js-alice", "nio-bob") as (js, bob):
        room_id = await js_room_with(js, bob, "Both SDKs")

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


async def test_typing_receipts_and_unread_counts_across_sdks(homeserver, http) -> None:
    from nio import ReceiptEvent, RoomMessageText

    async with js_and_nio(homeserver, http, "js-carol", "nio-dave") as (js, dave):
        room_id = await js_room_with(js, dave, "Counts")

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


async def test_relations_through_the_js_sdk(homeserver, http) -> None:
    """Edits and thread replies sent with nio are listed by the js-sdk's relations API."""
    async with js_and_nio(homeserver, http, "js-erin", "nio-fred") as (js, fred):
        room_id = await js_room_with(js, fred, "Threads")
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


async def test_threads_as_element_web_shows_them(homeserver, http) -> None:
    """With thread support on, as Element Web runs it: nio's thread replies land in the js-sdk's
    thread (not the main timeline) with a per-thread unread count; the js-sdk replies in the thread;
    a new session lists the thread through the thread list API (all threads, and the ones the user
    took part in), with its reply count and latest reply from the bundled aggregation.
    Spec: client-server-api, "Threading", "Threaded read receipts", "GET /rooms/{roomId}/threads"."""
    async with js_and_nio(homeserver, http, "js-trip", "nio-trip", threadSupport=True) as (js, bob):
        room_id = await js_room_with(js, bob, "Trip")
        root = (await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "where to?"})).event_id
        for body in ("the coast", "the hills"):
            sent = await bob.room_send(room_id, "m.room.message", {
                "msgtype": "m.text", "body": body,
                "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                                 "m.in_reply_to": {"event_id": root}}})
            assert getattr(sent, "event_id", None), sent

        async def threads(client: JsClient, latest: str, length: int | None, unread: int, **args: Any) -> dict[str, Any]:
            """The js-sdk's view of the room's threads, once its thread shows `latest`, `length`
            replies (any, if None) and `unread` (the SDK takes each from a different part of a sync)."""
            for _ in range(100):
                seen = await client.call("threads", roomId=room_id, **args)
                if seen["threads"] and (seen["threads"][0]["latest"], seen["threads"][0]["unread"]) == (latest, unread) \
                        and length in (None, seen["threads"][0]["length"]):
                    return seen
                await asyncio.sleep(0.1)
            raise AssertionError(f"the thread never showed {latest!r} as reply {length} with {unread} unread: {seen}")

        seen = await threads(js, "the hills", 2, 2)
        assert seen["threads"] == [{"id": root, "length": 2, "latest": "the hills", "unread": 2}]
        assert seen["main"] == ["where to?"]       # the replies are in the thread, not the main timeline

        # Replying in the thread reads it: the thread's count goes to zero, and nio sees a thread reply.
        # (The sending session's own reply count is not checked: the SDK fetches the root again when
        # its local echo appears and sets the count from that answer even when it comes back after
        # the reply's own sync, which a server that answers the sync within milliseconds makes
        # possible; the new session below reads the count the server computes.)
        reply = (await js.call("sendThreaded", roomId=room_id, threadId=root, body="the coast!"))["event_id"]
        await threads(js, "the coast!", None, 0)
        got = await bob.sync(timeout=0)
        replies = [e for e in got.rooms.join[room_id].timeline.events if e.event_id == reply]
        assert replies and replies[0].source["content"]["m.relates_to"]["rel_type"] == "m.thread"
        assert replies[0].source["content"]["m.relates_to"]["event_id"] == root

        # A new session of the same user, as Element after signing in: the thread list API.
        again = await JsClient.start()
        try:
            await again.call("login", baseUrl=homeserver.base_url, user="js-trip", password="js-trip-pw",
                             threadSupport=True)
            seen = await threads(again, "the coast!", 3, 0, fetch=True)
            assert seen["all"] == [root] and seen["mine"] == [root]
            assert [t["id"] for t in seen["threads"]] == [root]
        finally:
            await again.close()


async def test_the_js_sdk_takes_room_state_from_state_after(homeserver, http) -> None:
    """js-sdk asks every /sync for MSC4222's state_after and, when it comes, takes room state from
    it alone, not from the timeline: renames and topics must be in it, on joining and after."""
    async with js_and_nio(homeserver, http, "js-after", "nio-after") as (js, bob):
        room_id = (await bob.room_create(name="Before", invite=["@js-after:test.local"])).room_id
        await js.call("join", roomId=room_id)
        assert (await js.call("roomState", roomId=room_id))["name"] == "Before"

        await bob.room_put_state(room_id, "m.room.name", {"name": "After"})
        await bob.room_put_state(room_id, "m.room.topic", {"topic": "set later"})
        last = None
        for i in range(3):
            last = (await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": f"m{i}"})).event_id
        await js.wait_for(lambda e: e["event"] == "timeline" and e.get("event_id") == last)
        state = await js.call("roomState", roomId=room_id)
        assert (state["name"], state["topic"], state["timelineEnd"]) == ("After", "set later", last)


async def test_the_js_sdk_reads_the_membership_at_each_event(homeserver, http) -> None:
    """matrix-js-sdk's getMembershipAtEvent (MSC4115, spec v1.11 `unsigned.membership`): what Element
    reads to say an undecryptable message was sent before the user joined."""
    async with js_and_nio(homeserver, http, "js-msc4115", "nio-msc4115") as (js, bob):
        room_id = (await bob.room_create(name="Earlier")).room_id
        before = (await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "before"})).event_id
        await bob.room_invite(room_id, "@js-msc4115:test.local")
        await js.call("join", roomId=room_id)
        seen = await js.wait_for(lambda e: e["event"] == "timeline" and e.get("event_id") == before)
        assert seen["membership"] == "leave"
        after = (await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "after"})).event_id
        seen = await js.wait_for(lambda e: e["event"] == "timeline" and e.get("event_id") == after)
        assert seen["membership"] == "join"


async def poll(js: JsClient, cmd: str, predicate, **args: Any) -> dict[str, Any]:
    """Repeat a driver command until its reply matches `predicate` (the SDK learns from /sync)."""
    for _ in range(100):
        reply = await js.call(cmd, **args)
        if predicate(reply):
            return reply
        await asyncio.sleep(0.1)
    raise AssertionError(f"{cmd} never matched: {reply}")


async def test_spaces_as_element_builds_them(homeserver, http) -> None:
    """Element's space panel: a space (a room of type m.space) with a child room; the js-sdk learns
    the space's type from /sync and walks it with the hierarchy API.
    Spec: client-server-api, "Spaces", "GET /_matrix/client/v1/rooms/{roomId}/hierarchy"."""
    async with js_and_nio(homeserver, http, "js-space", "nio-space") as (js, _):
        space = (await js.call("createSpace", name="Family"))["room_id"]
        room = (await js.call("createRoom", name="Holidays"))["room_id"]
        await js.call("addChild", spaceId=space, roomId=room, via=["test.local"])
        await poll(js, "roomType", lambda r: r["type"] == "m.space", roomId=space)
        assert (await js.call("roomType", roomId=room))["type"] is None
        rooms = (await js.call("hierarchy", roomId=space))["rooms"]
        assert rooms == [{"room_id": space, "name": "Family", "room_type": "m.space", "children": [room]},
                         {"room_id": room, "name": "Holidays", "room_type": None, "children": []}]


async def test_a_room_upgrade_as_element_follows_it(homeserver, http) -> None:
    """The js-sdk upgrades an invite-only room and invites its member to the replacement (as Element
    does when asked to; the server, as Synapse, copies pending invites only); nio sees the tombstone
    and joins; the js-sdk links the two rooms (Element's "this room is a continuation" link) from
    the tombstone and the new room's create event. Spec: client-server-api, "Room Upgrades"."""
    async with js_and_nio(homeserver, http, "js-upg", "nio-upg") as (js, bob):
        old = await js_room_with(js, bob, "Before")
        new = (await js.call("upgradeRoom", roomId=old, version="12"))["replacement_room"]
        assert new != old
        await poll(js, "upgradeHistory", lambda r: r["rooms"] == [old, new], roomId=new)
        assert (await js.call("upgradeHistory", roomId=old))["rooms"] == [old, new]
        tombstones = []
        for _ in range(20):
            got = await bob.sync(timeout=1000, since=bob.next_batch)
            room = got.rooms.join.get(old)
            tombstones += [e for e in (room.timeline.events if room else []) if e.source["type"] == "m.room.tombstone"]
            if tombstones:
                break
        assert tombstones and tombstones[0].source["content"]["replacement_room"] == new
        refused = await bob.join(new)
        assert getattr(refused, "status_code", None) == "M_FORBIDDEN", refused
        await js.call("invite", roomId=new, userId=bob.user_id)
        assert getattr(await bob.join(new), "room_id", None) == new
        await js.wait_for(lambda e: e["event"] == "timeline" and e["room_id"] == new and e["type"] == "m.room.member"
                          and e["sender"] == bob.user_id)


async def test_a_poll_as_element_tallies_it(homeserver, http) -> None:
    """Element's polls (MSC3381): the js-sdk starts one, nio and the js-sdk vote (responses refer to
    the poll with m.reference), the js-sdk's Poll model fetches the votes through /relations and
    ends the poll; a vote after the end does not count. Spec: client-server-api, "Reference
    relations", "GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}"."""
    async with js_and_nio(homeserver, http, "js-poll", "nio-poll") as (js, bob):
        room_id = await js_room_with(js, bob, "Dinner")
        poll = (await js.call("startPoll", roomId=room_id, question="Pizza tonight?", answers=["yes", "no"]))["event_id"]
        start = None
        for _ in range(20):
            got = await bob.sync(timeout=1000, since=bob.next_batch)
            room = got.rooms.join.get(room_id)
            start = next((e for e in (room.timeline.events if room else []) if e.event_id == poll), start)
            if start is not None:
                break
        assert start is not None
        answers = {a["org.matrix.msc1767.text"]: a["id"]
                   for a in start.source["content"]["org.matrix.msc3381.poll.start"]["answers"]}
        vote = {"org.matrix.msc3381.poll.response": {"answers": [answers["yes"]]},
                "m.relates_to": {"rel_type": "m.reference", "event_id": poll}}
        sent = await bob.room_send(room_id, "org.matrix.msc3381.poll.response", vote)
        assert getattr(sent, "event_id", None), sent
        await js.call("votePoll", roomId=room_id, pollId=poll, answerIds=[answers["no"]])
        results = await poll_results(js, room_id, poll, lambda r: len(r["votes"]) == 2)
        assert results["question"] == "Pizza tonight?" and results["ended"] is False
        assert results["votes"] == sorted([["@js-poll:test.local", ["no"]], [bob.user_id, ["yes"]]])

        await js.call("endPoll", roomId=room_id, pollId=poll)
        await poll_results(js, room_id, poll, lambda r: r["ended"])
        late = await bob.room_send(room_id, "org.matrix.msc3381.poll.response",
                                   {**vote, "org.matrix.msc3381.poll.response": {"answers": [answers["no"]]}})
        assert getattr(late, "event_id", None), late
        # A new session tallies from /relations alone: the late vote does not count.
        again = await JsClient.start()
        try:
            await again.call("login", baseUrl=homeserver.base_url, user="js-poll", password="js-poll-pw")
            results = await poll_results(again, room_id, poll, lambda r: r["ended"])
            assert results["votes"] == sorted([["@js-poll:test.local", ["no"]], [bob.user_id, ["yes"]]])
        finally:
            await again.close()


async def poll_results(js: JsClient, room_id: str, poll_id: str, predicate) -> dict[str, Any]:
    """The js-sdk's tally of a poll, once it matches `predicate`."""
    return await poll(js, "pollResults", lambda r: r["found"] and predicate(r), roomId=room_id, pollId=poll_id)


async def test_room_notification_settings_as_element_sets_them(homeserver, http) -> None:
    """Element's per-room notification settings are push rules: "Mentions & keywords" a room rule
    that does not notify, "Mute" an override rule on the room ID. A mention still counts in the
    first room (a higher rule); nothing counts in the muted one.
    Spec: client-server-api, "Push Rules" (kinds and their order), "Receiving notifications"."""
    async with js_and_nio(homeserver, http, "js-quiet", "nio-quiet") as (js, bob):
        mentions_only = await js_room_with(js, bob, "Mentions only")
        muted = await js_room_with(js, bob, "Muted")
        await js.call("addPushRule", kind="room", ruleId=mentions_only, body={"actions": []})
        await js.call("addPushRule", kind="override", ruleId=muted, body={
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": muted}], "actions": []})
        me = "@js-quiet:test.local"
        last = {}
        for room_id in (mentions_only, muted):
            await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hello all"})
            sent = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "js-quiet: and you",
                                                                   "m.mentions": {"user_ids": [me]}})
            last[room_id] = sent.event_id
        for room_id in (mentions_only, muted):
            await js.wait_for(lambda e: e["event"] == "timeline" and e["event_id"] == last[room_id])
        counts = await poll(js, "unread", lambda r: r["total"] == 1, roomId=mentions_only)
        assert (counts["total"], counts["highlight"]) == (1, 1)
        counts = await js.call("unread", roomId=muted)
        assert (counts["total"], counts["highlight"]) == (0, 0)


async def test_asking_to_join_as_element_does(homeserver, http) -> None:
    """Element's "Ask to join" on a knock room: the js-sdk knocks with a reason and holds the room
    as knocked (the /sync `knock` section); the room's admin (nio) sees the knock and approves it
    with an invite; the js-sdk joins. A second knock, denied with a kick, leaves the room as left.
    Spec: client-server-api, "Knocking on rooms", "POST /_matrix/client/v3/knock/{roomIdOrAlias}"."""
    async with js_and_nio(homeserver, http, "js-knock", "nio-admin") as (js, admin):
        created = await admin.room_create(name="Book club", initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}])
        room_id = created.room_id
        me = "@js-knock:test.local"
        await admin.sync(timeout=0)

        async def admin_sees(membership: str) -> dict[str, Any]:
            for _ in range(20):
                got = await admin.sync(timeout=1000, since=admin.next_batch)
                room = got.rooms.join.get(room_id)
                for e in (room.timeline.events if room else []):
                    if e.source["type"] == "m.room.member" and e.source.get("state_key") == me \
                            and e.source["content"].get("membership") == membership:
                        return e.source
            raise AssertionError(f"the admin never saw {me} {membership}")

        await js.call("knock", roomId=room_id, reason="I read a lot")
        await poll(js, "myMembership", lambda r: r["membership"] == "knock", roomId=room_id)
        knock = await admin_sees("knock")
        assert knock["content"]["reason"] == "I read a lot" and knock["sender"] == me
        invited = await admin.room_invite(room_id, me)
        assert isinstance(invited, RoomInviteResponse), invited
        await poll(js, "myMembership", lambda r: r["membership"] == "invite", roomId=room_id)
        await js.call("join", roomId=room_id)
        await admin_sees("join")

        # Leave, knock again, and be turned away.
        await js.call("leave", roomId=room_id)
        await admin_sees("leave")
        await js.call("knock", roomId=room_id, reason="again?")
        await admin_sees("knock")
        kicked = await admin.room_kick(room_id, me, reason="full")
        assert isinstance(kicked, RoomKickResponse), kicked
        await poll(js, "myMembership", lambda r: r["membership"] == "leave", roomId=room_id)



async def test_settings_as_element_uses_them(homeserver, http) -> None:
    """Element's settings through the js-sdk: the sessions list, renaming another session and
    signing it out (UIA with the password), changing the password with the old one sent as the
    first request's auth (how Element's dialog sends it) and signing out every other session,
    and server-side message search. Spec: client-server-api, "Device Management",
    "User-Interactive Authentication API", "POST /account/password", "Server Side Search"."""
    async with js_and_nio(homeserver, http, "js-settings", "nio-settings") as (js, bob):
        room_id = await js_room_with(js, bob, "Notes")
        await js.call("send", roomId=room_id, body="the quick brown fox")
        await js.call("send", roomId=room_id, body="a lazy dog")
        found = await js.call("search", term="brown")
        assert found["bodies"] == ["the quick brown fox"] and "brown" in found["highlights"], found

        async def login(password: str) -> tuple[int, dict[str, Any]]:
            async with http.post(f"{homeserver.base_url}/_matrix/client/v3/login", json={
                    "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "js-settings"},
                    "password": password}) as resp:
                return resp.status, await resp.json()

        async def whoami(token: str) -> int:
            async with http.get(f"{homeserver.base_url}/_matrix/client/v3/account/whoami",
                                headers={"Authorization": f"Bearer {token}"}) as resp:
                return resp.status

        phone, laptop = [(await login("js-settings-pw"))[1] for _ in range(2)]
        devices = {d["device_id"] for d in (await js.call("getDevices"))["devices"]}
        assert {phone["device_id"], laptop["device_id"]} < devices
        await js.call("renameDevice", deviceId=phone["device_id"], name="Old phone")
        names = {d["device_id"]: d["display_name"] for d in (await js.call("getDevices"))["devices"]}
        assert names[phone["device_id"]] == "Old phone"

        deleted = await js.call("deleteDevices", deviceIds=[phone["device_id"]], password="js-settings-pw")
        assert ["m.login.password"] in deleted["uia"], deleted
        assert await whoami(phone["access_token"]) == 401
        assert phone["device_id"] not in {d["device_id"] for d in (await js.call("getDevices"))["devices"]}

        await js.call("changePassword", oldPassword="js-settings-pw", newPassword="a new one", logoutDevices=True)
        assert await whoami(laptop["access_token"]) == 401        # every other session is signed out
        assert len((await js.call("getDevices"))["devices"]) == 1  # the SDK's own session stays
        assert (await login("js-settings-pw"))[0] == 403
        assert (await login("a new one"))[0] == 200
