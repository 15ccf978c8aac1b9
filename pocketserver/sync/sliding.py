"""Simplified sliding sync (MSC4186): lists of rooms sorted by recency, room subscriptions and
extensions, over per-connection state so that each `pos` only carries what changed.

A connection (user, device, conn_id) keeps its last few states in memory, one per `pos` handed out;
each holds the stream token it was computed at, the facts the lists sort and filter by, and what
was sent for each room. A new response starts from the state of the request's `pos` and reads
only the rows written since its token. Spec: MSC4186; see DESIGN.md, "Sync: streams and a notifier".
"""
from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pocketserver.errors import MatrixError
from pocketserver.roomserver.reads import RoomReader
from pocketserver.roomserver.visibility import StateCache
from pocketserver.storage import account_data as account_data_store
from pocketserver.storage import push as push_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage.events import StoredEvent
from pocketserver.sync import room_sections as sections
from pocketserver.sync.notifier import Notifier
from pocketserver.sync.room_sections import StateKey, Timeline
from pocketserver.sync.sliding_extensions import ExtensionScope, SlidingExtensions
from pocketserver.sync.sliding_lists import (ListConfig, RoomConfig, RoomFacts, SlidingRequest, dm_rooms_from, is_dm,
                                             listed, load_room_facts, matches_filters, parse_request, select_ranges,
                                             sort_rooms, update_room_facts)
from pocketserver.sync.sync import MAX_TIMEOUT_MS, SyncService, end_if_locked
from pocketserver.sync.tokens import StreamToken

MAX_CONNECTIONS = 256        # connections kept in memory (least recently used dropped first)
MAX_POSITIONS = 4            # states kept per connection: a retried or aborted request can reuse its pos
MAX_HEROES = 5
META_STATE_TYPES = ("m.room.name", "m.room.avatar", "m.room.member")
ConnKey = tuple[str, str, str]


class UnknownPos(MatrixError):
    """The `pos` is unknown or expired: the client starts a new connection (as Synapse)."""

    errcode, status = "M_UNKNOWN_POS", 400


@dataclass(frozen=True, slots=True)
class SentRoom:
    """What the client of a connection has of a room."""

    membership: str
    upto: int                       # the events position the client has the room up to
    config: RoomConfig              # the timeline limit and required_state it was last sent with
    lazy_members: frozenset[str]    # users whose member events were sent for "$LAZY"
    meta: Mapping[str, Any]         # name, avatar, heroes, counts, bump_stamp and is_dm as last sent


@dataclass(frozen=True, slots=True)
class ConnState:
    """One `pos` of a connection: never changed once stored, so an older pos can be retried."""

    token: StreamToken
    rooms: Mapping[str, RoomFacts]
    dm_rooms: frozenset[str]
    room_tags: Mapping[str, frozenset[str]]      # the user's tag names per room (m.tag)
    sent: Mapping[str, SentRoom]
    list_counts: Mapping[str, int]
    extension_scopes: Mapping[str, frozenset[str]]


@dataclass
class _Connection:
    serial: int
    states: OrderedDict[int, ConnState] = field(default_factory=OrderedDict)
    next_position: int = 1


class Connections:
    """Per-connection states in memory, bounded in connections and positions."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS, max_positions: int = MAX_POSITIONS) -> None:
        self._conns: OrderedDict[ConnKey, _Connection] = OrderedDict()
        self._boot = secrets.token_hex(4)       # a pos from before a restart is unknown, not misread
        self._serial = 0
        self._max_connections = max_connections
        self._max_positions = max_positions

    def open(self, key: ConnKey) -> _Connection:
        """A fresh connection (a request without `pos`), replacing the old one of the same key."""
        self._serial += 1
        conn = self._conns[key] = _Connection(self._serial)
        self._conns.move_to_end(key)
        while len(self._conns) > self._max_connections:
            self._conns.popitem(last=False)
        return conn

    def find(self, key: ConnKey, pos: str) -> tuple[_Connection, ConnState]:
        parts = pos.split("_")
        conn = self._conns.get(key)
        if len(parts) != 3 or parts[0] != self._boot or conn is None or parts[1] != str(conn.serial) \
                or not (parts[2].isascii() and parts[2].isdigit()) or int(parts[2]) not in conn.states:
            raise UnknownPos("Unknown or expired position; start a new connection")
        position = int(parts[2])
        for older in [n for n in conn.states if n < position]:     # the client has moved past them
            del conn.states[older]
        self._conns.move_to_end(key)
        return conn, conn.states[position]

    def store(self, key: ConnKey, conn: _Connection, state: ConnState) -> str:
        """Keep `state` and return its pos; a connection replaced meanwhile gets a pos nobody knows."""
        position = conn.next_position
        conn.next_position += 1
        if self._conns.get(key) is conn:
            conn.states[position] = state
            while len(conn.states) > self._max_positions:
                conn.states.popitem(last=False)
        return f"{self._boot}_{conn.serial}_{position}"


class SlidingSyncService:
    """Computes sliding sync responses and long-polls on the notifier."""

    def __init__(self, reader: RoomReader, notifier: Notifier, sync: SyncService,
                 extensions: SlidingExtensions) -> None:
        self._reader = reader
        self._db = reader.db
        self._notifier = notifier
        self._sync = sync
        self._extensions = extensions
        self.connections = Connections()

    async def sliding_sync(self, user_id: str, device_id: str, *, pos: str | None, timeout_ms: int,
                           body: Mapping[str, Any]) -> dict[str, Any]:
        """Spec: MSC4186, "POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync"."""
        request = parse_request(body)
        key = (user_id, device_id, request.conn_id)
        if pos:
            conn, base = self.connections.find(key, pos)
        else:
            conn, base = self.connections.open(key), None
        deadline = time.monotonic() + max(0, min(timeout_ms, MAX_TIMEOUT_MS)) / 1000
        while True:
            waiter = self._notifier.register(user_id, base.rooms if base is not None else ())
            try:
                now = self._sync.current_token()
                response, state, empty = await self._compute(user_id, device_id, request, base, now)
                remaining = deadline - time.monotonic()
                if not empty or base is None or remaining <= 0 or not await self._notifier.wait(waiter, remaining):
                    break
                if waiter.user_woken:
                    end_if_locked(self._reader.db, user_id)
            finally:
                self._notifier.unregister(waiter)
        return {"pos": self.connections.store(key, conn, state), **response}

    async def _compute(self, user_id: str, device_id: str, request: SlidingRequest, base: ConnState | None,
                       now: StreamToken) -> tuple[dict[str, Any], ConnState, bool]:
        since = base.token if base is not None else None
        changes: list[tuple[str, str, Any]] | None = None
        if base is None:
            facts = await load_room_facts(self._reader, user_id, now)
            dm_rooms = dm_rooms_from(await account_data_store.get_account_data(self._db, user_id, "", "m.direct"))
            room_tags: Mapping[str, frozenset[str]] = await account_data_store.get_room_tags(self._db, user_id)
        else:
            facts, _ = await update_room_facts(self._reader, user_id, base.rooms, base.token, now)
            changes = await account_data_store.get_account_data_since(self._db, user_id, base.token.account_data,
                                                                      now.account_data)
            dm_rooms, room_tags = base.dm_rooms, base.room_tags
            for room_id, data_type, content in changes:
                if room_id == "" and data_type == "m.direct":
                    dm_rooms = dm_rooms_from(content)
                elif room_id and data_type == "m.tag":
                    room_tags = {**room_tags, room_id: account_data_store.tag_names(content)}
        ignored = await self._reader.ignored.of(user_id)
        lists, list_rooms, configs = self._lists(request.lists, facts, dm_rooms, room_tags, since, ignored)
        subscriptions = [r for r in request.room_subscriptions if r in facts]
        for room_id in subscriptions:
            config = request.room_subscriptions[room_id]
            configs[room_id] = configs[room_id].merge(config) if room_id in configs else config
        unread = push_store.get_unread(self._db, user_id, configs)
        sent = dict(base.sent) if base is not None else {}
        whole = {r: c for r, c in configs.items() if _sent_whole(facts[r], sent.get(r))}
        timelines, state_ids = await self._read_together(user_id, whole, facts, now)
        rooms: dict[str, Any] = {}
        for room_id, config in configs.items():
            ctx = _RoomContext(user_id, device_id, facts[room_id], config, since, now,
                               is_dm(facts[room_id], dm_rooms), _counts(unread.get(room_id, {})),
                               timelines.get(room_id), state_ids.get(room_id))
            entry, sent[room_id] = await self._room(ctx, sent.get(room_id))
            if entry is not None:
                rooms[room_id] = entry
        scope = ExtensionScope(list_rooms, subscriptions, {r: f.membership for r, f in facts.items()})
        extensions = await self._extensions.compute(user_id, device_id, request.extensions, since, now, scope, changes,
                                                    base.extension_scopes if base is not None else {})
        counts = {name: body["count"] for name, body in lists.items()}
        empty = not rooms and not extensions.news and base is not None and counts == dict(base.list_counts)
        state = ConnState(now, facts, dm_rooms, room_tags, sent, counts, extensions.scopes)
        return {"lists": lists, "rooms": rooms, "extensions": extensions.body}, state, empty

    async def _read_together(self, user_id: str, rooms: Mapping[str, RoomConfig], facts: Mapping[str, RoomFacts],
                             now: StreamToken) -> tuple[dict[str, Timeline], dict[str, dict[StateKey, str]]]:
        """For the rooms a response sends whole: their timelines, the current state of the joined
        ones (read for the rooms the roomserver does not hold), and the events and contents these
        name, each read for all the rooms at once. A room list growing 100 rooms a request
        otherwise reads room by room."""
        by_limit: dict[int, dict[str, tuple[int, int]]] = {}
        for room_id, config in rooms.items():
            by_limit.setdefault(config.timeline_limit, {})[room_id] = (0, facts[room_id].visible_upto or now.events)
        timelines: dict[str, Timeline] = {}
        for limit, ranges in by_limit.items():
            timelines.update(await sections.load_timelines(self._reader, user_id, ranges, limit=limit,
                                                           timeline_filter=None))
        held = {r: self._reader.rs.cached_room_state(r) for r in rooms if facts[r].visible_upto is None}
        uncached = [r for r, room in held.items() if room is None]
        state_ids = await room_store.get_current_state_ids_of(self._db, uncached) if uncached else {}
        wanted: list[str] = []
        contents: list[str] = []
        for room_id, room in held.items():
            ids = state_ids[room_id] if room is None else state_ids.setdefault(room_id, room.state_ids())
            wanted += (ids[k] for k in _required_keys(rooms[room_id], user_id, ids, timelines[room_id]))
            if room is None:
                contents += (event_id for k, event_id in ids.items() if k[0] in META_STATE_TYPES)
        if wanted:
            await self._reader.cache.events(wanted)
        if contents:
            await self._reader.cache.contents(contents)
        return timelines, state_ids

    @staticmethod
    def _lists(requested: Mapping[str, ListConfig], facts: Mapping[str, RoomFacts], dm_rooms: frozenset[str],
               room_tags: Mapping[str, frozenset[str]], since: StreamToken | None,
               ignored: frozenset[str]) -> tuple[dict[str, Any], dict[str, list[str]], dict[str, RoomConfig]]:
        """Each list's count and the rooms its ranges select, sorted by recency; invites from ignored
        users left out. Spec: MSC4186, "Lists"; client-server-api, "Ignoring Users"."""
        candidates = sort_rooms(f for f in facts.values() if listed(f, since) and f.inviter not in ignored)
        lists: dict[str, Any] = {}
        list_rooms: dict[str, list[str]] = {}
        configs: dict[str, RoomConfig] = {}
        for name, config in requested.items():
            ordered = [f.room_id for f in candidates if matches_filters(f, config.filters, dm_rooms, facts, room_tags)]
            lists[name] = {"count": len(ordered)}
            list_rooms[name] = select_ranges(ordered, config.ranges)
            for room_id in list_rooms[name]:
                configs[room_id] = configs[room_id].merge(config.room) if room_id in configs else config.room
        return lists, list_rooms, configs

    async def _room(self, ctx: "_RoomContext", sent: SentRoom | None) -> tuple[dict[str, Any] | None, SentRoom]:
        """A room's entry (None when nothing changed for it) and the record of what the client now has."""
        facts = ctx.facts
        if facts.membership in ("invite", "knock"):
            # Sent already, unless it is another invite or knock since (one rejected and made again).
            if sent is not None and sent.membership == facts.membership and sent.upto == facts.member_pos:
                return None, sent
            return await self._stripped_room(ctx)
        if sent is not None and sent.membership == "join" and facts.membership in ("leave", "ban"):
            # Left, kicked or banned: what happened since, up to the leave, to a room the client has.
            # Synapse sends `initial` only for a room never sent or newly joined.
            return await self._incremental_room(ctx, sent, False)
        if sent is None or sent.membership != facts.membership:
            return await self._full_room(ctx, initial=True)
        if not ctx.config.required_state <= sent.config.required_state:
            return await self._full_room(ctx, initial=False, sent=sent)
        expand = ctx.config.timeline_limit > sent.config.timeline_limit
        if facts.last_event_pos <= sent.upto and not expand and ctx.counts == _sent_counts(sent) \
                and facts.bump_stamp == sent.meta.get("bump_stamp") and ctx.is_dm == sent.meta.get("is_dm", False):
            return None, replace(sent, config=ctx.config)
        return await self._incremental_room(ctx, sent, expand)

    async def _full_room(self, ctx: "_RoomContext", *, initial: bool,
                         sent: SentRoom | None = None) -> tuple[dict[str, Any], SentRoom]:
        """Timeline and all required state: a room new to the connection, or one whose required_state grew."""
        facts, config = ctx.facts, ctx.config
        upto = facts.visible_upto or ctx.now.events
        expand = sent is not None and config.timeline_limit > sent.config.timeline_limit
        if sent is None and ctx.timeline is not None:
            timeline = ctx.timeline
        else:
            timeline = await self._timeline(ctx, after=0 if sent is None or expand else sent.upto, upto=upto)
        state_ids = ctx.state_ids if ctx.state_ids is not None else await self._state_ids(facts)
        lazy = frozenset(e.sender for e in timeline.events) if config.lazy_members else frozenset()
        keys = _required_keys(config, ctx.user_id, state_ids, timeline)
        required = await _events_in_order(self._reader.cache, (state_ids[k] for k in keys))
        meta = _room_meta(await self._meta_contents(facts, state_ids), ctx)
        entry: dict[str, Any] = {**({"initial": True} if initial else {}), **_visible_meta(meta)}
        if expand:
            entry["unstable_expanded_timeline"] = True
        await self._add_events(entry, ctx, timeline, required)
        lazy_sent = lazy | (sent.lazy_members if sent is not None else frozenset())
        return entry, SentRoom(facts.membership, upto, config, lazy_sent, meta)

    async def _incremental_room(self, ctx: "_RoomContext", sent: SentRoom,
                                expand: bool) -> tuple[dict[str, Any] | None, SentRoom]:
        """What changed since the client last had the room: new events, state they skipped, changed meta."""
        facts, config = ctx.facts, ctx.config
        upto = facts.visible_upto or ctx.now.events
        new_events = facts.last_event_pos > sent.upto
        timeline = await self._timeline(ctx, after=0 if expand else sent.upto, upto=upto) \
            if new_events or expand else Timeline([], False, upto)
        state_ids: dict[StateKey, str] = {}
        changed_keys: list[StateKey] = []
        if new_events or timeline.events:
            state_ids = await self._state_ids(facts)
            changed_keys = await self._changed_state(ctx, sent, timeline, state_ids) if new_events else []
        lazy = frozenset()
        if config.lazy_members:
            lazy = frozenset(e.sender for e in timeline.events) - sent.lazy_members
            changed_keys += [("m.room.member", u) for u in lazy if ("m.room.member", u) in state_ids]
        required = await _events_in_order(self._reader.cache, (state_ids[k] for k in dict.fromkeys(changed_keys)))
        meta = dict(sent.meta)
        if new_events:
            meta.update(_room_meta(await self._meta_contents(facts, state_ids), ctx))
        meta.update(_live_meta(ctx))
        entry = {k: v for k, v in _visible_meta(meta).items() if sent.meta.get(k) != v}
        for always in ("notification_count", "highlight_count"):
            entry[always] = meta[always]
        if ctx.is_dm:
            entry["is_dm"] = True
        if expand:
            entry["unstable_expanded_timeline"] = True
        if not timeline.events and not required and set(entry) <= {"notification_count", "highlight_count", "is_dm"} \
                and _sent_counts(sent) == ctx.counts:
            return None, replace(sent, upto=upto, config=config, meta=meta)
        await self._add_events(entry, ctx, timeline, required)
        return entry, SentRoom(facts.membership, upto, config, sent.lazy_members | lazy, meta)

    async def _changed_state(self, ctx: "_RoomContext", sent: SentRoom, timeline: Timeline,
                             state_ids: Mapping[StateKey, str]) -> list[StateKey]:
        """The entries of current state that changed since the client last had the room and that it
        asks for: in `required_state` even when the timeline carries them too, as MSC4186 says
        ("Changes in the current state of the room") and Synapse does; clients of sliding sync
        take the room's state from required_state, not from the timeline.

        With lazy members, every membership change is sent when the timeline is whole ("All
        membership updates since the last sync when limited is false"), and when it is not, the
        changes of members the client was sent before.
        """
        config, user_id = ctx.config, ctx.user_id
        if timeline.limited:
            # Some changes fell out of the timeline: compare with the state the client had.
            before = await sections.state_at(self._reader, ctx.facts.room_id, sent.upto)
            return [k for k, v in state_ids.items() if before.get(k) != v and (
                config.wants(k, user_id) or (config.lazy_members and k[0] == "m.room.member"
                                             and k[1] in sent.lazy_members))]
        # Every event since is in the timeline: its state events that are still current.
        keys = []
        for event in timeline.events:
            if event.state_key is None or event.stream_ordering <= sent.upto:
                continue
            key = (event.type, event.state_key)
            if state_ids.get(key) == event.event_id and (
                    config.wants(key, user_id) or (config.lazy_members and event.type == "m.room.member")):
                keys.append(key)
        return keys

    async def _stripped_room(self, ctx: "_RoomContext") -> tuple[dict[str, Any], SentRoom]:
        """An invite or knock: stripped state, and the name, avatar and heroes it shows.

        Spec: MSC4186 ("invite_state"), client-server-api, "Stripped state".
        """
        facts = ctx.facts
        stripped = await sections.stripped_state(self._reader, facts.room_id, facts.member_event_id)
        contents = {(e["type"], e.get("state_key", "")): e.get("content", {}) for e in stripped
                    if e.get("type") in META_STATE_TYPES}
        meta = _room_meta(contents, ctx)
        meta.pop("joined_count", None)
        meta.pop("invited_count", None)
        entry = {"initial": True, **_visible_meta(meta), "invite_state": stripped}
        return entry, SentRoom(facts.membership, facts.member_pos, ctx.config, frozenset(), meta)

    async def _timeline(self, ctx: "_RoomContext", *, after: int, upto: int) -> Timeline:
        return await sections.load_timeline(self._reader, ctx.user_id, ctx.facts.room_id, after=after, upto=upto,
                                            limit=ctx.config.timeline_limit, timeline_filter=None)

    async def _add_events(self, entry: dict[str, Any], ctx: "_RoomContext", timeline: Timeline,
                          required: list[StoredEvent]) -> None:
        """timeline, required_state, limited, prev_batch and num_live. Spec: MSC4186, "Room response"."""
        serialize = self._reader.serialize
        if required:
            entry["required_state"] = await serialize(required, ctx.user_id, ctx.device_id, include_room_id=False,
                                                      bundle=False)
        if timeline.events:
            # Bundled aggregations as /v3/sync has them: when the timeline is limited (MSC4186).
            entry["timeline"] = await serialize(timeline.events, ctx.user_id, ctx.device_id, include_room_id=False,
                                                bundle=timeline.limited)
        entry["limited"] = timeline.limited
        entry["prev_batch"] = ctx.now.with_events(timeline.start_position).serialize()
        since = ctx.since.events if ctx.since is not None else None
        entry["num_live"] = 0 if since is None else sum(e.stream_ordering > since for e in timeline.events)

    async def _state_ids(self, facts: RoomFacts) -> dict[StateKey, str]:
        """Current state while joined, else the state at the membership event.

        A joined room's current state comes from the roomserver's memory when it holds the room,
        else from the current_state table: a room list growing over hundreds of rooms would
        otherwise load (and parse) every room's state and push out the rooms in use.
        """
        if facts.visible_upto is None:
            room = self._reader.rs.cached_room_state(facts.room_id)
            if room is not None:
                return room.state_ids()
            return await room_store.get_current_state_ids(self._db, facts.room_id)
        return await sections.state_at(self._reader, facts.room_id, facts.visible_upto or facts.last_event_pos)

    async def _meta_contents(self, facts: RoomFacts, state_ids: Mapping[StateKey, str]) -> dict[StateKey, Any]:
        """Content of the name, avatar and member events the room's meta is computed from."""
        if facts.visible_upto is None:
            room = self._reader.rs.cached_room_state(facts.room_id)
            if room is not None:
                return {k: pdu.content for k, pdu in room.state.items() if k[0] in META_STATE_TYPES}
        ids = {k: v for k, v in state_ids.items() if k[0] in META_STATE_TYPES}
        contents = await self._reader.cache.contents(ids.values())
        return {k: contents[v] for k, v in ids.items() if v in contents}


@dataclass(frozen=True, slots=True)
class _RoomContext:
    user_id: str
    device_id: str
    facts: RoomFacts
    config: RoomConfig
    since: StreamToken | None
    now: StreamToken
    is_dm: bool
    counts: tuple[int, int]         # (notification_count, highlight_count)
    timeline: Timeline | None = None                  # read beforehand, for a room sent whole
    state_ids: Mapping[StateKey, str] | None = None   # its current state, when read beforehand


def _sent_whole(facts: RoomFacts, sent: SentRoom | None) -> bool:
    """Whether `_room` sends the room from scratch: new to the connection, or its membership changed."""
    return facts.membership not in ("invite", "knock") and (sent is None or sent.membership != facts.membership)


def _required_keys(config: RoomConfig, user_id: str, state_ids: Mapping[StateKey, str],
                   timeline: Timeline) -> list[StateKey]:
    """The state a whole room is sent with: what required_state asks for, and with "$LAZY" the
    member events of the timeline's senders."""
    keys = [k for k in state_ids if config.wants(k, user_id)]
    if config.lazy_members:
        keys += [("m.room.member", u) for u in {e.sender for e in timeline.events} if ("m.room.member", u) in state_ids]
    return keys


def _counts(threads: Mapping[str, tuple[int, int]]) -> tuple[int, int]:
    """Unread counts of a room over all its threads, as /sync's unthreaded unread_notifications."""
    return sum(c[0] for c in threads.values()), sum(c[1] for c in threads.values())


def _sent_counts(sent: SentRoom) -> tuple[int, int]:
    return sent.meta.get("notification_count", 0), sent.meta.get("highlight_count", 0)


def _live_meta(ctx: _RoomContext) -> dict[str, Any]:
    return {"bump_stamp": ctx.facts.bump_stamp, "notification_count": ctx.counts[0],
            "highlight_count": ctx.counts[1], "is_dm": ctx.is_dm}


def _room_meta(contents: Mapping[StateKey, Any], ctx: _RoomContext) -> dict[str, Any]:
    """name, avatar, heroes (when the room has no name) and member counts, from state content.

    Spec: MSC4186, "Room response"; client-server-api, "Calculating the display name for a room".
    """
    name = contents.get(("m.room.name", ""), {}).get("name")
    avatar = contents.get(("m.room.avatar", ""), {}).get("url")
    joined, invited, others, gone = 0, 0, [], []
    for (event_type, member), content in contents.items():
        if event_type != "m.room.member":
            continue
        membership = content.get("membership")
        joined += membership == "join"
        invited += membership == "invite"
        if member != ctx.user_id:
            (others if membership in ("join", "invite") else gone).append(member)
    meta: dict[str, Any] = {"joined_count": joined, "invited_count": invited, **_live_meta(ctx)}
    if isinstance(name, str) and name:
        meta["name"] = name
    else:
        heroes = []
        for user in sorted(others or gone)[:MAX_HEROES]:
            content = contents.get(("m.room.member", user), {})
            hero = {"user_id": user}
            for field_name in ("displayname", "avatar_url"):
                if isinstance(content.get(field_name), str):
                    hero[field_name] = content[field_name]
            heroes.append(hero)
        meta["heroes"] = heroes
    if isinstance(avatar, str) and avatar:
        meta["avatar"] = avatar
    return meta


def _visible_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The meta fields as sent: is_dm only when true, no empty heroes."""
    return {k: v for k, v in meta.items() if not (k == "is_dm" and not v) and not (k == "heroes" and not v)}


async def _events_in_order(cache: StateCache, event_ids: Iterable[str]) -> list[StoredEvent]:
    """The events, oldest first; the ones read recently (members, room names) from memory."""
    return sorted((await cache.events(event_ids)).values(), key=lambda e: e.stream_ordering)
