"""Ephemeral data: typing notifications, receipts and presence, and their parts of /sync.

Typing lives only in memory, presence in memory with a background flush, receipts in the
database at positions of the "receipts" stream. Each area has a service (what the HTTP
handlers call) and a SyncSource (what /sync asks).
Spec: client-server-api, "Typing Notifications", "Receipts", "Fully read markers", "Presence".
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pocketserver.errors import Forbidden
from pocketserver.roomserver import RoomServer
from pocketserver.sync.filters import event_matches
from pocketserver.sync.sources import SyncContext


async def require_joined(rs: RoomServer, user_id: str, room_id: str) -> None:
    """Raise Forbidden unless `user_id` is joined to `room_id` (an unknown room included, like Synapse)."""
    room = await rs.get_room_state(room_id) if room_id.startswith("!") else None
    if room is None or room.membership(user_id) != "join":
        raise Forbidden(f"User {user_id} not in room {room_id}")


def ephemeral_wanted(ctx: SyncContext, room_id: str, event_type: str) -> bool:
    """Whether the sync filter lets an ephemeral event of `event_type` in `room_id` through.

    Spec: client-server-api, "Filtering" (RoomFilter.ephemeral, rooms, not_rooms).
    """
    room_filter: Mapping[str, Any] = ctx.sync_filter.get("room", {})
    if room_id in room_filter.get("not_rooms", ()) or ("rooms" in room_filter and room_id not in room_filter["rooms"]):
        return False
    # Ephemeral events have no sender, so a `senders` filter excludes them (as in Synapse).
    return event_matches(room_filter.get("ephemeral"), event_type=event_type, sender="", room_id=room_id)


def add_ephemeral(ctx: SyncContext, room_id: str, event: dict[str, Any]) -> None:
    """Append an ephemeral event to a joined room's entry of the response."""
    ctx.joined_room_entry(room_id).setdefault("ephemeral", {"events": []})["events"].append(event)
