"""Simplified sliding sync (MSC4186): the request's lists and room subscriptions, the facts each room
is filtered and sorted by, and the rooms each list's ranges select.

Spec: MSC4186 (simplified sliding sync), "Lists", "Room subscriptions", "Filters"; sorting by
recency (`bump_stamp`) as Synapse does.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pocketserver.errors import BadJson, InvalidParam
from pocketserver.roomserver.reads import RoomReader
from pocketserver.storage import events as event_store
from pocketserver.storage import rooms as room_store
from pocketserver.sync.tokens import StreamToken

WILDCARD, LAZY, ME = "*", "$LAZY", "$ME"
# Event types that move a room up the list (Synapse's DEFAULT_BUMP_EVENT_TYPES).
BUMP_EVENT_TYPES = ("m.room.create", "m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite",
                    "m.poll.start", "m.beacon_info")
MAX_TIMELINE_LIMIT = 1000
MAX_LISTS = 100
LISTED_MEMBERSHIPS = ("join", "invite", "knock", "leave", "ban")


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """What to send for a room: how many timeline events and which state."""

    timeline_limit: int
    required_state: frozenset[tuple[str, str]]

    def merge(self, other: "RoomConfig") -> "RoomConfig":
        """A room in several lists (or also subscribed) gets the union of what they ask for."""
        return RoomConfig(max(self.timeline_limit, other.timeline_limit), self.required_state | other.required_state)

    @property
    def lazy_members(self) -> bool:
        return ("m.room.member", LAZY) in self.required_state

    def wants(self, key: tuple[str, str], user_id: str) -> bool:
        """Whether the state entry `key` is asked for ("*" matches any type or key, "$ME" the user)."""
        event_type, state_key = key
        for want_type, want_key in self.required_state:
            if want_type not in (WILDCARD, event_type):
                continue
            if want_key in (WILDCARD, state_key) or (want_key == ME and state_key == user_id):
                return True
        return False


@dataclass(frozen=True, slots=True)
class ListConfig:
    ranges: tuple[tuple[int, int], ...]
    room: RoomConfig
    filters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SlidingRequest:
    conn_id: str
    lists: Mapping[str, ListConfig]
    room_subscriptions: Mapping[str, RoomConfig]
    extensions: Mapping[str, Any]


def parse_request(body: Mapping[str, Any]) -> SlidingRequest:
    """Check and type the request body. Spec: MSC4186, "Request body"."""
    conn_id = body.get("conn_id", "")
    if conn_id is None:
        conn_id = ""
    if not isinstance(conn_id, str) or len(conn_id) > 255:
        raise InvalidParam("conn_id must be a string of at most 255 characters")
    lists = _object(body, "lists")
    if len(lists) > MAX_LISTS:
        raise InvalidParam(f"At most {MAX_LISTS} lists")
    parsed_lists = {name: _parse_list(name, value) for name, value in lists.items()}
    subscriptions = {room_id: _parse_room_config(f"room_subscriptions.{room_id}", value)
                     for room_id, value in _object(body, "room_subscriptions").items()}
    extensions = _object(body, "extensions")
    for name, value in extensions.items():
        if not isinstance(value, dict):
            raise BadJson(f"extensions.{name} must be an object")
    return SlidingRequest(conn_id, parsed_lists, subscriptions, extensions)


def _object(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadJson(f"{key} must be an object")
    return value


def _parse_list(name: str, value: Any) -> ListConfig:
    if not isinstance(value, dict):
        raise BadJson(f"lists.{name} must be an object")
    ranges = value.get("ranges", [])
    if not isinstance(ranges, list) or not all(
            isinstance(r, list) and len(r) == 2 and all(isinstance(i, int) and not isinstance(i, bool) for i in r)
            and 0 <= r[0] <= r[1] for r in ranges):
        raise InvalidParam(f"lists.{name}.ranges must be a list of [start, end] pairs with 0 <= start <= end")
    filters = value.get("filters") or {}
    if not isinstance(filters, dict):
        raise BadJson(f"lists.{name}.filters must be an object")
    return ListConfig(tuple((r[0], r[1]) for r in ranges), _parse_room_config(f"lists.{name}", value), filters)


def _parse_room_config(where: str, value: Any) -> RoomConfig:
    if not isinstance(value, dict):
        raise BadJson(f"{where} must be an object")
    limit = value.get("timeline_limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise InvalidParam(f"{where}.timeline_limit must be a non-negative integer")
    required = value.get("required_state", [])
    if not isinstance(required, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in required):
        raise InvalidParam(f"{where}.required_state must be a list of [type, state_key] pairs")
    return RoomConfig(min(limit, MAX_TIMELINE_LIMIT), frozenset((p[0], p[1]) for p in required))


@dataclass(frozen=True, slots=True)
class RoomFacts:
    """What lists filter and sort a room by, kept per connection and refreshed from what changed."""

    room_id: str
    membership: str
    member_event_id: str
    member_pos: int              # stream position of the user's membership event
    self_left: bool              # the user left by themselves (listed only just after leaving)
    bump_stamp: int
    last_event_pos: int          # newest event the user can see (for non-members: their membership event)
    room_type: str | None
    encrypted: bool
    invite_is_direct: bool
    space_children: frozenset[str]
    inviter: str | None = None   # who sent the user's invite (an ignored user's invite is not listed)

    @property
    def visible_upto(self) -> int | None:
        """Position the user may read up to; None while joined."""
        return None if self.membership == "join" else self.member_pos


async def load_room_facts(reader: RoomReader, user_id: str, now: StreamToken) -> dict[str, RoomFacts]:
    """Facts of every room the user has a membership in (a new connection's one full read)."""
    rows = await room_store.get_rooms_for_user(reader.db, user_id, LISTED_MEMBERSHIPS)
    return await _facts_for(reader, user_id, {r: v for r, v in rows.items() if v[2] <= now.events}, now.events)


async def update_room_facts(reader: RoomReader, user_id: str, facts: Mapping[str, RoomFacts], since: StreamToken,
                            now: StreamToken) -> tuple[dict[str, RoomFacts], dict[str, int]]:
    """Facts refreshed from the changes in (since, now]; also returns the rooms with new events.

    Reads only the rows written since the token, so the cost follows what changed.
    """
    out = dict(facts)
    changed = await event_store.get_rooms_with_events(reader.db, since.events, now.events)
    memberships = await room_store.get_memberships_since(reader.db, user_id, since.events, now.events)
    memberships = {r: v for r, v in memberships.items() if v[0] in LISTED_MEMBERSHIPS}
    out.update(await _facts_for(reader, user_id, memberships, now.events))
    touched = [r for r in changed if r in out and r not in memberships and out[r].membership == "join"]
    if touched:
        bumps = await event_store.get_rooms_with_events(reader.db, since.events, now.events, BUMP_EVENT_TYPES)
        for room_id in touched:
            room = await reader.rs.get_room_state(room_id)
            old = out[room_id]
            out[room_id] = replace(old, last_event_pos=max(old.last_event_pos, changed[room_id]),
                                   bump_stamp=max(old.bump_stamp, bumps.get(room_id, 0)),
                                   encrypted=_encrypted(room), space_children=_space_children(room))
    return out, changed


async def _facts_for(reader: RoomReader, user_id: str, rows: Mapping[str, tuple[str, str, int]],
                     upto: int) -> dict[str, RoomFacts]:
    member_ids = [event_id for membership, event_id, _ in rows.values() if membership != "join"]
    members = await event_store.get_events(reader.db, member_ids) if member_ids else {}
    # One read for every room: a user in more rooms than the roomserver keeps would otherwise load
    # each room's whole state, evicting the next one's (measured: 400 rooms took ~0.9 s).
    kinds = await room_store.get_room_kinds(reader.db, list(rows)) if rows else {}
    out: dict[str, RoomFacts] = {}
    for room_id, (membership, event_id, member_pos) in rows.items():
        room_type, encryption_pos = kinds.get(room_id, (None, None))
        # Spaces are few; their children come from the room's state.
        space = await reader.rs.get_room_state(room_id) if room_type == "m.space" else None
        member = members.get(event_id)
        encrypted = encryption_pos is not None
        if encrypted and membership != "join" and encryption_pos > member_pos:
            # Encryption (re)set after the user's membership event: what counts is whether the room
            # was encrypted then, as Synapse filters on its membership snapshots.
            then = await reader.cache.group(member.state_after) if member is not None else {}
            encrypted = ("m.room.encryption", "") in then
        content = member.json.get("content", {}) if member else {}
        if membership == "join":
            found = event_store.get_latest_position(reader.db, room_id, upto, BUMP_EVENT_TYPES)
            bump = member_pos if found is None else found
            found = event_store.get_latest_position(reader.db, room_id, upto)
            last = member_pos if found is None else found
        else:
            # Invited, knocking or gone: nothing after the membership event is theirs to see (as Synapse).
            bump = last = member_pos
        out[room_id] = RoomFacts(
            room_id, membership, event_id, member_pos,
            self_left=membership == "leave" and member is not None and member.sender == user_id,
            bump_stamp=bump, last_event_pos=last,
            room_type=room_type, encrypted=encrypted,
            invite_is_direct=membership == "invite" and content.get("is_direct") is True,
            space_children=_space_children(space),
            inviter=member.sender if membership == "invite" and member is not None else None)
    return out


def _room_type(room: Any) -> str | None:
    value = room.create.content.get("type") if room is not None else None
    return value if isinstance(value, str) else None


def _encrypted(room: Any) -> bool:
    return room is not None and ("m.room.encryption", "") in room.state


def _space_children(room: Any) -> frozenset[str]:
    if room is None or _room_type(room) != "m.space":
        return frozenset()
    return frozenset(key for (t, key), pdu in room.state.items()
                     if t == "m.space.child" and isinstance(pdu.content.get("via"), list) and pdu.content["via"])


def dm_rooms_from(direct: Any) -> frozenset[str]:
    """Room IDs named in m.direct account data. Spec: client-server-api, "Direct Messaging"."""
    if not isinstance(direct, dict):
        return frozenset()
    return frozenset(r for rooms in direct.values() if isinstance(rooms, list) for r in rooms if isinstance(r, str))


def is_dm(facts: RoomFacts, dm_rooms: frozenset[str]) -> bool:
    return facts.room_id in dm_rooms or facts.invite_is_direct


def listed(facts: RoomFacts, since: StreamToken | None) -> bool:
    """Rooms left by the user themselves are listed once, just after leaving (kicks and bans stay)."""
    return not facts.self_left or (since is not None and facts.member_pos > since.events)


def matches_filters(facts: RoomFacts, filters: Mapping[str, Any], dm_rooms: frozenset[str],
                    all_facts: Mapping[str, RoomFacts], room_tags: Mapping[str, frozenset[str]]) -> bool:
    """Spec: MSC4186, "Filters" (is_dm, spaces, is_encrypted, is_invite, room_types, not_room_types,
    tags and not_tags: a room with any of `tags`, and none of `not_tags`, which takes priority)."""
    if "is_dm" in filters and filters["is_dm"] is not None and bool(filters["is_dm"]) != is_dm(facts, dm_rooms):
        return False
    if "is_encrypted" in filters and filters["is_encrypted"] is not None \
            and bool(filters["is_encrypted"]) != facts.encrypted:
        return False
    if "is_invite" in filters and filters["is_invite"] is not None \
            and bool(filters["is_invite"]) != (facts.membership == "invite"):
        return False
    room_types = filters.get("room_types")
    if isinstance(room_types, list) and facts.room_type not in room_types:
        return False
    not_room_types = filters.get("not_room_types")
    if isinstance(not_room_types, list) and facts.room_type in not_room_types:
        return False
    tags = room_tags.get(facts.room_id, frozenset())
    not_tags = filters.get("not_tags")
    if isinstance(not_tags, list) and tags.intersection(t for t in not_tags if isinstance(t, str)):
        return False
    wanted_tags = filters.get("tags")
    if isinstance(wanted_tags, list) and not tags.intersection(t for t in wanted_tags if isinstance(t, str)):
        return False
    spaces = filters.get("spaces")
    if isinstance(spaces, list):
        parents = [all_facts.get(s) for s in spaces if isinstance(s, str)]
        if not any(p is not None and p.membership == "join" and facts.room_id in p.space_children for p in parents):
            return False
    return True


def sort_rooms(rooms: Iterable[RoomFacts]) -> list[RoomFacts]:
    """Most recent first by bump_stamp; the room ID breaks ties so the order is stable."""
    return sorted(rooms, key=lambda f: (-f.bump_stamp, f.room_id))


def select_ranges(ordered: list[str], ranges: Iterable[tuple[int, int]]) -> list[str]:
    """The room IDs at the (inclusive) ranges' indexes, each once, in list order."""
    chosen: dict[str, None] = {}
    for start, end in ranges:
        for room_id in ordered[start:end + 1]:
            chosen[room_id] = None
    return list(chosen)
