"""Room upgrades: a replacement room with the old room's settings, a tombstone in the old one.

Spec: client-server-api, "Room Upgrades" (server behaviour, steps 1-6).
"""
from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pocketserver.errors import BadJson, BadRequest, Forbidden
from pocketserver.rooms.auth_rules import AuthRuleViolation, auth_state_for, check_auth_rules
from pocketserver.rooms.content import PowerLevels
from pocketserver.rooms.events import Pdu, build_event, create_event_content
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS, RoomVersion
from pocketserver.roomserver import EventSpec, RoomServer, now_ms
from pocketserver.roomserver.creation import UnsupportedRoomVersion, default_power_levels, parse_user_ids
from pocketserver.roomserver.room_state import RoomState
from pocketserver.storage import account_data
from pocketserver.storage import events as event_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage.account_data import tags_of
from pocketserver.storage.writer import Transaction

if TYPE_CHECKING:
    from pocketserver.push.rules import PushRules

# Spec: "Room Upgrades", step 3 (the recommended transferable state); power levels are handled apart.
TRANSFERABLE_STATE = ("m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar", "m.room.topic",
                      "m.room.guest_access", "m.room.history_visibility", "m.room.join_rules")
TOMBSTONE_BODY = "This room has been replaced"
TAG_TYPE, DIRECT_TYPE = "m.tag", "m.direct"
MAX_ADDITIONAL_CREATORS = 100


def parse_new_version(new_version: Any) -> RoomVersion:
    if not isinstance(new_version, str) or new_version not in KNOWN_ROOM_VERSIONS:
        raise UnsupportedRoomVersion("Your homeserver does not support this room version")
    return KNOWN_ROOM_VERSIONS[new_version]


def parse_additional_creators(value: Any, upgrader: str) -> list[str]:
    if value is None:
        return []
    return parse_user_ids(value, "additional_creators", MAX_ADDITIONAL_CREATORS, upgrader)


async def upgrade_room(rs: RoomServer, user_id: str, old_room_id: str, new_version: RoomVersion,
                       additional_creators: Sequence[str], profile: Mapping[str, Any]) -> str:
    """Upgrade `old_room_id` to `new_version` as `user_id`; returns the replacement room's ID.

    The new room is written in one job, then the switch-over in another: the old room's
    tombstone, canonical alias and restricted power levels, with the local aliases and the
    directory entry moving to the new room. A crash between the two leaves the old room as it
    was (and a new room nobody was sent to), so the upgrade can be asked for again. Spec:
    client-server-api, "Room Upgrades".
    """
    async with rs.lock(old_room_id):
        old = await rs.require_room(old_room_id)
        if old.membership(user_id) != "join":
            raise Forbidden(f"User {user_id} not in room {old_room_id}")
        creators = list(additional_creators) if new_version.additional_creators else []
        new_room_id = None if new_version.room_id_is_create_event_id else (
            "!" + "".join(secrets.choice(string.ascii_letters) for _ in range(18)) + ":" + rs.server_name)
        # Step 1: may the user send the tombstone? Before v12 the new room ID is known now, so the
        # real tombstone is built here and the new room's `predecessor` can name it, as Synapse does.
        tombstone = rs.build(old.copy(), user_id, _tombstone_spec(new_room_id or ""))
        predecessor: dict[str, Any] = {"room_id": old_room_id}
        if new_room_id is not None:
            predecessor["event_id"] = tombstone.event_id
        else:
            tombstone = None   # a probe only: the v12 room ID comes from its create event

        # Step 2: the create event.
        create = _build_create(rs, old, new_version, new_room_id, user_id, creators, predecessor)
        new = RoomState(create.room_id, new_version, create, {}, [], -1, 0)
        working = new.copy()
        rs.advance(working, create)
        built = [create, *_build_new_room_state(rs, old, working, user_id, {user_id, *creators}, profile)]

        row = await room_store.get_room(rs.db, old_room_id)
        is_public = row is not None and row.is_public
        async with rs.lock(create.room_id):
            _, final = await rs.persist(new, built, new_room=(user_id, False))
            rs.remember(final)

        # Steps 5 and 6: the tombstone, the old room's canonical alias, and its power levels shut down.
        old_working = old.copy()
        if tombstone is None:
            tombstone = rs.build(old_working, user_id, _tombstone_spec(create.room_id))
        rs.advance(old_working, tombstone)
        old_built = [tombstone]
        old_alias, _ = _split_canonical_alias(old, rs.server_name)
        for spec in (old_alias, _restricted_power_levels(old)):
            if spec is not None:
                pdu = _try_build(rs, old_working, user_id, spec)
                if pdu is not None:
                    old_built.append(pdu)

        # Step 4, with the tombstone: the local aliases move to the new room, the directory entry too.
        async def switch_over(tx: Transaction) -> None:
            await tx.execute("UPDATE room_aliases SET room_id = ?, creator = ? WHERE room_id = ?",
                             (create.room_id, user_id, old_room_id))
            if is_public:
                await room_store.set_room_public(tx, old_room_id, False)
                await room_store.set_room_public(tx, create.room_id, True)

        _, final_old = await rs.persist(old, old_built, extra=switch_over)
        rs.remember(final_old)
        return create.room_id


class Upgrades:
    """Upgrades under way or just done: the same user asking again (a double click, a retry)
    within RECENT_S gets the first answer, and another user's upgrade of a room being upgraded
    is refused, as Synapse (its upgrade response cache, five minutes). Without this, two requests
    would each make a replacement room, the tombstone naming one and the aliases the other."""

    RECENT_S = 300.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._recent: dict[tuple[str, str], tuple[float, asyncio.Future[str]]] = {}

    async def upgrade(self, rs: RoomServer, user_id: str, old_room_id: str, new_version: RoomVersion,
                      additional_creators: Sequence[str], profile: Mapping[str, Any]) -> str:
        now = self._clock()
        for key, (started, done) in list(self._recent.items()):
            if done.done() and now - started > self.RECENT_S:
                del self._recent[key]
        earlier = self._recent.get((old_room_id, user_id))
        if earlier is None:
            if any(room == old_room_id and not done.done() for (room, _), (_, done) in self._recent.items()):
                raise BadRequest("An upgrade for this room is currently in progress")
            task = asyncio.ensure_future(upgrade_room(rs, user_id, old_room_id, new_version, additional_creators,
                                                      profile))
            earlier = self._recent[(old_room_id, user_id)] = (now, task)
            task.add_done_callback(lambda t: self._forget_failed(old_room_id, user_id, t))
        return await asyncio.shield(earlier[1])     # a request that goes away leaves the upgrade to finish

    def _forget_failed(self, old_room_id: str, user_id: str, task: asyncio.Future[str]) -> None:
        """A refused or failed upgrade is not an answer to keep: the user may ask again."""
        if task.cancelled() or task.exception() is not None:
            found = self._recent.get((old_room_id, user_id))
            if found is not None and found[1] is task:
                del self._recent[(old_room_id, user_id)]


async def carry_user_settings(rules: PushRules, tx: Transaction, user_id: str, old_room_id: str,
                              new_room_id: str, new_room_creator: str) -> None:
    """A local user joined the room that replaced `old_room_id`: their tags on the old room, its
    place in their `m.direct` and their push rules for it go with them, unless the new room has its
    own already. Spec: client-server-api, "Room Upgrades" ("When a user joins the new room, the
    server should automatically transfer/replicate some of the user's personalized settings such
    as notifications, tags, etc."); the same three Synapse carries over.

    Anyone may name any room as the predecessor of a room they create. So, unlike Synapse, the
    settings of a user other than the new room's creator move only if the old room's tombstone,
    sent by someone with the power to in that room, names the new room: otherwise inviting a user
    into a room that claims to replace their DM with their mother would list it as that DM.
    """
    if user_id != new_room_creator and await _replacement_of(tx, old_room_id) != new_room_id:
        return
    tags = tags_of(await account_data.get_account_data_tx(tx, user_id, old_room_id, TAG_TYPE))
    if tags and not tags_of(await account_data.get_account_data_tx(tx, user_id, new_room_id, TAG_TYPE)):
        await account_data.set_account_data(tx, user_id, new_room_id, TAG_TYPE, {"tags": tags})
    direct = await account_data.get_account_data_tx(tx, user_id, account_data.GLOBAL, DIRECT_TYPE)
    if isinstance(direct, dict):
        changed = {other: [*rooms, new_room_id] for other, rooms in direct.items()
                   if isinstance(rooms, list) and old_room_id in rooms and new_room_id not in rooms}
        if changed:
            await account_data.set_account_data(tx, user_id, account_data.GLOBAL, DIRECT_TYPE, {**direct, **changed})
    await rules.copy_room_rules(tx, user_id, old_room_id, new_room_id)


async def _replacement_of(tx: Transaction, room_id: str) -> str | None:
    """The room the current m.room.tombstone of `room_id` names, if any (read inside a write job)."""
    row = await tx.fetchone("SELECT event_id FROM current_state WHERE room_id = ? AND type = 'm.room.tombstone' "
                            "AND state_key = ''", (room_id,))
    event = await event_store.get_event_tx(tx, row[0]) if row else None
    replacement = event.json.get("content", {}).get("replacement_room") if event is not None else None
    return replacement if isinstance(replacement, str) else None


def _tombstone_spec(replacement_room: str) -> EventSpec:
    return EventSpec("m.room.tombstone", {"body": TOMBSTONE_BODY, "replacement_room": replacement_room}, "")


def _build_create(rs: RoomServer, old: RoomState, version: RoomVersion, room_id: str | None, creator: str,
                  additional_creators: Sequence[str], predecessor: Mapping[str, Any]) -> Pdu:
    """The new m.room.create: `predecessor`, and the old room's `type` and `m.federate: false`.

    Spec: client-server-api, "Room Upgrades", step 2.
    """
    extra: dict[str, Any] = {"predecessor": dict(predecessor)}
    if isinstance(old.create.content.get("type"), str):
        extra["type"] = old.create.content["type"]
    if old.create.content.get("m.federate") is False:
        extra["m.federate"] = False
    content = create_event_content(version, creator, additional_creators, **extra)
    try:
        create = build_event(version=version, room_id=room_id, sender=creator, type="m.room.create", state_key="",
                             content=content, prev_events=[], auth_events=[], origin_server_ts=now_ms(),
                             server_name=rs.server_name, signing_key=rs.signing_key)
        check_auth_rules(create, {}, version, create=create)
    except (AuthRuleViolation, ValueError) as exc:
        raise BadJson(f"Cannot create the replacement room: {exc}") from None
    return create


def _build_new_room_state(rs: RoomServer, old: RoomState, working: RoomState, user_id: str,
                          new_creators: set[str], profile: Mapping[str, Any]) -> list[Pdu]:
    """The upgrader's join, power levels, copied state, space children, bans and canonical alias.

    The upgrader gets, for a moment, the power to send all of it when they lack it, and the copied
    power levels are restored last (as Synapse does). Spec: "Room Upgrades", steps 3 and 4.
    """
    power, restore = _new_power_levels(old, working.version, user_id, new_creators)
    specs = [EventSpec("m.room.member", {"membership": "join", **profile}, user_id),
             EventSpec("m.room.power_levels", power, "")]
    for event_type in TRANSFERABLE_STATE:
        event = old.state.get((event_type, ""))
        if event is not None:
            specs.append(EventSpec(event_type, dict(event.content), ""))
    if old.create.content.get("type") == "m.space":
        specs += [EventSpec(t, dict(e.content), k) for (t, k), e in sorted(old.state.items(), key=lambda i: i[0])
                  if t == "m.space.child"]
    for (event_type, member), event in sorted(old.state.items(), key=lambda i: i[0]):
        if event_type == "m.room.member" and event.content.get("membership") == "ban" and member != user_id:
            reason = event.content.get("reason")
            specs.append(EventSpec("m.room.member", {"membership": "ban",
                                                     **({"reason": reason} if isinstance(reason, str) else {})},
                                   member))
    _, new_alias = _split_canonical_alias(old, rs.server_name)
    if new_alias is not None:
        specs.append(new_alias)
    if restore is not None:
        specs.append(EventSpec("m.room.power_levels", restore, ""))
    built = []
    for index, spec in enumerate(specs):
        if index < 2:
            pdu = rs.build(working, user_id, spec)      # the join and power levels must succeed
            rs.advance(working, pdu)
        else:
            pdu = _try_build(rs, working, user_id, spec)
        if pdu is not None:
            built.append(pdu)
    return built


def _try_build(rs: RoomServer, working: RoomState, user_id: str, spec: EventSpec) -> Pdu | None:
    """Build and advance, or None when an auth rule refuses (the upgrade goes on without it)."""
    try:
        pdu = rs.build(working, user_id, spec)
    except Forbidden:
        return None
    rs.advance(working, pdu)
    return pdu


def _power_levels_content(room: RoomState) -> dict[str, Any] | None:
    """The room's power levels with string and float values made integers (as v10+ needs)."""
    event = room.state.get(("m.room.power_levels", ""))
    if event is None:
        return None
    levels = PowerLevels.from_content(event.content, room.version)
    content = dict(event.content)
    for name in ("ban", "events_default", "invite", "kick", "redact", "state_default", "users_default"):
        content[name] = getattr(levels, name)
    for name in ("events", "users", "notifications"):
        content[name] = dict(getattr(levels, name))
    return content


def _new_power_levels(old: RoomState, version: RoomVersion, user_id: str,
                      new_creators: set[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(power levels to start the new room with, the copied levels to restore afterwards or None).

    v12+ creators have infinite power and are never listed in `users`; a room leaving v12 lists its
    old creators at 100. Spec: rooms/v12, "Authorisation rules"; client-server-api, "Room Upgrades".
    """
    content = _power_levels_content(old)
    if content is None:
        return default_power_levels(version, user_id, [], "private_chat"), None
    users = dict(content["users"])
    if old.version.privileged_creators and not version.privileged_creators:
        for creator in auth_state_for(old.state, old.create, old.version).create.creators:
            users.setdefault(creator, 100)
    if version.privileged_creators:
        users = {u: level for u, level in users.items() if u not in new_creators}
    content["users"] = users
    if version.privileged_creators:
        return content, None
    needed = max(content["state_default"], content["ban"], *content["events"].values())
    if users.get(user_id, content["users_default"]) >= needed:
        return content, None
    raised = {**content, "users": {**users, user_id: needed}}
    return raised, content


def _split_canonical_alias(old: RoomState, server_name: str) -> tuple[EventSpec | None, EventSpec | None]:
    """(the old room's canonical alias without its local aliases, the new room's with them), None when unchanged.

    Spec: client-server-api, "Room Upgrades", step 4.
    """
    event = old.state.get(("m.room.canonical_alias", ""))
    if event is None:
        return None, None
    local = f":{server_name}"
    old_content, new_content = dict(event.content), {}
    alias = old_content.get("alias")
    if isinstance(alias, str) and alias.endswith(local):
        new_content["alias"] = old_content.pop("alias")
    alt = old_content.get("alt_aliases")
    if isinstance(alt, list) and alt:
        new_content["alt_aliases"] = [a for a in alt if isinstance(a, str) and a.endswith(local)]
        old_content["alt_aliases"] = [a for a in alt if not (isinstance(a, str) and a.endswith(local))]
    old_spec = EventSpec("m.room.canonical_alias", old_content, "") if old_content != dict(event.content) else None
    new_spec = EventSpec("m.room.canonical_alias", new_content, "") if new_content else None
    return old_spec, new_spec


def _restricted_power_levels(old: RoomState) -> EventSpec | None:
    """The old room's power levels with events_default and invite raised to max(50, users_default + 1).

    Spec: client-server-api, "Room Upgrades", step 6.
    """
    content = _power_levels_content(old)
    if content is None:
        return None
    floor = max(50, content["users_default"] + 1)
    if content["events_default"] >= floor and content["invite"] >= floor:
        return None
    content["events_default"] = max(content["events_default"], floor)
    content["invite"] = max(content["invite"], floor)
    return EventSpec("m.room.power_levels", content, "")
