"""Room aliases and the published room directory of this server.

Spec: client-server-api, "Room aliases", "Published room directory".
"""
from __future__ import annotations

import base64
import json
import string
from collections.abc import Sequence
from typing import Any

from pocketserver.errors import BadJson, BadRequest, Forbidden, InvalidParam, MatrixError, NotFound
from pocketserver.ids import is_valid_server_name
from pocketserver.rooms.auth_rules import auth_state_for
from pocketserver.roomserver import EventSpec, RoomServer
from pocketserver.roomserver.room_state import RoomState
from pocketserver.roomserver.summary import DIRECTORY_STATE_TYPES, directory_entry, is_world_readable
from pocketserver.storage import accounts as account_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage.writer import Transaction

MAX_ALIAS_BYTES = 255
MAX_PUBLIC_ROOMS_PAGE = 500


class AliasInUse(MatrixError):
    errcode, status = "M_UNKNOWN", 409   # spec example and Synapse


class RemoteDirectoryUnavailable(MatrixError):
    """Another server's directory would need federation, which is not enabled."""

    errcode, status = "M_UNKNOWN", 404


def parse_alias(alias: str) -> tuple[str, str]:
    """(localpart, server_name) of a room alias; M_INVALID_PARAM when it breaks the grammar.

    Spec: appendices, "Room Aliases".
    """
    localpart, sep, server_name = alias[1:].partition(":")
    if (not alias.startswith("#") or not sep or not localpart or "\x00" in localpart
            or len(alias.encode()) > MAX_ALIAS_BYTES or not is_valid_server_name(server_name)):
        raise InvalidParam("Room alias invalid")
    return localpart, server_name


def can_send_canonical_alias(room: RoomState, user_id: str) -> bool:
    """Whether the user's power level reaches the level for m.room.canonical_alias (a "moderator")."""
    auth = auth_state_for(room.state, room.create, room.version)
    return auth.user_power_level(user_id) >= auth.power_levels.required_level("m.room.canonical_alias", True)


def is_room_creator(room: RoomState, user_id: str) -> bool:
    return user_id in auth_state_for(room.state, room.create, room.version).create.creators


class Directory:
    """Local aliases and the published room list."""

    def __init__(self, rs: RoomServer) -> None:
        self._rs = rs
        self._db = rs.db

    async def _is_admin(self, user_id: str) -> bool:
        user = await account_store.get_user(self._db, user_id)
        return user is not None and user.admin

    async def create_alias(self, user_id: str, alias: str, room_id: Any) -> None:
        """Spec: client-server-api, "PUT /_matrix/client/v3/directory/room/{roomAlias}"."""
        localpart, server_name = parse_alias(alias)
        if not isinstance(room_id, str):
            raise BadJson('Missing params: ["room_id"]')
        if any(c in localpart for c in string.whitespace) or ":" in localpart:
            raise InvalidParam("Invalid characters in room alias")
        if server_name != self._rs.server_name:
            raise InvalidParam("Room alias must be local")
        room = await self._rs.get_room_state(room_id) if room_id.startswith("!") else None
        if room is None:
            raise BadRequest("Room does not exist")
        if room.membership(user_id) != "join" and not await self._is_admin(user_id):
            raise Forbidden("You must be in the room to create an alias for it")

        async def job(tx: Transaction) -> None:
            if await room_store.alias_taken_tx(tx, alias):
                raise AliasInUse(f"Room alias {alias} already exists")
            await room_store.insert_alias(tx, alias, room_id, user_id)

        await self._db.write(job)

    async def get_alias(self, alias: str) -> dict[str, Any]:
        """Spec: client-server-api, "GET /_matrix/client/v3/directory/room/{roomAlias}"."""
        _, server_name = parse_alias(alias)
        room_id = await room_store.get_alias(self._db, alias) if server_name == self._rs.server_name else None
        if room_id is None:
            raise NotFound(f"Room alias {alias} not found")
        joined = await room_store.get_members(self._db, room_id, "join")
        others = sorted({u.partition(":")[2] for u in joined} - {self._rs.server_name})
        return {"room_id": room_id, "servers": [self._rs.server_name, *others]}

    async def delete_alias(self, user_id: str, alias: str) -> None:
        """Remove an alias its creator, an admin or a room moderator asks to remove, then drop it
        from m.room.canonical_alias when the user may send that.

        Spec: client-server-api, "DELETE /_matrix/client/v3/directory/room/{roomAlias}".
        """
        _, server_name = parse_alias(alias)
        row = await room_store.get_alias_row(self._db, alias) if server_name == self._rs.server_name else None
        if row is None:
            raise NotFound("Unknown room alias")
        room_id, creator = row
        if creator != user_id and not await self._is_admin(user_id):
            room = await self._rs.get_room_state(room_id)
            if room is None or room.membership(user_id) != "join":
                raise Forbidden(f"User {user_id} not in room {room_id}")
            if not can_send_canonical_alias(room, user_id):
                raise Forbidden("You don't have permission to delete the alias.")

        async def job(tx: Transaction) -> bool:
            cur = await tx.execute("DELETE FROM room_aliases WHERE alias = ? AND room_id = ?", (alias, room_id))
            return cur.rowcount > 0

        if not await self._db.write(job):
            raise NotFound("Unknown room alias")
        try:
            await self._drop_from_canonical_alias(user_id, room_id, alias)
        except Forbidden:
            pass    # the alias is gone; a user without power just leaves the state event as it was

    async def _drop_from_canonical_alias(self, user_id: str, room_id: str, alias: str) -> None:
        async with self._rs.lock(room_id):
            room = await self._rs.get_room_state(room_id)
            event = room.state.get(("m.room.canonical_alias", "")) if room is not None else None
            if room is None or event is None:
                return
            content = dict(event.content)
            changed = False
            if content.get("alias") == alias:
                content.pop("alias")
                changed = True
            alt = content.get("alt_aliases")
            if isinstance(alt, list) and alias in alt:
                changed = True
                alt = [a for a in alt if a != alias]
                if alt:
                    content["alt_aliases"] = alt
                else:
                    content.pop("alt_aliases")
            if not changed:
                return
            pdu = self._rs.build(room.copy(), user_id, EventSpec("m.room.canonical_alias", content, ""))
            _, final = await self._rs.persist(room, [pdu])
            self._rs.remember(final)

    async def local_aliases(self, user_id: str, room_id: str) -> list[str]:
        """Spec: client-server-api, "GET /_matrix/client/v3/rooms/{roomId}/aliases"."""
        room = await self._rs.get_room_state(room_id)
        visible = room is not None and (room.membership(user_id) == "join" or is_world_readable(room))
        if not visible and not await self._is_admin(user_id):
            raise Forbidden(f"User {user_id} not in room {room_id}")
        return await room_store.get_aliases_for_room(self._db, room_id)

    async def get_visibility(self, room_id: str) -> str:
        """Spec: client-server-api, "GET /_matrix/client/v3/directory/list/room/{roomId}"."""
        row = await room_store.get_room(self._db, room_id)
        if row is None:
            raise NotFound("Unknown room")
        return "public" if row.is_public else "private"

    async def set_visibility(self, user_id: str, is_guest: bool, room_id: str, visibility: Any) -> None:
        """Publish or unpublish a room: room moderators (power to set the canonical alias), its creators, admins.

        Spec: client-server-api, "PUT /_matrix/client/v3/directory/list/room/{roomId}".
        """
        if is_guest:
            raise Forbidden("Guests cannot edit the published room list")
        if visibility not in ("public", "private"):
            raise InvalidParam("Invalid visibility setting")
        room = await self._rs.get_room_state(room_id)
        if room is None:
            raise NotFound("Unknown room")
        if not await self._is_admin(user_id):
            if room.membership(user_id) != "join":
                raise Forbidden(f"User {user_id} not in room {room_id}")
            if not can_send_canonical_alias(room, user_id) and not is_room_creator(room, user_id):
                raise Forbidden("This server requires you to be a moderator in the room to edit its room "
                                "list entry")
        await self._db.write(lambda tx: room_store.set_room_public(tx, room_id, visibility == "public"))

    async def public_rooms(self, *, server: str | None, limit: int | None, since: str | None,
                           search_term: str | None, room_types: Sequence[str | None] | None,
                           third_party_instance_id: str | None) -> dict[str, Any]:
        """One page of the published rooms, largest first, with tokens both ways.

        Spec: client-server-api, "POST /_matrix/client/v3/publicRooms".
        """
        if server is not None and server != self._rs.server_name:
            if not is_valid_server_name(server):
                raise InvalidParam("Invalid server name")
            raise RemoteDirectoryUnavailable("Federation is not enabled: cannot fetch another server's room list")
        if limit is not None and limit < 0:
            raise InvalidParam("limit must not be negative")
        page_size = min(limit, MAX_PUBLIC_ROOMS_PAGE) if limit else MAX_PUBLIC_ROOMS_PAGE
        boundary = _parse_since(since) if since else None
        entries = [] if third_party_instance_id is not None else await self._published_entries(search_term, room_types)
        entries.sort(key=_sort_key)
        if boundary is None or boundary[0] == "n":
            after = [e for e in entries if boundary is None or _sort_key(e) > boundary[1]]
            page = after[:page_size]
        else:
            before = [e for e in entries if _sort_key(e) < boundary[1]]
            page = before[-page_size:]
        body: dict[str, Any] = {"chunk": page, "total_room_count_estimate": len(entries)}
        if page and _sort_key(entries[-1]) > _sort_key(page[-1]):
            body["next_batch"] = _make_since("n", _sort_key(page[-1]))
        if page and _sort_key(entries[0]) < _sort_key(page[0]):
            body["prev_batch"] = _make_since("p", _sort_key(page[0]))
        return body

    async def _published_entries(self, search_term: str | None,
                                 room_types: Sequence[str | None] | None) -> list[dict[str, Any]]:
        """The directory entries of every published room, from the few state events an entry shows
        and the rooms' member counts, read for all the rooms at once.

        Only rooms someone could join or read, and that someone is in, as Synapse lists them
        (get_largest_public_rooms): a published room made invite-only, or left by everyone, keeps
        its published flag (for when it opens again) but shows nobody its name and topic.
        """
        needle = search_term.casefold() if search_term else None
        room_ids = await room_store.list_public_rooms(self._db)
        state = await room_store.get_current_state_of_types(self._db, room_ids, DIRECTORY_STATE_TYPES)
        counts = await room_store.get_member_counts(self._db, room_ids)
        contents = await self._rs.state_cache.contents([e for ids in state.values() for e in ids.values()])
        entries = []
        for room_id in room_ids:
            ids = state.get(room_id, {})
            if "m.room.create" not in ids:
                continue
            entry = directory_entry(room_id, {t: contents.get(e, {}) for t, e in ids.items()},
                                    counts.get(room_id, (0, 0))[0])
            if entry["num_joined_members"] == 0 or not (
                    entry["join_rule"] in LISTED_JOIN_RULES or entry["world_readable"]):
                continue
            if room_types is not None and entry.get("room_type") not in room_types:
                continue
            if needle is not None and not any(
                    needle in str(entry.get(k, "")).casefold() for k in ("name", "topic", "canonical_alias")):
                continue
            entries.append(entry)
        return entries


LISTED_JOIN_RULES = ("public", "knock", "knock_restricted")


def _sort_key(entry: dict[str, Any]) -> tuple[int, str]:
    return (-int(entry["num_joined_members"]), str(entry["room_id"]))


def _make_since(direction: str, key: tuple[int, str]) -> str:
    raw = json.dumps([direction, key[0], key[1]], separators=(",", ":")).encode()
    return direction + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_since(token: str) -> tuple[str, tuple[int, str]]:
    """Direction ('n' forwards, 'p' backwards) and the sort key of the room the token stands after or before."""
    try:
        raw = token[1:]
        value = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        direction, joined, room_id = value
        if direction != token[0] or direction not in ("n", "p") or type(joined) is not int \
                or not isinstance(room_id, str):
            raise ValueError(token)
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise InvalidParam("Invalid since token") from None
    return direction, (joined, room_id)
