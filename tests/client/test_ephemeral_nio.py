"""Two matrix-nio clients on a real server see each other's typing, receipts, read markers and presence.

Spec: client-server-api, "Typing Notifications", "Receipts", "Fully read markers", "Presence".
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable

from nio import (AsyncClient, JoinResponse, LoginResponse, PresenceEvent, PresenceSetResponse, ReceiptEvent,
                 RoomCreateResponse, RoomReadMarkersResponse, RoomSendResponse, RoomTypingResponse, SyncResponse,
                 TypingNoticeEvent, UpdateReceiptMarkerResponse)


async def login(homeserver, http, name: str) -> AsyncClient:
    await homeserver.register_shared_secret(http, name, f"{name}-pw")
    client = AsyncClient(homeserver.base_url, name)
    assert isinstance(await client.login(f"{name}-pw"), LoginResponse)
    return client


async def sync_until(client: AsyncClient, found: Callable[[SyncResponse], bool], within: float = 10) -> SyncResponse:
    """Long-poll until a sync response satisfies `found` (bounded: each poll waits on the server)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sync = await client.sync(timeout=5_000, since=client.next_batch)
        assert isinstance(sync, SyncResponse), sync
        if found(sync):
            return sync
    raise AssertionError("not seen in time")


def ephemeral(sync: SyncResponse, room_id: str) -> list:
    room = sync.rooms.join.get(room_id)
    return list(room.ephemeral) if room else []


async def test_typing_receipts_presence_between_nio_clients(homeserver, http) -> None:
    alice = await login(homeserver, http, "eph-alice")
    bob = await login(homeserver, http, "eph-bob")
    try:
        created = await alice.room_create(name="Ephemeral", invite=[bob.user_id])
        assert isinstance(created, RoomCreateResponse), created
        room_id = created.room_id
        assert isinstance(await bob.join(room_id), JoinResponse)
        await asyncio.gather(alice.sync(timeout=0), bob.sync(timeout=0))

        # Typing: bob's long-poll sees alice start and stop.
        assert isinstance(await alice.room_typing(room_id, True, timeout=30_000), RoomTypingResponse)
        await sync_until(bob, lambda s: any(isinstance(e, TypingNoticeEvent) and e.users == [alice.user_id]
                                            for e in ephemeral(s, room_id)))
        assert isinstance(await alice.room_typing(room_id, False), RoomTypingResponse)
        await sync_until(bob, lambda s: any(isinstance(e, TypingNoticeEvent) and e.users == []
                                            for e in ephemeral(s, room_id)))

        # Receipts: alice sends, bob marks read with a receipt, then read markers; alice sees both.
        sent = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "tea?"})
        assert isinstance(sent, RoomSendResponse)
        assert isinstance(await bob.update_receipt_marker(room_id, sent.event_id), UpdateReceiptMarkerResponse)

        def bob_read(event_id: str) -> Callable[[SyncResponse], bool]:
            return lambda s: any(isinstance(e, ReceiptEvent) and any(
                r.event_id == event_id and r.user_id == bob.user_id and r.receipt_type == "m.read"
                for r in e.receipts) for e in ephemeral(s, room_id))

        await sync_until(alice, bob_read(sent.event_id))
        second = await alice.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "or coffee?"})
        assert isinstance(second, RoomSendResponse)
        marked = await bob.room_read_markers(room_id, second.event_id, second.event_id)
        assert isinstance(marked, RoomReadMarkersResponse), marked
        await sync_until(alice, bob_read(second.event_id))

        # Presence: bob sets a status; alice's sync carries it.
        assert isinstance(await bob.set_presence("unavailable", "brewing"), PresenceSetResponse)
        seen = await sync_until(alice, lambda s: any(
            isinstance(e, PresenceEvent) and e.user_id == bob.user_id and e.status_msg == "brewing"
            for e in s.presence_events))
        event = next(e for e in seen.presence_events if e.user_id == bob.user_id)
        assert event.presence == "unavailable"
        got = await alice.get_presence(bob.user_id)
        assert (got.presence, got.status_msg) == ("unavailable", "brewing")
    finally:
        await asyncio.gather(alice.close(), bob.close())


async def test_joining_a_room_brings_its_members_presence(homeserver, http) -> None:
    """A new DM shows the other user's presence at once, before it next changes (Synapse sends the
    presence of a newly joined room's members in the sync that carries the join)."""
    alice = await login(homeserver, http, "eph-dm-alice")
    bob = await login(homeserver, http, "eph-dm-bob")
    try:
        assert isinstance(await alice.set_presence("online", "at the allotment"), PresenceSetResponse)
        await asyncio.gather(alice.sync(timeout=0, set_presence="offline"), bob.sync(timeout=0, set_presence="offline"))
        created = await alice.room_create(is_direct=True, invite=[bob.user_id])
        assert isinstance(created, RoomCreateResponse), created
        await sync_until(bob, lambda s: created.room_id in s.rooms.invite)
        assert isinstance(await bob.join(created.room_id), JoinResponse)
        seen = await sync_until(bob, lambda s: created.room_id in s.rooms.join)
        events = [e for e in seen.presence_events if isinstance(e, PresenceEvent) and e.user_id == alice.user_id]
        assert [(e.presence, e.status_msg) for e in events] == [("online", "at the allotment")]
        user = bob.rooms[created.room_id].users[alice.user_id]
        assert (user.presence, user.status_msg) == ("online", "at the allotment")
    finally:
        await asyncio.gather(alice.close(), bob.close())
