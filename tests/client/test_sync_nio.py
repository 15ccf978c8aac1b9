"""Two matrix-nio clients chat through a real server: invite, join, send, and each sees the other.

Spec: client-server-api, "Syncing", "Room membership", "Sending events to a room".
"""
from __future__ import annotations

import asyncio
import json
import time

from nio import (AsyncClient, InviteMemberEvent, JoinResponse, LoginResponse, RoomCreateResponse,
                 RoomMessageText, RoomSendResponse, SyncResponse)


async def login(homeserver, http, name: str) -> AsyncClient:
    await homeserver.register_shared_secret(http, name, f"{name}-pw")
    client = AsyncClient(homeserver.base_url, name)
    assert isinstance(await client.login(f"{name}-pw"), LoginResponse)
    return client


async def test_two_nio_clients_chat(homeserver, http) -> None:
    alice = await login(homeserver, http, "nio-alice")
    bob = await login(homeserver, http, "nio-bob")
    try:
        assert isinstance(await bob.sync(timeout=0), SyncResponse)
        created = await alice.room_create(name="Family", invite=[bob.user_id])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id

        sync = await bob.sync(timeout=10_000, since=bob.next_batch)
        assert isinstance(sync, SyncResponse)
        assert room_id in sync.rooms.invite
        assert any(isinstance(e, InviteMemberEvent) for e in sync.rooms.invite[room_id].invite_state)
        assert isinstance(await bob.join(room_id), JoinResponse)

        await alice.sync(timeout=0)
        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "dinner at 7"})
        assert isinstance(sent, RoomSendResponse)

        # bob's long-poll answers promptly with alice's message.
        started = time.monotonic()
        seen: list[str] = []
        while "dinner at 7" not in seen and time.monotonic() - started < 10:
            sync = await bob.sync(timeout=10_000, since=bob.next_batch)
            room = sync.rooms.join.get(room_id)
            seen += [e.body for e in (room.timeline.events if room else []) if isinstance(e, RoomMessageText)]
        assert "dinner at 7" in seen
        assert bob.rooms[room_id].display_name == "Family"
        assert bob.rooms[room_id].member_count == 2

        reply = await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "ok!"})
        assert isinstance(reply, RoomSendResponse)
        sync = await alice.sync(timeout=10_000, since=alice.next_batch)
        bodies = [e.body for e in sync.rooms.join[room_id].timeline.events if isinstance(e, RoomMessageText)]
        assert bodies == ["dinner at 7", "ok!"]   # her own message, then the reply
        assert sync.rooms.join[room_id].timeline.events[-1].sender == bob.user_id

        # History is there for bob to page back through.
        history = await bob.room_messages(room_id, start=bob.next_batch, limit=10)
        assert any(getattr(e, "body", None) == "dinner at 7" for e in history.chunk)
    finally:
        await asyncio.gather(alice.close(), bob.close())


async def test_a_bot_syncing_only_its_rooms_still_hears_of_invites(homeserver, http) -> None:
    """A bot whose /sync filter names only its own rooms (`room.rooms`) still gets invites (and the
    rooms it is not in stay out of `join`), as Synapse lists every invite whatever the filter;
    otherwise it could never be asked into a new room. Spec: client-server-api, "Filtering"."""
    owner = await login(homeserver, http, "nio-owner")
    bot = await login(homeserver, http, "nio-filtered-bot")
    try:
        home = (await owner.room_create(name="Bot's room", invite=[bot.user_id])).room_id
        other = (await owner.room_create(name="Unrelated")).room_id
        assert isinstance(await bot.join(home), JoinResponse)
        await bot.sync(timeout=0)
        only_home = {"room": {"rooms": [home], "timeline": {"limit": 5}}}
        new = (await owner.room_create(name="New room", invite=[bot.user_id])).room_id
        await owner.room_send(home, "m.room.message", {"msgtype": "m.text", "body": "welcome"})

        got = await bot.sync(timeout=0, since=bot.next_batch, sync_filter=only_home)
        assert isinstance(got, SyncResponse), got
        assert list(got.rooms.invite) == [new]
        assert set(got.rooms.join) == {home} and other not in got.rooms.join
        # The same from an initial sync with not_rooms naming the invite's room.
        async with http.get(f"{homeserver.base_url}/_matrix/client/v3/sync", params={
                "timeout": "0", "filter": json.dumps({"room": {"not_rooms": [new, home]}})},
                headers={"Authorization": f"Bearer {bot.access_token}"}) as resp:
            initial = await resp.json()
        assert resp.status == 200, initial
        assert list(initial["rooms"]["invite"]) == [new] and "join" not in initial["rooms"], initial["rooms"]
        assert isinstance(await bot.join(new), JoinResponse)
    finally:
        await owner.close()
        await bot.close()
