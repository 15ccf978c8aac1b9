"""Presence of local users: kept in memory, written in the background, timed out like Synapse.

Each change takes a new position of the in-memory "presence" stream and wakes the users who share
a room with the user. Every minute (and at shutdown) the changed states are written in one job.
Spec: client-server-api, "Presence".
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pocketserver.errors import Forbidden, InvalidParam, MissingParam
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.storage import receipts as presence_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage.database import Database
from pocketserver.storage.receipts import PresenceRow
from pocketserver.sync.filters import event_matches
from pocketserver.sync.notifier import Notifier
from pocketserver.sync.sources import SyncContext

log = logging.getLogger(__name__)

STREAM = "presence"
ONLINE, UNAVAILABLE, OFFLINE = "online", "unavailable", "offline"
STATES = (ONLINE, UNAVAILABLE, OFFLINE)
# Synapse's timers (synapse/handlers/presence.py).
IDLE_TIMER_MS = 5 * 60 * 1000             # online -> unavailable without activity
SYNC_ONLINE_TIMEOUT_MS = 30 * 1000        # -> offline this long after the last sync (or activity)
LAST_ACTIVE_GRANULARITY_MS = 60 * 1000    # currently_active while the last activity is this recent
MAX_SYNC_TIMEOUT_MS = 5 * 60 * 1000
# The timeout task sleeps until the next moment a user's presence can change by itself (checked
# again at least this often, in case the wall clock jumps), and applies timeouts at most every
# TIMEOUT_PASS_INTERVAL_S: each change wakes the long-polls of everyone who shares a room with the
# user, so changes due close together must go out in one pass, not in one wake-up each (500
# long-polling users going idle one by one made a storm of /sync answers).
MAX_TIMEOUT_SLEEP_S = 60.0
TIMEOUT_PASS_INTERVAL_S = 5.0
# Presence is served from memory and written with what else is kept there (Server.FLUSH_INTERVAL_S),
# only so that status messages and last-active times survive a restart.


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class UserPresence:
    presence: str = OFFLINE
    status_msg: str | None = None
    last_active_ts: int = 0
    currently_active: bool = False
    sync_until_ts: int = 0         # when the user's latest /sync long-poll ends (0: never synced)
    stream_position: int = 0
    by_sync: bool = False          # unavailable because a sync asked for it (set_presence=unavailable)
    asked: dict[str, tuple[str, int]] = field(default_factory=dict)   # device -> (set_presence, poll end)

    def format(self, now: int) -> dict[str, Any]:
        """The m.presence content (and GET /presence response), shaped as Synapse does."""
        content: dict[str, Any] = {"presence": self.presence}
        if self.last_active_ts:
            content["last_active_ago"] = max(0, now - self.last_active_ts)
        if self.status_msg:
            content["status_msg"] = self.status_msg
        if self.presence == ONLINE:
            content["currently_active"] = self.currently_active
        return content


class PresenceService:
    """The presence of every local user, in memory."""

    def __init__(self, db: Database, notifier: Notifier, *, clock: Callable[[], int] = wall_ms) -> None:
        self._db = db
        self._notifier = notifier
        self._clock = clock
        self._states: dict[str, UserPresence] = {}
        self._dirty: set[str] = set()
        self._changes = asyncio.Event()   # set on every change: the next timeout may come sooner
        self.serial = 0

    def now(self) -> int:
        return self._clock()

    def state(self, user_id: str) -> UserPresence:
        return self._states.get(user_id) or UserPresence()

    async def set_presence(self, requester: str, user_id: str, body: dict[str, Any]) -> None:
        """Spec: client-server-api, "PUT /_matrix/client/v3/presence/{userId}/status"."""
        if requester != user_id:
            raise Forbidden("Can only set your own presence state")
        presence, status_msg = body.get("presence"), body.get("status_msg")
        if presence is None:
            raise MissingParam("Missing presence")
        if presence not in STATES:
            raise InvalidParam(f"presence must be one of {', '.join(STATES)}")
        if status_msg is not None and not isinstance(status_msg, str):
            raise InvalidParam("status_msg must be a string")
        now = self._clock()
        state = self._states.setdefault(user_id, UserPresence())
        old = (state.presence, state.status_msg)
        # As in Synapse, a PUT without status_msg clears it.
        state.presence, state.status_msg, state.by_sync = presence, status_msg, False
        was_active = state.currently_active
        if presence == ONLINE:
            state.last_active_ts, state.currently_active = now, True
        else:
            state.currently_active = False
        if (presence, status_msg) != old or state.currently_active != was_active:
            await self._changed(user_id, state)

    async def get_presence(self, requester: str, user_id: str) -> dict[str, Any]:
        """Spec: client-server-api, "GET /_matrix/client/v3/presence/{userId}/status"."""
        try:
            UserID.parse(user_id)
        except InvalidIdentifier:
            raise InvalidParam("Invalid user ID") from None
        if requester != user_id and not await self._share_room(requester, user_id):
            raise Forbidden("You are not allowed to see their presence")
        return self.state(user_id).format(self._clock())

    async def user_syncing(self, user_id: str, set_presence: str, timeout_ms: int,
                           device_id: str | None = None) -> None:
        """A /sync started: keep the user online (or unavailable) while it and the next ones run.

        What each device's syncs ask for is kept while they run: the user is online while any
        device asks for it, so a laptop left idle (its syncs asking `unavailable`) does not make
        the user away while they use their phone, and the laptop's syncs do not flip them back
        every time (Synapse combines devices the same way). An `unavailable` set by a sync ends
        when a device asks for `online` again; one set by the idle timer or by the user
        (PUT /presence) ends with activity, as a sync is not activity here.
        Spec: client-server-api, "GET /_matrix/client/v3/sync" (set_presence). `offline` leaves
        presence alone, as in Synapse.
        """
        if set_presence == OFFLINE:
            return
        now = self._clock()
        state = self._states.setdefault(user_id, UserPresence())
        until = now + max(0, min(timeout_ms, MAX_SYNC_TIMEOUT_MS))
        state.sync_until_ts = max(state.sync_until_ts, until)
        if device_id is not None:
            state.asked[device_id] = (set_presence, until)
            if len(state.asked) > 1:      # devices that stopped syncing no longer count
                state.asked = {d: a for d, a in state.asked.items() if now - a[1] <= SYNC_ONLINE_TIMEOUT_MS}
            wants_online = any(asked == ONLINE for asked, _ in state.asked.values())
        else:
            wants_online = set_presence == ONLINE
        if wants_online and (state.presence == OFFLINE or (state.presence == UNAVAILABLE and state.by_sync)):
            state.presence, state.last_active_ts, state.currently_active, state.by_sync = ONLINE, now, True, False
            await self._changed(user_id, state)
        elif not wants_online and state.presence != UNAVAILABLE:
            state.presence, state.currently_active, state.by_sync = UNAVAILABLE, False, True
            await self._changed(user_id, state)

    async def bump_active(self, user_id: str) -> None:
        """The user did something (typing, a receipt): they are active now; unavailable becomes online."""
        now = self._clock()
        state = self._states.setdefault(user_id, UserPresence())
        was = (state.presence, state.currently_active)
        state.last_active_ts, state.by_sync = now, False
        if state.presence == UNAVAILABLE:
            state.presence = ONLINE
        state.currently_active = state.presence == ONLINE
        if (state.presence, state.currently_active) != was:
            await self._changed(user_id, state)
        else:
            self._dirty.add(user_id)

    async def handle_timeouts(self, now: int | None = None) -> None:
        """Idle users become unavailable, users who stopped syncing offline. Spec: "Presence"."""
        now = self._clock() if now is None else now
        for user_id, state in list(self._states.items()):
            if state.presence == OFFLINE:
                continue
            before = (state.presence, state.currently_active)
            if state.currently_active and now - state.last_active_ts > LAST_ACTIVE_GRANULARITY_MS:
                state.currently_active = False
            if state.presence == ONLINE and now - state.last_active_ts > IDLE_TIMER_MS:
                state.presence, state.by_sync = UNAVAILABLE, False
            if now - max(state.sync_until_ts, state.last_active_ts) > SYNC_ONLINE_TIMEOUT_MS:
                state.presence, state.currently_active, state.by_sync = OFFLINE, False, False
                state.asked.clear()
            if (state.presence, state.currently_active) != before:
                await self._changed(user_id, state)

    async def _changed(self, user_id: str, state: UserPresence) -> None:
        # Who to wake is read first; the change then takes its stream position and the notifier
        # advances to it in one step. Taking the position before the read let a /sync in between
        # send the change under an older next_batch, and the client got it again from there, at
        # once, until the read was done: under load, /sync in a loop.
        users = await self.interested_users(user_id)
        self._changes.set()
        self.serial += 1
        state.stream_position = self.serial
        self._dirty.add(user_id)
        self._notifier.advance(STREAM, self.serial, users=users)

    async def interested_users(self, user_id: str) -> set[str]:
        """The user and everyone joined to a room the user is joined to."""
        return {user_id} | await room_store.get_users_sharing_a_room(self._db, user_id)

    async def _share_room(self, user_a: str, user_b: str) -> bool:
        rooms_a = await room_store.get_rooms_for_user(self._db, user_a)
        return bool(rooms_a.keys() & (await room_store.get_rooms_for_user(self._db, user_b)).keys())

    async def load(self) -> None:
        """Read the stored presence at start; the stream continues after the highest stored position."""
        for row in await presence_store.get_all_presence(self._db):
            self._states[row.user_id] = UserPresence(row.presence, row.status_msg, row.last_active_ts,
                                                     stream_position=row.stream_position)
            self.serial = max(self.serial, row.stream_position)
        self._changes.set()
        self._notifier.advance(STREAM, self.serial)

    async def flush(self, *, within: float = 0.0) -> None:
        """Write every changed state in one job (never one write per request).

        `within`: the job may wait that long for a commit to ride along in (Database.write_along).
        """
        if not self._dirty:
            return
        users, self._dirty = self._dirty, set()
        rows = [PresenceRow(u, s.presence, s.status_msg, s.last_active_ts, s.stream_position)
                for u in users if (s := self._states.get(u)) is not None]
        try:
            await self._db.write_along(lambda tx: presence_store.insert_presence(tx, rows), within=within)
        except Exception:
            self._dirty |= users
            raise

    def next_timeout(self) -> int | None:
        """The wall-clock time (ms) of the next change handle_timeouts would make, if no one acts
        before it; None while everyone is offline. Each term is a condition of handle_timeouts."""
        soonest: int | None = None
        for state in self._states.values():
            if state.presence == OFFLINE:
                continue
            due = max(state.sync_until_ts, state.last_active_ts) + SYNC_ONLINE_TIMEOUT_MS
            if state.currently_active:
                due = min(due, state.last_active_ts + LAST_ACTIVE_GRANULARITY_MS)
            if state.presence == ONLINE:
                due = min(due, state.last_active_ts + IDLE_TIMER_MS)
            soonest = due if soonest is None else min(soonest, due)
        return soonest

    async def run(self) -> None:
        """The background task: apply the timeouts when the next one is due.

        It sleeps until then (activity only postpones a timeout; a change that may bring one
        forward wakes it), and without a timer while everyone is offline, so an idle server sleeps.
        Passes are at least TIMEOUT_PASS_INTERVAL_S apart.
        """
        loop = asyncio.get_running_loop()
        last_pass = -math.inf
        while True:
            self._changes.clear()
            due = self.next_timeout()
            if due is None:
                await self._changes.wait()
                continue
            # The conditions are strict (">"), so the change happens 1 ms after `due`.
            delay = max(0, due + 1 - self._clock()) / 1000
            delay = min(max(delay, last_pass + TIMEOUT_PASS_INTERVAL_S - loop.time()), MAX_TIMEOUT_SLEEP_S)
            try:
                await asyncio.wait_for(self._changes.wait(), delay)
                continue
            except TimeoutError:
                pass
            last_pass = loop.time()
            try:
                await self.handle_timeouts()
            except Exception:
                log.exception("presence timeouts failed")
                await asyncio.sleep(MAX_TIMEOUT_SLEEP_S)

    def changed_since(self, position: int, upto: int) -> Iterable[tuple[str, UserPresence]]:
        """The users whose presence took a position in (position, upto]."""
        return [(u, s) for u, s in self._states.items() if position < s.stream_position <= upto]


class PresenceSource:
    """Fills the top-level `presence` of /sync with users who share a room with the syncing user.

    Spec: client-server-api, "Presence" and "GET /_matrix/client/v3/sync" (presence).
    """

    def __init__(self, db: Database, presence: PresenceService) -> None:
        self._db = db
        self._presence = presence

    async def add_to_sync(self, ctx: SyncContext) -> bool:
        since = ctx.since.presence if ctx.since is not None else None
        # The stream position is kept in memory; a token ahead of it predates a restart.
        reset = since is not None and since > ctx.now.presence
        # Bounded by the token's position: a change that took its position after it is sent by
        # the next /sync, not under a next_batch that comes before it.
        if since is not None and not reset and ctx.now.presence <= since and not ctx.newly_joined:
            return False
        if since is None or reset:
            users = {ctx.user_id} | await room_store.get_joined_users(self._db, ctx.joined_rooms)
            # Initial sync leaves out offline users, as Synapse does.
            states = [(u, self._presence.state(u)) for u in sorted(users)]
            states = [(u, s) for u, s in states
                      if 0 < s.stream_position <= ctx.now.presence and (reset or s.presence != OFFLINE)]
        else:
            changed = sorted(self._presence.changed_since(since, ctx.now.presence)) if ctx.now.presence > since else []
            sharing = await self._sharing(ctx, [u for u, _ in changed])
            states = [(u, s) for u, s in changed if u in sharing]
            if ctx.newly_joined:
                # The members of rooms just joined: their presence as it is now, as Synapse sends it,
                # so a new DM shows its other user's presence before it next changes.
                sent = {u for u, _ in states} | {ctx.user_id}
                newcomers = await room_store.get_joined_users(self._db, ctx.newly_joined) - sent
                states += [(u, self._presence.state(u)) for u in sorted(newcomers)]
        presence_filter = ctx.sync_filter.get("presence")
        now = self._presence.now()
        events = [{"type": "m.presence", "sender": u, "content": s.format(now)} for u, s in states
                  if event_matches(presence_filter, event_type="m.presence", sender=u)]
        limit = (presence_filter or {}).get("limit")
        if isinstance(limit, int) and limit >= 0:
            events = events[:limit]
        ctx.response.setdefault("presence", {})["events"] = events
        return bool(events)

    async def _sharing(self, ctx: SyncContext, candidates: list[str]) -> set[str]:
        """Those of `candidates` who are the syncing user or share a joined room with them.

        Reads the members of the user's rooms when that is fewer reads than the rooms of each
        candidate: after everyone came online at once, one read per candidate made every sync
        cost a read per user of the server.
        """
        if len(candidates) > len(ctx.joined_rooms):
            sharing = {ctx.user_id} | await room_store.get_joined_users(self._db, ctx.joined_rooms)
            return sharing & set(candidates)
        return {u for u in candidates if u == ctx.user_id
                or ctx.joined_rooms & (await room_store.get_rooms_for_user(self._db, u)).keys()}
