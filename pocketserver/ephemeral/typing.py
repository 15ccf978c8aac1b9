"""Typing notifications: kept only in memory, each change at a new position of the "typing" stream.

Spec: client-server-api, "Typing Notifications".
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from pocketserver.ephemeral import add_ephemeral, ephemeral_wanted, require_joined
from pocketserver.errors import Forbidden
from pocketserver.ratelimit import RateLimiter
from pocketserver.roomserver import RoomServer
from pocketserver.sync.notifier import Notifier
from pocketserver.sync.sources import SyncContext

STREAM = "typing"
DEFAULT_TIMEOUT_MS = 30_000      # Synapse's default when the client gives none
MAX_TIMEOUT_MS = 120_000         # Synapse's cap, so a client cannot type "forever"


@dataclass(slots=True)
class _Room:
    typers: dict[str, tuple[float, asyncio.TimerHandle | None]] = field(default_factory=dict)  # user -> (until, timer)
    serial: int = 0              # position of the room's last change


class TypingService:
    """Who is typing in which room, expiring each typer with one timer (no polling)."""

    def __init__(self, rs: RoomServer, notifier: Notifier, *, limit: RateLimiter,
                 activity: Callable[[str], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rs = rs
        self._notifier = notifier
        self._limit = limit                # per user: each change wakes every member's /sync
        self._activity = activity          # presence: typing counts as activity, as in Synapse
        self._clock = clock
        self._rooms: dict[str, _Room] = {}
        self.serial = 0

    async def set_typing(self, requester: str, user_id: str, room_id: str, typing: bool, timeout_ms: int) -> None:
        """Spec: client-server-api, "PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"."""
        if requester != user_id:
            raise Forbidden("Cannot set another user's typing state")
        self._limit.spend(user_id)
        await require_joined(self._rs, user_id, room_id)
        if self._activity is not None:
            await self._activity(user_id)
        if typing:
            self.started_typing(room_id, user_id, min(max(timeout_ms, 0), MAX_TIMEOUT_MS))
        else:
            self.stopped_typing(room_id, user_id)

    def started_typing(self, room_id: str, user_id: str, timeout_ms: int) -> None:
        room = self._rooms.setdefault(room_id, _Room())
        was_typing = user_id in room.typers and room.typers[user_id][0] > self._clock()
        self._cancel_timer(room, user_id)
        until = self._clock() + timeout_ms / 1000
        timer = None
        try:
            timer = asyncio.get_running_loop().call_later(timeout_ms / 1000, self._expire, room_id, user_id, until)
        except RuntimeError:     # no running loop (pure tests): expiry happens on read
            pass
        room.typers[user_id] = (until, timer)
        if not was_typing:       # a refreshed timeout changes nothing that clients see
            self._changed(room_id, room)

    def stopped_typing(self, room_id: str, user_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is None or user_id not in room.typers:
            return
        self._cancel_timer(room, user_id)
        del room.typers[user_id]
        self._changed(room_id, room)

    def _expire(self, room_id: str, user_id: str, until: float) -> None:
        room = self._rooms.get(room_id)
        if room is not None and room.typers.get(user_id, (None,))[0] == until:
            del room.typers[user_id]
            self._changed(room_id, room)

    def _changed(self, room_id: str, room: _Room) -> None:
        self.serial += 1
        room.serial = self.serial
        self._notifier.advance(STREAM, self.serial, rooms=[room_id])

    @staticmethod
    def _cancel_timer(room: _Room, user_id: str) -> None:
        entry = room.typers.get(user_id)
        if entry is not None and entry[1] is not None:
            entry[1].cancel()

    def typing_users(self, room_id: str) -> list[str]:
        """The users typing in the room now; expired typers are dropped on read too."""
        room = self._rooms.get(room_id)
        if room is None:
            return []
        now = self._clock()
        for user_id in [u for u, (until, _) in room.typers.items() if until <= now]:
            self._cancel_timer(room, user_id)
            del room.typers[user_id]
            self._changed(room_id, room)
        return list(room.typers)

    async def joined_typers(self, room_id: str) -> list[str]:
        """The typers who are still joined: someone who left stops showing at once, not at the timeout."""
        users = self.typing_users(room_id)
        room = await self._rs.get_room_state(room_id) if users else None
        return [u for u in users if room is not None and room.membership(u) == "join"]

    def room_serial(self, room_id: str) -> int:
        room = self._rooms.get(room_id)
        return room.serial if room else 0

    def stop(self) -> None:
        """Cancel every expiry timer (at shutdown)."""
        for room in self._rooms.values():
            for _, timer in room.typers.values():
                if timer is not None:
                    timer.cancel()
        self._rooms.clear()


class TypingSource:
    """Adds m.typing to the ephemeral events of joined rooms whose typers changed since the token.

    Spec: client-server-api, "Typing Notifications" (m.typing in /sync).
    """

    def __init__(self, typing: TypingService) -> None:
        self._typing = typing

    async def add_to_sync(self, ctx: SyncContext) -> bool:
        since = ctx.since.typing if ctx.since is not None else None
        # The stream lives in memory and restarts at 0: a token from before a restart is ahead of
        # it, so that client gets the current typers of every joined room (clearing stale ones).
        reset = since is not None and since > ctx.now.typing
        added = False
        for room_id in sorted(ctx.joined_rooms):
            if since is not None and not reset and self._typing.room_serial(room_id) <= since:
                continue
            if not ephemeral_wanted(ctx, room_id, "m.typing"):
                continue
            users = await self._typing.joined_typers(room_id)
            if since is None and not users:
                continue
            add_ephemeral(ctx, room_id, {"type": "m.typing", "content": {"user_ids": users}})
            added = True
        return added
