"""Creating rooms: the create event, the creator's join, power levels, presets, state and invites.

Spec: client-server-api, "POST /_matrix/client/v3/createRoom" (the eight steps, in order).
"""
from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

from pocketserver.errors import BadJson, Forbidden, InvalidParam, MatrixError, NotFound
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.rooms.auth_rules import AuthRuleViolation, check_auth_rules
from pocketserver.rooms.events import build_event, create_event_content
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS, RoomVersion
from pocketserver.roomserver import EventSpec, RoomServer, check_client_content, now_ms
from pocketserver.roomserver.room_state import RoomState
from pocketserver.storage import accounts as account_store
from pocketserver.storage import profiles as profile_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage.writer import Transaction

PRESETS = {
    "private_chat": {"join_rule": "invite", "history_visibility": "shared", "guest_access": "can_join"},
    "trusted_private_chat": {"join_rule": "invite", "history_visibility": "shared", "guest_access": "can_join"},
    "public_chat": {"join_rule": "public", "history_visibility": "shared", "guest_access": "forbidden"},
}
MAX_INVITES = 100
MAX_INITIAL_STATE = 100


class UnsupportedRoomVersion(MatrixError):
    errcode, status = "M_UNSUPPORTED_ROOM_VERSION", 400


class RoomInUse(MatrixError):
    errcode, status = "M_ROOM_IN_USE", 400


def parse_user_ids(value: Any, field: str, limit: int, excluding: str) -> list[str]:
    """A request's list of user IDs (`invite`, `additional_creators`): valid, deduplicated, without `excluding`."""
    if not isinstance(value, list) or len(value) > limit or not all(isinstance(u, str) for u in value):
        raise BadJson(f"{field} must be a list of user IDs")
    for user in value:
        try:
            UserID.parse(user)
        except InvalidIdentifier:
            raise InvalidParam(f"{user!r} is not a valid user ID") from None
    return [u for u in dict.fromkeys(value) if u != excluding]


async def _invitee_profiles(rs: RoomServer, invites: list[str]) -> dict[str, dict[str, str]]:
    """The display name and avatar each invite event carries, as /invite's do (clients name a new
    DM after them); refuses, before anything is created, the invites /invite would refuse: users
    of other servers (federation is off) and local users who do not exist."""
    profiles = {}
    for user in invites:
        if UserID.parse(user).server_name != rs.server_name:
            raise Forbidden("Inviting users of other servers needs federation, which is not enabled")
        if await account_store.get_user(rs.db, user) is None:
            raise NotFound(f"User {user} not found")
        profiles[user] = profile_store.member_event_fields(await profile_store.get_profile(rs.db, user))
    return profiles


def default_power_levels(version: RoomVersion, creator: str, ops: list[str], preset: str) -> dict[str, Any]:
    """Synapse's default power levels; v12 creators are not listed (they have infinite power).

    In the private presets anyone in the room may invite (invite level 0), as in Synapse.

    Spec: client-server-api, "POST /_matrix/client/v3/createRoom", step 3.
    """
    users = {} if version.privileged_creators else {creator: 100, **{u: 100 for u in ops}}
    return {
        "users": users, "users_default": 0, "events_default": 0, "state_default": 50,
        "ban": 50, "kick": 50, "redact": 50, "invite": 50 if preset == "public_chat" else 0,
        "events": {"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
                   "m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.server_acl": 100,
                   "m.room.encryption": 100, "m.room.tombstone": 150 if version.privileged_creators else 100},
        "notifications": {"room": 50},
    }


def _string(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadJson(f"{key} must be a string")
    return value


def _object(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key, {})
    if not isinstance(value, dict):
        raise BadJson(f"{key} must be an object")
    return value


async def create_room(rs: RoomServer, creator: str, body: Mapping[str, Any], profile: Mapping[str, Any]) -> str:
    """Create a room as `creator` from a createRoom request body; returns the room ID."""
    visibility = body.get("visibility", "private")
    if visibility not in ("public", "private"):
        raise BadJson("visibility must be 'public' or 'private'")
    preset = body.get("preset") or ("public_chat" if visibility == "public" else "private_chat")
    if preset not in PRESETS:
        raise BadJson(f"Unknown preset {preset!r}")
    version_id = body.get("room_version", rs.config.default_room_version)
    if not isinstance(version_id, str) or version_id not in KNOWN_ROOM_VERSIONS:
        raise UnsupportedRoomVersion(f"This server does not support room version {version_id!r}")
    version = KNOWN_ROOM_VERSIONS[version_id]
    name, topic, alias_name = _string(body, "name"), _string(body, "topic"), _string(body, "room_alias_name")
    is_direct = body.get("is_direct", False)
    if not isinstance(is_direct, bool):
        raise BadJson("is_direct must be a boolean")
    invites = parse_user_ids(body.get("invite", []), "invite", MAX_INVITES, creator)
    invitee_profiles = await _invitee_profiles(rs, invites)
    initial_state = body.get("initial_state", [])
    if not isinstance(initial_state, list):
        raise BadJson("initial_state must be a list")
    if len(initial_state) > MAX_INITIAL_STATE:
        raise BadJson(f"initial_state may hold at most {MAX_INITIAL_STATE} events")
    creation_content = dict(_object(body, "creation_content"))
    override = _object(body, "power_level_content_override")
    await rs.limits.check_room_count(rs.db, creator)
    rs.limits.room_creation.check(creator)
    for user in invites:    # the invite list counts per recipient, so createRoom cannot spam one user
        rs.limits.invites_received.check(user)
    rs.limits.room_creation.spend(creator)
    for user in invites:
        rs.limits.invites_received.spend(user)

    alias = None
    if alias_name is not None:
        alias = f"#{alias_name}:{rs.server_name}"
        if not alias_name or any(c in alias_name for c in ":# \t\n") or len(alias.encode()) > 255:
            raise InvalidParam("Invalid room_alias_name")
        if await room_store.get_alias(rs.db, alias) is not None:
            raise RoomInUse("Room alias already taken")

    trusted = preset == "trusted_private_chat"
    additional: list[str] = []
    if version.additional_creators:
        extra = creation_content.pop("additional_creators", [])
        if not isinstance(extra, list) or not all(isinstance(u, str) for u in extra):
            raise BadJson("creation_content.additional_creators must be a list of user IDs")
        additional = list(dict.fromkeys([*extra, *(invites if trusted else [])]))
    creation_content.pop("creator", None)
    creation_content.pop("room_version", None)
    content = create_event_content(version, creator, additional, **creation_content)

    room_id = None if version.room_id_is_create_event_id else (
        "!" + "".join(secrets.choice(string.ascii_letters) for _ in range(18)) + ":" + rs.server_name)
    ts = now_ms()
    try:
        create = build_event(version=version, room_id=room_id, sender=creator, type="m.room.create", state_key="",
                             content=content, prev_events=[], auth_events=[], origin_server_ts=ts,
                             server_name=rs.server_name, signing_key=rs.signing_key)
        check_auth_rules(create, {}, version, create=create)
    except (AuthRuleViolation, ValueError) as exc:
        raise BadJson(f"Invalid creation_content: {exc}") from None

    room = RoomState(create.room_id, version, create, {}, [], -1, 0)
    working = room.copy()
    rs.advance(working, create)
    specs = [EventSpec("m.room.member", {"membership": "join", **profile}, creator)]
    power = default_power_levels(version, creator, invites if trusted and not version.privileged_creators else [], preset)
    power.update(override)
    specs.append(EventSpec("m.room.power_levels", power, ""))
    if alias is not None:
        specs.append(EventSpec("m.room.canonical_alias", {"alias": alias}, ""))
    settings = PRESETS[preset]
    specs += [EventSpec("m.room.join_rules", {"join_rule": settings["join_rule"]}, ""),
              EventSpec("m.room.history_visibility", {"history_visibility": settings["history_visibility"]}, ""),
              EventSpec("m.room.guest_access", {"guest_access": settings["guest_access"]}, "")]
    for item in initial_state:
        if (not isinstance(item, dict) or not isinstance(item.get("type"), str)
                or not isinstance(item.get("content", {}), dict)
                or not isinstance(item.get("state_key", ""), str)):
            raise BadJson("initial_state entries need a string type, an object content and a string state_key")
        if item["type"] in ("m.room.create", "m.room.member"):
            raise BadJson(f"initial_state may not set {item['type']}")
        check_client_content(item["type"], item.get("content", {}))
        specs.append(EventSpec(item["type"], item.get("content", {}), item.get("state_key", "")))
    if name is not None:
        specs.append(EventSpec("m.room.name", {"name": name}, ""))
    if topic is not None:
        specs.append(EventSpec("m.room.topic", {"topic": topic}, ""))
    for user in invites:
        invite_content: dict[str, Any] = {"membership": "invite", **invitee_profiles[user]}
        if is_direct:
            invite_content["is_direct"] = True
        specs.append(EventSpec("m.room.member", invite_content, user))

    built = [create]
    for spec in specs:
        pdu = rs.build(working, creator, spec, ts=ts)
        built.append(pdu)
        rs.advance(working, pdu)

    async def add_alias(tx: Transaction) -> None:
        if alias is not None:
            if await room_store.alias_taken_tx(tx, alias):     # taken since the check above: no room then
                raise RoomInUse("Room alias already taken")
            await room_store.insert_alias(tx, alias, create.room_id, creator)

    async with rs.lock(create.room_id):
        _, final = await rs.persist(room, built, new_room=(creator, visibility == "public"), extra=add_alias)
        rs.remember(final)
    return create.room_id
