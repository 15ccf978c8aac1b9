"""Who a user may find in the user directory, with their profiles.

Spec: client-server-api, "POST /_matrix/client/v3/user_directory/search" (the users to consider).
"""
from __future__ import annotations

import json
from typing import NamedTuple

from pocketserver.storage.database import Database


class DirectoryUser(NamedTuple):
    user_id: str
    display_name: str | None
    avatar_url: str | None
    shares_room: bool          # joined to a room the searcher is joined to


# The users joined to a room the searcher is joined to (parameter: the searcher), and the rooms with
# a `public` join rule or `world_readable` history visibility: two state look-ups per room, by key.
_VISIBLE = (
    "WITH sharing(user_id) AS (SELECT other.state_key FROM current_state AS mine JOIN current_state AS other "
    "ON other.room_id = mine.room_id AND other.type = 'm.room.member' AND other.membership = 'join' "
    "WHERE mine.type = 'm.room.member' AND mine.state_key = ? AND mine.membership = 'join'), "
    "public_rooms(room_id) AS (SELECT s.room_id FROM rooms AS r CROSS JOIN current_state AS s "
    "ON s.room_id = r.room_id AND s.type IN ('m.room.join_rules', 'm.room.history_visibility') "
    "AND s.state_key = '' JOIN events AS e ON e.event_id = s.event_id "
    "WHERE (s.type = 'm.room.join_rules' AND json_extract(e.json, '$.content.join_rule') = 'public') "
    "OR (s.type = 'm.room.history_visibility' "
    "AND json_extract(e.json, '$.content.history_visibility') = 'world_readable')), "
    "in_public(user_id) AS (SELECT m.state_key FROM current_state AS m WHERE m.room_id IN public_rooms "
    "AND m.type = 'm.room.member' AND m.membership = 'join') ")


async def searchable_users(db: Database, searcher: str, all_users: bool) -> list[DirectoryUser]:
    """The active local users `searcher` may find: those sharing a room with them and those in public
    or world-readable rooms, or every active local user when `all_users`. Guests, deactivated users
    and the searcher are never listed."""
    visible = "" if all_users else "AND (u.user_id IN sharing OR u.user_id IN in_public)"
    rows = await db.fetchall(
        f"{_VISIBLE}SELECT u.user_id, u.user_id IN sharing, "
        "(SELECT value_json FROM profiles WHERE user_id = u.user_id AND field = 'displayname'), "
        "(SELECT value_json FROM profiles WHERE user_id = u.user_id AND field = 'avatar_url') "
        f"FROM users AS u WHERE u.deactivated = 0 AND u.is_guest = 0 AND u.user_id != ? {visible}",
        (searcher, searcher))
    return [DirectoryUser(user_id, _string(name), _string(avatar), bool(shares))
            for user_id, shares, name, avatar in rows]


def _string(raw: str | None) -> str | None:
    value = json.loads(raw) if raw is not None else None
    return value if isinstance(value, str) and value else None
