"""Sync sources: the parts of a /sync response that other areas own (typing, receipts, presence,
to-device, device lists, one-time key counts, unread counts).

Each source adds its fields to the response being built and says whether it added anything, so an
empty incremental sync keeps waiting. Spec: client-server-api, "GET /_matrix/client/v3/sync".
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from pocketserver.sync.tokens import StreamToken


class SyncContext(NamedTuple):
    """What a source needs to know about the sync being computed."""

    user_id: str
    device_id: str
    since: StreamToken | None          # None for an initial sync
    now: StreamToken                   # the positions this response goes up to (next_batch)
    sync_filter: Mapping[str, Any]
    full_state: bool
    joined_rooms: frozenset[str]       # every room the user is joined to now
    response: dict[str, Any]           # the response being built; sources add to it
    state_after: str | None = None     # the field a room's state goes in when not "state" (use_state_after)
    newly_joined: frozenset[str] = frozenset()   # rooms joined since `since` (incremental syncs only)

    def joined_room_entry(self, room_id: str) -> dict[str, Any]:
        """The response entry of a joined room, created (with an empty timeline) if the room had no news."""
        joins = self.response.setdefault("rooms", {}).setdefault("join", {})
        entry = joins.get(room_id)
        if entry is None:
            entry = joins[room_id] = {
                "timeline": {"events": [], "limited": False, "prev_batch": StreamToken(events=self.now.events).serialize()},
                self.state_after or "state": {"events": []}, "ephemeral": {"events": []},
                "account_data": {"events": []}, "unread_notifications": {"notification_count": 0, "highlight_count": 0},
                "summary": {},
            }
        return entry


class SyncSource(Protocol):
    """Fills some fields of a sync response."""

    async def add_to_sync(self, ctx: SyncContext) -> bool:
        """Add this source's data to `ctx.response`; True when it added something new for the client."""
        ...
