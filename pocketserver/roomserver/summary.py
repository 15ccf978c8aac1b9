"""Room summaries (for the room directory, previews and spaces) and the space hierarchy.

Spec: client-server-api, "GET /_matrix/client/v1/room_summary/{roomIdOrAlias}",
"GET /_matrix/client/v1/rooms/{roomId}/hierarchy", "Spaces"; MSC3266.
"""
from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pocketserver.errors import Forbidden, InvalidParam, NotFound
from pocketserver.rooms.events import Pdu
from pocketserver.roomserver import RoomServer
from pocketserver.roomserver.room_state import RoomState
from pocketserver.storage import rooms as room_store

HIERARCHY_MAX_LIMIT = 50          # rooms per page, as Synapse
MAX_CHILDREN_PER_SPACE = 50       # m.space.child events read per space, as Synapse
SESSION_TTL_S = 5 * 60
MAX_SESSIONS = 256


def _content(room: RoomState, event_type: str) -> Mapping[str, Any]:
    event = room.state.get((event_type, ""))
    return event.content if event is not None else {}


def _plain_topic(content: Mapping[str, Any]) -> str | None:
    """The plain text topic: `topic`, else the text/plain block of `m.topic`.

    Spec: client-server-api, "m.room.topic".
    """
    topic = content.get("topic")
    if isinstance(topic, str):
        return topic
    blocks = content.get("m.topic", {}).get("m.text") if isinstance(content.get("m.topic"), Mapping) else None
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, Mapping) and block.get("mimetype", "text/plain") == "text/plain" \
                and isinstance(block.get("body"), str):
            return block["body"]
    return None


# The state a directory entry is made from (PublishedRoomsChunk), all with state_key "".
DIRECTORY_STATE_TYPES = ("m.room.create", "m.room.name", "m.room.topic", "m.room.canonical_alias",
                         "m.room.avatar", "m.room.history_visibility", "m.room.guest_access",
                         "m.room.join_rules")


def _join_rule(join_rules: Mapping[str, Any]) -> str:
    rule = join_rules.get("join_rule")
    return rule if isinstance(rule, str) else "invite"


def _room_type(create: Mapping[str, Any]) -> str | None:
    value = create.get("type")
    return value if isinstance(value, str) else None


def _world_readable(history_visibility: Mapping[str, Any]) -> bool:
    return history_visibility.get("history_visibility") == "world_readable"


def join_rule_of(room: RoomState) -> str:
    return _join_rule(_content(room, "m.room.join_rules"))


def _allowed_room_ids(room: RoomState) -> list[str]:
    allow = _content(room, "m.room.join_rules").get("allow")
    return [a["room_id"] for a in allow if isinstance(a, Mapping) and a.get("type") == "m.room_membership"
            and isinstance(a.get("room_id"), str)] if isinstance(allow, list) else []


def num_joined_members(room: RoomState) -> int:
    return sum(1 for (t, _), pdu in room.state.items()
               if t == "m.room.member" and pdu.content.get("membership") == "join")


def room_type_of(room: RoomState) -> str | None:
    return _room_type(room.create.content)


def is_world_readable(room: RoomState) -> bool:
    return _world_readable(_content(room, "m.room.history_visibility"))


def directory_entry(room_id: str, contents: Mapping[str, Mapping[str, Any]], joined_members: int) -> dict[str, Any]:
    """One entry of the published room directory; absent values are omitted.

    `contents` maps each of DIRECTORY_STATE_TYPES in the room's current state to its content, so
    a page of the directory needs those few events of each room, not the rooms' whole state.
    Spec: client-server-api, "GET /_matrix/client/v3/publicRooms" (PublishedRoomsChunk).
    """
    def content(event_type: str) -> Mapping[str, Any]:
        return contents.get(event_type) or {}

    name = content("m.room.name").get("name")
    alias = content("m.room.canonical_alias").get("alias")
    avatar = content("m.room.avatar").get("url")
    entry: dict[str, Any] = {
        "room_id": room_id,
        "name": name if isinstance(name, str) and name else None,
        "topic": _plain_topic(content("m.room.topic")),
        "canonical_alias": alias if isinstance(alias, str) else None,
        "num_joined_members": joined_members,
        "avatar_url": avatar if isinstance(avatar, str) and avatar else None,
        "world_readable": _world_readable(content("m.room.history_visibility")),
        "guest_can_join": content("m.room.guest_access").get("guest_access") == "can_join",
        "join_rule": _join_rule(content("m.room.join_rules")),
        "room_type": _room_type(content("m.room.create")),
    }
    return {k: v for k, v in entry.items() if v is not None}


def public_rooms_chunk(room: RoomState) -> dict[str, Any]:
    """The directory entry of a room whose current state is loaded (see directory_entry)."""
    return directory_entry(room.room_id, {t: _content(room, t) for t in DIRECTORY_STATE_TYPES},
                           num_joined_members(room))


def room_summary(room: RoomState) -> dict[str, Any]:
    """A public rooms chunk plus room_version, encryption and, for restricted rooms, allowed_room_ids.

    Spec: client-server-api, "RoomSummary" (definitions/room_summary).
    """
    entry = public_rooms_chunk(room)
    entry["room_version"] = room.version.identifier
    algorithm = _content(room, "m.room.encryption").get("algorithm")
    if isinstance(algorithm, str):
        entry["encryption"] = algorithm
    if join_rule_of(room) in ("restricted", "knock_restricted"):
        entry["allowed_room_ids"] = _allowed_room_ids(room)
    return entry


class RoomSummaries:
    """Who may preview which room, the room summary and the space hierarchy."""

    def __init__(self, rs: RoomServer) -> None:
        self._rs = rs
        self._sessions: OrderedDict[str, _HierarchySession] = OrderedDict()

    async def may_preview(self, room: RoomState, user_id: str | None) -> bool:
        """Whether a user (or an anonymous caller) may see a room's summary.

        Public, knockable or world-readable rooms are open to all; otherwise the user must be
        joined or invited, or be able to join through a restricted join rule. Spec:
        client-server-api, "GET /_matrix/client/v1/rooms/{roomId}/hierarchy" (the `rooms` conditions).
        """
        rule = join_rule_of(room)
        if (rule == "public" or (rule == "knock" and room.version.knock_join_rule)
                or (rule == "knock_restricted" and room.version.knock_restricted_join_rule)):
            return True
        if is_world_readable(room):
            return True
        if user_id is None:
            return False
        if room.membership(user_id) in ("join", "invite"):
            return True
        if rule in ("restricted", "knock_restricted") and room.version.restricted_join_rule:
            mine = await room_store.get_rooms_for_user(self._rs.db, user_id)
            return any(r in mine for r in _allowed_room_ids(room))
        return False

    async def resolve(self, room_id_or_alias: str) -> str:
        if room_id_or_alias.startswith("#"):
            room_id = await room_store.get_alias(self._rs.db, room_id_or_alias)
            if room_id is None:
                raise NotFound("Room not found")
            return room_id
        if not room_id_or_alias.startswith("!"):
            raise InvalidParam(f"{room_id_or_alias!r} is not a room ID or alias")
        return room_id_or_alias

    async def summary(self, user_id: str | None, room_id_or_alias: str) -> dict[str, Any]:
        """Spec: client-server-api, "GET /_matrix/client/v1/room_summary/{roomIdOrAlias}"."""
        room_id = await self.resolve(room_id_or_alias)
        room = await self._rs.get_room_state(room_id)
        # Unknown and hidden rooms answer alike, so the reply does not reveal that a room exists.
        if room is None or not await self.may_preview(room, user_id):
            raise NotFound("Room not found or is not accessible")
        entry = room_summary(room)
        if user_id is not None:
            entry["membership"] = room.membership(user_id) or "leave"
        return entry

    async def hierarchy(self, user_id: str, room_id: str, *, suggested_only: bool, max_depth: int | None,
                        limit: int | None, from_token: str | None) -> dict[str, Any]:
        """One page of the depth-first walk over m.space.child events, from `room_id`.

        Spec: client-server-api, "GET /_matrix/client/v1/rooms/{roomId}/hierarchy".
        """
        if max_depth is not None and max_depth < 0:
            raise InvalidParam("max_depth must be a non-negative integer")
        if limit is not None and limit <= 0:
            raise InvalidParam("limit must be a positive integer")
        limit = min(limit or HIERARCHY_MAX_LIMIT, HIERARCHY_MAX_LIMIT)
        root = await self._rs.get_room_state(room_id)
        if root is None or not await self.may_preview(root, user_id):
            raise Forbidden(f"User {user_id} not in room {room_id}, and room previews are disabled")
        if from_token is not None:
            saved = self._get_session(from_token, user_id, room_id)
            if saved.suggested_only != suggested_only or saved.max_depth != max_depth:
                raise InvalidParam("suggested_only and max_depth cannot change on paginated requests")
            # A copy, so that a retried request with the same token gets the same page.
            session = _HierarchySession(user_id, room_id, suggested_only, max_depth, list(saved.queue),
                                        set(saved.processed))
        else:
            session = _HierarchySession(user_id, room_id, suggested_only, max_depth, [(room_id, 0)])
        rooms: list[dict[str, Any]] = []
        while session.queue and len(rooms) < limit:
            current_id, depth = session.queue.pop()
            if current_id in session.processed:
                continue
            session.processed.add(current_id)
            room = await self._rs.get_room_state(current_id)
            if room is None or not await self.may_preview(room, user_id):
                continue     # unknown here (would need federation) or not visible to this user
            entry = room_summary(room)
            children = self._children(room, suggested_only) if room_type_of(room) == "m.space" else []
            entry["children_state"] = [{"type": c.type, "state_key": c.state_key, "content": dict(c.content),
                                        "sender": c.sender, "origin_server_ts": c.origin_server_ts}
                                       for c in children]
            rooms.append(entry)
            if max_depth is None or depth < max_depth:
                # Reversed, so the first child is the next to pop.
                session.queue.extend((c.state_key or "", depth + 1) for c in reversed(children))
        body: dict[str, Any] = {"rooms": rooms}
        if session.queue:
            body["next_batch"] = self._store_session(session)
        return body

    @staticmethod
    def _children(room: RoomState, suggested_only: bool) -> list[Pdu]:
        """The room's m.space.child events with a valid `via`, in the spec's order.

        Spec: client-server-api, "Ordering of children within a space".
        """
        children = []
        for (event_type, state_key), pdu in room.state.items():
            via = pdu.content.get("via")
            if event_type != "m.space.child" or not state_key.startswith("!"):
                continue
            if not isinstance(via, list) or not via or not all(isinstance(v, str) for v in via):
                continue
            if suggested_only and pdu.content.get("suggested") is not True:
                continue
            children.append(pdu)
        children.sort(key=_child_order_key)
        return children[:MAX_CHILDREN_PER_SPACE]

    def _store_session(self, session: _HierarchySession) -> str:
        token = secrets.token_urlsafe(16)
        session.created = time.monotonic()
        self._sessions[token] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return token

    def _get_session(self, token: str, user_id: str, room_id: str) -> _HierarchySession:
        session = self._sessions.get(token)
        if (session is None or session.user_id != user_id or session.room_id != room_id
                or time.monotonic() - session.created > SESSION_TTL_S):
            raise InvalidParam("Unknown pagination token")
        return session


def _child_order_key(child: Pdu) -> tuple[int, str, int, str]:
    """Children with a valid `order` first (by order), then by origin_server_ts, then room ID.

    Spec: client-server-api, "Ordering of children within a space".
    """
    order = child.content.get("order")
    valid = isinstance(order, str) and len(order) <= 50 and all(0x20 <= ord(c) <= 0x7E for c in order)
    return (0 if valid else 1, order if valid else "", child.origin_server_ts, child.state_key or "")


@dataclass(slots=True)
class _HierarchySession:
    """Where a paginated hierarchy walk stands: rooms still to visit and rooms already seen."""

    user_id: str
    room_id: str
    suggested_only: bool
    max_depth: int | None
    queue: list[tuple[str, int]]
    processed: set[str] = field(default_factory=set)
    created: float = 0.0
