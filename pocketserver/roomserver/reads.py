"""Reading rooms for clients: events, state, members, pagination and context, all through
history visibility.

Spec: client-server-api, "Getting events for a room", "Room History Visibility".
"""
from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable, Mapping
from typing import Any

from pocketserver.errors import Forbidden, NotFound
from pocketserver.rooms.client_event import format_client_event, format_client_event_base
from pocketserver.roomserver import RoomServer
from pocketserver.roomserver.relations import bundle_relations
from pocketserver.accounts.ignored_users import NOBODY, IgnoredUsers
from pocketserver.roomserver.visibility import filter_visible
from pocketserver.storage import events as event_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage.events import StoredEvent
from pocketserver.sync.tokens import StreamToken

MAX_PAGE = 1000
FILTER_BATCH = 100        # events read at a time while filling a filtered /messages page
MAX_FILTER_SCAN = 5000    # events one filtered /messages request reads at most
MAX_CHILD_CHECK = 200      # parents checked for children by one synchronous look-up (has_children)
MAX_CLIENT_EVENTS = 1024   # formatted ClientEvents kept (first in, first out), as many as StateCache's events
MAX_MEMBERSHIP_WALK = 50   # member events of one user walked back for unsigned.membership


class RoomReader:
    """Answers read requests about rooms, checking what the requester may see."""

    def __init__(self, rs: RoomServer) -> None:
        self.rs = rs
        self.db = rs.db
        self.cache = rs.state_cache
        self.ignored = IgnoredUsers(self.db)
        # (event_id, include_room_id) -> (the StoredEvent, its ClientEvent without unsigned)
        self._client_events: dict[tuple[str, bool], tuple[StoredEvent, dict[str, Any]]] = {}

    async def visible(self, user_id: str, events: list[StoredEvent], *, keep_ignored: bool = False) -> list[StoredEvent]:
        """The events the user may see (history visibility), in the same order, without the
        non-state events of users they ignore (as Synapse's filter_events_for_client).

        Spec: client-server-api, "Room History Visibility", "Ignoring Users".
        """
        visible = await filter_visible(self.db, self.cache, user_id, events)
        ignored = NOBODY if keep_ignored or not visible else await self.ignored.of(user_id)
        return [e for e in visible if e.sender not in ignored or e.state_key is not None] if ignored else visible

    async def membership_window(self, user_id: str, room_id: str) -> tuple[str | None, int | None]:
        """The user's membership and, if they left, the stream position up to which they may read.

        A room the user left and then forgot has no window: "After this API is called, however, a
        user will no longer be able to retrieve history for this room" (spec: client-server-api,
        "POST /_matrix/client/v3/rooms/{roomId}/forget")."""
        room = await self.rs.require_room(room_id, user_id)
        membership = room.membership(user_id)
        if membership == "join":
            return membership, None
        local = await room_store.get_local_membership(self.db, user_id, room_id)
        if local is not None and local[0] in ("leave", "ban") and not local[3]:
            return local[0], local[2]
        return membership, None

    async def require_reader(self, user_id: str, room_id: str) -> int | None:
        """Raise unless the user is or was in the room (or it is world-readable); return the read limit."""
        membership, limit = await self.membership_window(user_id, room_id)
        if membership == "join":
            return None
        if limit is not None:
            return limit
        room = await self.rs.require_room(room_id)
        vis = room.state.get(("m.room.history_visibility", ""))
        if vis is not None and vis.content.get("history_visibility") == "world_readable":
            return None
        raise Forbidden("You are not in this room")

    async def serialize(self, events: Iterable[StoredEvent], user_id: str | None, device_id: str | None = None,
                        *, include_room_id: bool = True,
                        latest_memberships: Mapping[str, tuple[str, str, int]] | None = None,
                        bundle: bool | Container[str] = True) -> list[dict[str, Any]]:
        """Client events with `unsigned` (age, transaction_id, prev_content, redacted_because, and
        the requester's membership at each event). `latest_memberships`: the user's latest
        membership per room as /sync has read it (room -> (membership, event_id, stream_ordering)).
        `bundle`: which events get their children's bundled aggregations (all, none, or those whose
        IDs it holds: /sync bundles only limited timelines' events)."""
        events = list(events)
        extra_ids = [e.replaces_state for e in events if e.replaces_state] + [e.redacted_by for e in events if e.redacted_by]
        extras = await self.cache.events(extra_ids) if extra_ids else {}
        if user_id and events:
            memberships = await self.memberships_at(user_id, events, {**{e.event_id: e for e in events}, **extras},
                                                    latest_memberships or {})
        else:
            memberships = {}
        now = int(time.time() * 1000)
        out = []
        for event in events:
            unsigned: dict[str, Any] = {"age": max(0, now - int(event.json.get("origin_server_ts", now)))}
            if event.event_id in memberships:
                unsigned["membership"] = memberships[event.event_id]
            if event.txn_id and event.sender == user_id and event.device_id == device_id:
                unsigned["transaction_id"] = event.txn_id
            if event.replaces_state and event.replaces_state in extras:
                prev = extras[event.replaces_state]
                unsigned["replaces_state"] = prev.event_id
                unsigned["prev_content"] = prev.json.get("content", {})
                unsigned["prev_sender"] = prev.sender
            if event.redacted_by and event.redacted_by in extras:
                redaction = extras[event.redacted_by]
                unsigned["redacted_because"] = format_client_event(redaction.json, event_id=redaction.event_id,
                                                                   room_id=redaction.room_id,
                                                                   include_room_id=include_room_id)
            client_event = self._client_event(event, include_room_id)
            client_event["unsigned"] = unsigned
            out.append(client_event)
        # Most events have no children: one look-up here then spares bundle_relations' read.
        if bundle is False:
            return out
        if bundle is not True:
            pairs = [(e, c) for e, c in zip(events, out) if e.event_id in bundle]
            events, bundled = [e for e, _ in pairs], [c for _, c in pairs]
        else:
            bundled = out
        parents = [e.event_id for e in events if e.state_key is None]
        if len(parents) > MAX_CHILD_CHECK or (parents and event_store.has_children(self.db, parents)):
            await bundle_relations(self, events, bundled, user_id, device_id, include_room_id=include_room_id)
        return out

    async def memberships_at(self, user_id: str, events: list[StoredEvent], known: Mapping[str, StoredEvent],
                             latest_memberships: Mapping[str, tuple[str, str, int]]) -> dict[str, str]:
        """The user's membership at each event, that event's own change included ("leave" before
        any): event ID -> membership. Events after the user's latest member event of their room
        take its membership from one primary-key look-up (or from `latest_memberships`, unless an
        event here is a newer member event of the user's). Older ones walk the user's member
        events back (each names the one it replaced) through `known` (the events being served
        and those they replaced) and the event cache; a walk longer than MAX_MEMBERSHIP_WALK
        leaves the oldest events without the field, as the spec allows.

        Spec: client-server-api, ClientEvent `unsigned.membership` (v1.11).
        """
        rooms: dict[str, list[StoredEvent]] = {}
        for event in events:
            rooms.setdefault(event.room_id, []).append(event)
        found: dict[str, str] = {}
        for room_id, in_room in rooms.items():
            latest = latest_memberships.get(room_id)
            if latest is None or any(e.state_key == user_id and e.type == "m.room.member"
                                     and e.stream_ordering > latest[2] for e in in_room):
                latest = room_store.lookup_local_membership(self.db, user_id, room_id)
            if latest is None:
                found.update((e.event_id, "leave") for e in in_room)
                continue
            membership, event_id, position = latest
            oldest = min(e.stream_ordering for e in in_room)
            changes = [(position, membership)]          # newest first
            complete = True                             # reaches back to before the user's first member event
            member: StoredEvent | None = None           # the member event at `position`, once read
            while position > oldest:
                member = member or await self._known_event(event_id, known)
                if member is None or (member.replaces_state and len(changes) >= MAX_MEMBERSHIP_WALK):
                    complete = False
                    break
                if member.replaces_state is None:       # the user's first member event in the room
                    break
                member = await self._known_event(member.replaces_state, known)
                if member is None:
                    complete = False
                    break
                position = member.stream_ordering
                changes.append((position, str(content_of(member).get("membership", "leave"))))
            for event in in_room:
                at = next((m for p, m in changes if p <= event.stream_ordering), None)
                if at is not None or complete:
                    found[event.event_id] = at or "leave"
        return found

    async def _known_event(self, event_id: str, known: Mapping[str, StoredEvent]) -> StoredEvent | None:
        return known.get(event_id) or (await self.cache.events([event_id])).get(event_id)

    def _client_event(self, event: StoredEvent, include_room_id: bool) -> dict[str, Any]:
        """A fresh copy of the event's ClientEvent without `unsigned`, formatted once per event read.

        The entry is used only for the very StoredEvent it was made from: a redaction (or any new
        read of the row) gives a new StoredEvent, so a stale form is never returned.
        """
        key = (event.event_id, include_room_id)
        known = self._client_events.get(key)
        if known is not None and known[0] is event:
            return dict(known[1])
        base = format_client_event_base(event.json, event_id=event.event_id, room_id=event.room_id,
                                        include_room_id=include_room_id)
        self._client_events[key] = (event, base)
        if len(self._client_events) > MAX_CLIENT_EVENTS:
            self._client_events.pop(next(iter(self._client_events)))
        return dict(base)

    async def get_event(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        """Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}"."""
        await self.require_reader(user_id, room_id)
        event = await event_store.get_event(self.db, event_id)
        if event is None or event.room_id != room_id:
            raise NotFound("Event not found")
        if not await self.visible(user_id, [event]):
            raise NotFound("Event not found")
        return event

    async def readable_event(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        """`get_event`, with 404 for an event the user may not see whatever the reason, the room's
        too: the spec's one error for a single event read.

        Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}",
        "GET /_matrix/client/v3/events/{eventId}".
        """
        try:
            return await self.get_event(user_id, room_id, event_id)
        except Forbidden:
            raise NotFound("Event not found") from None

    async def current_state(self, user_id: str, room_id: str) -> list[StoredEvent]:
        """The state a member sees now, or the state when they left.

        Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/state".
        """
        limit = await self.require_reader(user_id, room_id)
        if limit is None:
            ids = await room_store.get_current_state_ids(self.db, room_id)
        else:
            local = await room_store.get_local_membership(self.db, user_id, room_id)
            leave = await event_store.get_event(self.db, local[1]) if local else None
            ids = await self.cache.group(leave.state_after) if leave else {}
        stored = await event_store.get_events(self.db, ids.values())
        return sorted(stored.values(), key=lambda e: e.stream_ordering)

    async def state_event(self, user_id: str, room_id: str, event_type: str, state_key: str) -> StoredEvent:
        """Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"."""
        for event in await self.current_state(user_id, room_id):
            if event.type == event_type and event.state_key == state_key:
                return event
        raise NotFound("Event not found")

    async def messages(self, user_id: str, room_id: str, *, from_token: str | None, to_token: str | None,
                       direction: str, limit: int, keep: Callable[[StoredEvent], bool] | None = None,
                       ) -> tuple[list[StoredEvent], StreamToken, StreamToken | None]:
        """One page of room history with the tokens around it.

        `keep`: a filter (the request's RoomEventFilter). The page is then filled with up to
        `limit` events that pass it, reading on through history (at most MAX_FILTER_SCAN events),
        as Synapse does, rather than answering pages that a rare event type leaves empty.
        Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/messages".
        """
        read_limit = await self.require_reader(user_id, room_id)
        limit = max(0, min(limit, MAX_PAGE))
        newest = await event_store.max_stream_ordering(self.db)
        start = StreamToken.parse(from_token) if from_token else StreamToken(events=0 if direction == "f" else newest)
        ceiling = newest if read_limit is None else min(newest, read_limit)
        backwards = direction == "b"
        if limit == 0:
            keep = None
        if backwards:
            low, high = (StreamToken.parse(to_token).events if to_token else 0), min(start.events, ceiling)
        else:
            low, high = start.events, min(StreamToken.parse(to_token).events if to_token else ceiling, ceiling)
        batch_size = limit if keep is None else max(limit, FILTER_BATCH)
        out: list[StoredEvent] = []
        scanned = 0
        while True:
            batch = await event_store.get_room_events(self.db, room_id, after=low, upto=high, limit=batch_size,
                                                      backwards=backwards)
            scanned += len(batch)
            visible = await self.visible(user_id, batch)
            if keep is None:
                out = visible
            else:
                shown = {e.event_id for e in visible}
                for n, event in enumerate(batch):
                    if event.event_id in shown and keep(event):
                        out.append(event)
                        if len(out) == limit:
                            batch = batch[:n + 1]          # the page ends here; the rest is for the next
                            break
            last = batch[-1].stream_ordering if batch else None
            more = last is not None and (len(batch) == batch_size or len(out) == limit)
            if keep is None or len(out) >= limit or not more or scanned >= MAX_FILTER_SCAN:
                break
            if backwards:
                high = last - 1
            else:
                low = last
        if backwards:
            end = start.with_events(last - 1) if more and last is not None else None
        else:
            end = start.with_events(last) if last is not None else None
        return out, start, end

    async def events_after(self, user_id: str, room_id: str, after: int, limit: int) -> tuple[list[StoredEvent], int]:
        """The room's events after stream position `after` that the user may see, oldest first, and
        the position read up to (a peek's next `from`).

        Spec: client-server-api, "GET /_matrix/client/v3/events" (peeking), "Room Previews".
        """
        read_limit = await self.require_reader(user_id, room_id)
        newest = await event_store.max_stream_ordering(self.db)
        top = newest if read_limit is None else min(newest, read_limit)
        if top <= after:
            return [], after
        events = await event_store.get_room_events(self.db, room_id, after=after, upto=top, limit=limit,
                                                   backwards=False)
        reached = events[-1].stream_ordering if len(events) == limit else top
        return await self.visible(user_id, events), reached

    async def context(self, user_id: str, room_id: str, event_id: str, limit: int) -> dict[str, Any]:
        """Events before and after one event, with the state at it.

        Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}".
        """
        event = await self.get_event(user_id, room_id, event_id)
        read_limit = await self.require_reader(user_id, room_id)
        limit = max(0, min(limit, MAX_PAGE))
        before_n, after_n = limit // 2, limit - limit // 2
        before = await event_store.get_room_events(self.db, room_id, after=0, upto=event.stream_ordering - 1,
                                                   limit=before_n, backwards=True)
        ceiling = await event_store.max_stream_ordering(self.db) if read_limit is None else read_limit
        after = await event_store.get_room_events(self.db, room_id, after=event.stream_ordering, upto=ceiling,
                                                  limit=after_n, backwards=False)
        before = await self.visible(user_id, before)
        after = await self.visible(user_id, after)
        start = StreamToken(events=(before[-1].stream_ordering if before else event.stream_ordering) - 1)
        end = StreamToken(events=after[-1].stream_ordering if after else event.stream_ordering)
        state_ids = await self.cache.group(event.state_before)
        state = await event_store.get_events(self.db, state_ids.values())
        return {"event": event, "events_before": before, "events_after": after, "start": start, "end": end,
                "state": sorted(state.values(), key=lambda e: e.stream_ordering)}

    async def members(self, user_id: str, room_id: str, *, at: str | None = None,
                      membership: str | None = None, not_membership: str | None = None) -> list[StoredEvent]:
        """Member events of the room, now or at a sync token.

        Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/members".
        """
        state = await self.current_state(user_id, room_id)
        if at is not None:
            position = StreamToken.parse(at).events
            read_limit = await self.require_reader(user_id, room_id)
            if read_limit is not None:      # a member who left sees no membership after they left
                position = min(position, read_limit)
            rows = await event_store.get_room_events(self.db, room_id, after=0, upto=position, limit=1, backwards=True)
            if rows:
                ids = await self.cache.group(rows[0].state_after)
                stored = await event_store.get_events(self.db, [e for (t, _), e in ids.items() if t == "m.room.member"])
                state = list(stored.values())
        members = [e for e in state if e.type == "m.room.member"]
        if membership:
            members = [e for e in members if e.json.get("content", {}).get("membership") == membership]
        if not_membership:
            members = [e for e in members if e.json.get("content", {}).get("membership") != not_membership]
        return members

    async def joined_members(self, user_id: str, room_id: str) -> dict[str, Any]:
        """Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/joined_members" (whose
        RoomMember names the field `display_name`, unlike the member event's `displayname`)."""
        membership, _ = await self.membership_window(user_id, room_id)
        if membership != "join":
            raise Forbidden(f"User {user_id} not in room {room_id}")
        room = await self.rs.require_room(room_id)
        joined: dict[str, Any] = {}
        for (event_type, member), pdu in room.state.items():
            if event_type == "m.room.member" and pdu.content.get("membership") == "join":
                joined[member] = {"display_name": pdu.content.get("displayname"),
                                  "avatar_url": pdu.content.get("avatar_url")}
        return {"joined": joined}


def content_of(event: StoredEvent) -> Mapping[str, Any]:
    content = event.json.get("content")
    return content if isinstance(content, dict) else {}
