"""Which events a user may see: history visibility at each event.

Spec: client-server-api, "Room History Visibility" (server behaviour, rules 1-5).
"""
from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from pocketserver.storage import events as event_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage import state as state_store
from pocketserver.storage.database import Database
from pocketserver.storage.events import StoredEvent

StateKey = tuple[str, str]
MAX_GROUPS = 256
MAX_STATE_EVENTS = 8192
# Parsed events kept for /sync: one initial sync of 10 rooms reads ~450 (timelines and state).
MAX_EVENTS = 1024


class StateCache:
    """Bounded caches of state groups, state event contents and recently read events."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._groups: OrderedDict[int, dict[StateKey, str]] = OrderedDict()
        self._contents: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._always_shared: dict[str, bool] = {}
        self._events: OrderedDict[str, StoredEvent] = OrderedDict()
        # Events whose redaction was stored but may not be committed yet: a read from before the
        # commit must not bring the unredacted form back into a cache (dict as an ordered set).
        self._redacting: dict[str, None] = {}

    async def group(self, group_id: int) -> dict[StateKey, str]:
        found = self._groups.get(group_id)
        if found is None:
            found = await self._db.read(lambda conn: state_store.load_state_group(conn, group_id))
            self._groups[group_id] = found
            if len(self._groups) > MAX_GROUPS:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(group_id)
        return found

    async def groups(self, group_ids: Iterable[int]) -> dict[int, dict[StateKey, str]]:
        """Several groups at once: the ones not in memory in one read (a /sync over many rooms)."""
        wanted = list(dict.fromkeys(group_ids))
        found = {g: self._groups[g] for g in wanted if g in self._groups}
        missing = [g for g in wanted if g not in found]
        if missing:
            found.update(await self._db.read(lambda conn: state_store.load_state_groups(conn, missing)))
        for group_id in wanted:
            self._groups[group_id] = found[group_id]
            self._groups.move_to_end(group_id)
        while len(self._groups) > MAX_GROUPS:
            self._groups.popitem(last=False)
        return found

    @property
    def known_events(self) -> Mapping[str, StoredEvent]:
        """The events in memory, by ID, for a storage read to reuse instead of parsing (`_row`)."""
        return self._events

    async def events(self, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
        """The stored events among `event_ids`, by ID in the order given; recently read ones from memory."""
        ids = list(dict.fromkeys(event_ids))
        hits: dict[str, StoredEvent] = {}
        missing = []
        for event_id in ids:
            event = self._events.get(event_id)
            if event is None:
                missing.append(event_id)
            else:
                hits[event_id] = event
                self._events.move_to_end(event_id)
        if not missing:
            return hits
        fetched = await event_store.get_events(self._db, missing)
        self.remember(fetched.values())
        found: dict[str, StoredEvent] = {}
        for event_id in ids:
            event = hits.get(event_id) or fetched.get(event_id)
            if event is not None:
                found[event_id] = event
        return found

    def remember(self, events: Iterable[StoredEvent]) -> None:
        """Keep events just read from the database (the newest MAX_EVENTS)."""
        cache = self._events
        for event in events:
            known = cache.get(event.event_id)
            if known is event:                 # reused by the read (storage.events._row): nothing new
                continue
            if not self._may_cache(event):
                continue
            if known is not None and known.redacted_by is not None and event.redacted_by is None:
                continue                       # a read from an older snapshot; redaction never goes back
            cache[event.event_id] = event
            cache.move_to_end(event.event_id)
        while len(cache) > MAX_EVENTS:
            cache.popitem(last=False)

    def _may_cache(self, event: StoredEvent) -> bool:
        if event.event_id not in self._redacting:
            return True
        if event.redacted_by is None:
            return False
        del self._redacting[event.event_id]    # the redaction is committed: this form is final
        return True

    async def contents(self, event_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Content of the given (state) events, by ID (all of them, even past what the cache keeps)."""
        ids = list(dict.fromkeys(event_ids))
        found = {e: self._contents[e] for e in ids if e in self._contents}
        wanted = [e for e in ids if e not in found]
        if wanted:
            for eid, stored in (await event_store.get_events(self._db, wanted)).items():
                if not self._may_cache(stored):
                    continue
                content = stored.json.get("content")
                found[eid] = self._contents[eid] = content if isinstance(content, dict) else {}
            while len(self._contents) > MAX_STATE_EVENTS:
                self._contents.popitem(last=False)
        return found

    async def always_shared(self, room_id: str) -> bool:
        """Whether every m.room.history_visibility event of the room says shared or world_readable."""
        found = self._always_shared.get(room_id)
        if found is None:
            found = (await self.learn_always_shared([room_id]))[room_id]
        return found

    async def learn_always_shared(self, room_ids: Iterable[str]) -> dict[str, bool]:
        """`always_shared` for the rooms not known yet, in one read per 500 (a sync over many rooms)."""
        missing = [r for r in dict.fromkeys(room_ids) if r not in self._always_shared]
        unshared = await room_store.get_rooms_ever_unshared(self._db, missing) if missing else set()
        found = {room_id: room_id not in unshared for room_id in missing}
        self._always_shared.update(found)
        while len(self._always_shared) > MAX_STATE_EVENTS:
            self._always_shared.pop(next(iter(self._always_shared)))
        return found

    def history_visibility_changed(self, room_id: str) -> None:
        """Forget what was known of a room's visibility history (a new history_visibility event)."""
        self._always_shared.pop(room_id, None)

    def forget_content(self, event_id: str) -> None:
        """Drop what is cached of an event being redacted (called before the redaction commits)."""
        self._contents.pop(event_id, None)
        self._events.pop(event_id, None)
        self._redacting[event_id] = None
        while len(self._redacting) > MAX_EVENTS:   # long since committed (or rolled back)
            del self._redacting[next(iter(self._redacting))]

    async def state_value(self, group_id: int, key: StateKey, field: str) -> Any:
        """One content field of one state entry of a group (None when absent)."""
        if group_id < 0:
            return None
        event_id = (await self.group(group_id)).get(key)
        if event_id is None:
            return None
        return (await self.contents([event_id])).get(event_id, {}).get(field)


async def _joins_of(db: Database, user_id: str, room_id: str) -> list[int]:
    """Stream positions of the user's join events in the room."""
    rows = await db.fetchall("SELECT stream_ordering, json FROM events WHERE room_id = ? AND type = 'm.room.member' "
                             "AND state_key = ? ORDER BY stream_ordering", (room_id, user_id))
    return [r[0] for r in rows if json.loads(r[1]).get("content", {}).get("membership") == "join"]


async def filter_visible(db: Database, cache: StateCache, user_id: str, events: list[StoredEvent]) -> list[StoredEvent]:
    """The events `user_id` may see, in the same order.

    Spec: client-server-api, "Room History Visibility".
    """
    joins_by_room: dict[str, list[int]] = {}
    everything: dict[str, bool] = {}
    visible = []
    await cache.learn_always_shared({event.room_id for event in events})
    for event in events:
        if event.room_id not in everything:
            everything[event.room_id] = await _sees_whole_history(db, cache, user_id, event.room_id)
        if everything[event.room_id]:
            visible.append(event)
            continue
        if event.room_id not in joins_by_room:
            joins_by_room[event.room_id] = await _joins_of(db, user_id, event.room_id)
        own_member_event = event.type == "m.room.member" and event.state_key == user_id
        if own_member_event and await _leaves_an_invite(cache, user_id, event):
            visible.append(event)
            continue
        groups = [event.state_before]
        special = event.type == "m.room.history_visibility" or own_member_event
        if special:
            groups.append(event.state_after)   # before *or* after the event may allow it
        for group in groups:
            if await _allowed(cache, user_id, event, group, joins_by_room[event.room_id]):
                visible.append(event)
                break
    return visible


async def _leaves_an_invite(cache: StateCache, user_id: str, event: StoredEvent) -> bool:
    """Whether the event is the user's own rejection of an invite: seen by them whatever the
    history visibility, so that their clients see the invite go (as Synapse allows; by the spec's
    rules alone neither the invite nor the leave would admit it in a `shared` room).
    """
    content = event.json.get("content")
    if not isinstance(content, dict) or content.get("membership") != "leave":
        return False
    return await cache.state_value(event.state_before, ("m.room.member", user_id), "membership") == "invite"


_CURRENT_MEMBERSHIP = ("SELECT membership FROM current_state WHERE room_id = ? AND type = 'm.room.member' "
                       "AND state_key = ?")


async def _sees_whole_history(db: Database, cache: StateCache, user_id: str, room_id: str) -> bool:
    """True when the user is joined now and the room's history was never less than `shared`.

    Then every event is visible: an event before the user's join falls under rule 3 (shared, and
    the user joined after it), one after it under rule 2. This spares the per-event state look-ups
    that make an initial sync over many rooms slow.
    """
    # A primary-key look-up: read on the event loop's thread rather than a trip to a reader thread.
    row = db.lookup(_CURRENT_MEMBERSHIP, (room_id, user_id))
    if row is None or row[0] != "join":
        return False
    return await cache.always_shared(room_id)


async def _allowed(cache: StateCache, user_id: str, event: StoredEvent, group: int, joins: list[int]) -> bool:
    if event.type == "m.room.create":
        group = event.state_after
    visibility = await cache.state_value(group, ("m.room.history_visibility", ""), "history_visibility")
    if visibility not in ("world_readable", "shared", "invited", "joined"):
        visibility = "shared"
    if visibility == "world_readable":                                               # rule 1
        return True
    membership = await cache.state_value(group, ("m.room.member", user_id), "membership")
    if membership == "join":                                                         # rule 2
        return True
    if visibility == "shared" and any(j >= event.stream_ordering for j in joins):     # rule 3
        return True
    return membership == "invite" and visibility == "invited"                        # rule 4
