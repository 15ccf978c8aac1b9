"""Membership changes by local users: join, invite, leave, kick, ban, unban, knock, forget.

Spec: client-server-api, "Room membership"; rooms/v8, "Restricted rooms".
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pocketserver.errors import (BadJson, BadState, Forbidden, GuestAccessForbidden, InvalidParam, MatrixError,
                                 MissingParam, NotFound)
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.rooms.auth_rules import auth_state_for
from pocketserver.roomserver import EventSpec, RoomServer
from pocketserver.roomserver.room_state import RoomState
from pocketserver.storage import accounts as account_store
from pocketserver.storage import rooms as room_store
from pocketserver.storage.profiles import member_event_fields


class _NotJoined(Exception):
    """The user left the room before their profile update reached it."""


class _Unchanged(Exception):
    """The change would repeat the member's current event: same sender, membership and content."""

    def __init__(self, event_id: str) -> None:
        super().__init__(event_id)
        self.event_id = event_id


def _repeated(room: RoomState, sender: str, target: str, content: Mapping[str, Any]) -> str | None:
    """The target's current member event if it already says `content`, sent by `sender`.

    Synapse answers such a request with the existing event and sends nothing, so a bot that joins
    again on every invite it sees, or a double-clicked ban, leaves no duplicate in the timeline.
    """
    current = room.state.get(("m.room.member", target))
    return current.event_id if current is not None and current.sender == sender and current.content == content \
        else None


class UnableToGrantJoin(MatrixError):
    errcode, status = "M_UNABLE_TO_GRANT_JOIN", 400


class _Unknown(MatrixError):
    errcode, status = "M_UNKNOWN", 400


def _reason(reason: Any) -> dict[str, Any]:
    if reason is None:
        return {}
    if not isinstance(reason, str) or len(reason) > 1024:
        raise BadJson("reason must be a string of at most 1024 characters")
    return {"reason": reason}


def _target(user_id: Any) -> str:
    if user_id is None:
        raise MissingParam("Missing user_id")
    if not isinstance(user_id, str):
        raise BadJson("user_id must be a string")
    try:
        UserID.parse(user_id)
    except InvalidIdentifier:
        raise InvalidParam(f"{user_id!r} is not a valid user ID") from None
    return user_id


def _refuse_if_banned(room: RoomState, target: str, action: str) -> None:
    """Only ban, unban and leave act on a banned user; Synapse refuses the rest with M_BAD_STATE."""
    if room.membership(target) == "ban":
        raise BadState(f"Cannot {action} {target}: banned from the room")


def _require_member(room: RoomState, sender: str) -> None:
    """Refuse a sender outside the room before any check that would tell them about its members."""
    if room.membership(sender) != "join":
        raise Forbidden(f"User {sender} not in room {room.room_id}")


class Membership:
    """Turns membership requests into m.room.member events through the roomserver."""

    def __init__(self, rs: RoomServer, profiles: Any) -> None:
        self._rs = rs
        self._profiles = profiles

    async def resolve_room(self, room_id_or_alias: str) -> str:
        """A room ID from a room ID or a local alias; remote rooms need federation (not enabled)."""
        if room_id_or_alias.startswith("#"):
            room_id = await room_store.get_alias(self._rs.db, room_id_or_alias)
            if room_id is None:
                raise NotFound("Room alias not found")
            return room_id
        if not room_id_or_alias.startswith("!"):
            raise InvalidParam("Not a room ID or alias")
        if await self._rs.get_room_state(room_id_or_alias) is None:
            raise NotFound("No known servers: this room is not on this server")
        return room_id_or_alias

    async def _change(self, room_id: str, sender: str, target: str, content: dict[str, Any],
                      check: Any = None) -> str:
        """Send `target`'s new member event, unless it would repeat the current one; its event ID."""
        async def checked(room: RoomState) -> None:
            repeated = _repeated(room, sender, target, content)
            if repeated is not None:
                raise _Unchanged(repeated)
            if check is not None:
                await check(room)

        try:
            persisted = await self._rs.send(room_id, sender, [EventSpec("m.room.member", content, target)],
                                            check=checked)
        except _Unchanged as unchanged:
            return unchanged.event_id
        return persisted[0].event_id

    async def _profile(self, user_id: str) -> dict[str, Any]:
        return member_event_fields(await self._profiles.get_profile(user_id))

    async def _fields(self, user_id: str | None, reason: Any, fields: Mapping[str, Any] | None) -> dict[str, Any]:
        """A member event's content besides `membership`: the client's own (a state PUT), or the
        profile of `user_id` (when given) and the reason (the membership endpoints)."""
        if fields is not None:
            return dict(fields)
        return {**(await self._profile(user_id) if user_id is not None else {}), **_reason(reason)}

    async def set_member_state(self, sender: str, room_id: str, target: str, content: Mapping[str, Any], *,
                               guest: bool = False) -> str:
        """PUT /rooms/{roomId}/state/m.room.member/{userId}: the membership endpoints' checks, with
        the client's content; returns the event ID.

        As Synapse (which sends it through its membership handler), a member event written as state
        is refused whatever /join, /invite, /leave, /kick, /ban, /unban or /knock would refuse: no
        way round a restricted room's allow list, the guest rules or the invite checks.
        `join_authorised_via_users_server` is this server's to add once the allow list is checked,
        so a client's is dropped (as Synapse). Spec: client-server-api, "Room membership",
        "Restricted rooms".
        """
        membership = content.get("membership")
        fields = {k: v for k, v in content.items() if k not in ("membership", "join_authorised_via_users_server")}
        target = _target(target)
        if guest and (membership not in ("join", "leave") or target != sender):
            # Guests join and leave; /knock, /invite, /kick and /ban refuse them, so this does too.
            raise GuestAccessForbidden("Guests may only join and leave")
        if membership in ("join", "knock") and target != sender:
            raise Forbidden(f"Cannot {membership} for another user")
        if membership == "join":
            return await self.join(sender, room_id, guest=guest, fields=fields)
        if membership == "knock":
            return await self.knock(sender, room_id, fields=fields)
        if membership == "invite":
            return await self.invite(sender, room_id, target, fields=fields)
        if membership == "ban":
            return await self.ban(sender, room_id, target, fields=fields)
        if membership == "leave" and target == sender:
            return await self.leave(sender, room_id, fields=fields)
        if membership == "leave":
            room = await self._rs.require_room(room_id, sender)
            if room.membership(target) == "ban":
                return await self.unban(sender, room_id, target, fields=fields)
            return await self.kick(sender, room_id, target, fields=fields)
        raise BadJson("membership must be join, invite, leave, ban or knock")

    async def join(self, user_id: str, room_id: str, reason: Any = None, *, guest: bool = False,
                   fields: Mapping[str, Any] | None = None) -> str:
        """Spec: client-server-api, "POST /_matrix/client/v3/rooms/{roomId}/join"; a guest only
        where the room lets guests in, invited or not (as Synapse), "Guest Access". Returns the
        member event's ID."""
        content: dict[str, Any] = {"membership": "join", **await self._fields(user_id, reason, fields)}

        async def check(room: RoomState) -> None:
            current = room.membership(user_id)
            if current == "join":       # a profile refresh, not one more room
                return
            _refuse_if_banned(room, user_id, "join")
            if guest and not room.guests_may_join():
                raise Forbidden("Guest access not allowed")
            await self._rs.limits.spend_join(self._rs.db, user_id)
            if current == "invite":
                return
            rule = room.state.get(("m.room.join_rules", ""))
            join_rule = rule.content.get("join_rule") if rule else None
            if join_rule in ("restricted", "knock_restricted") and room.version.restricted_join_rule:
                content["join_authorised_via_users_server"] = await self._authorising_user(
                    room, user_id, rule.content if rule else {})

        return await self._change(room_id, user_id, user_id, content, check)

    async def _authorising_user(self, room: RoomState, user_id: str, join_rules: Mapping[str, Any]) -> str:
        """A local member who may invite, for a join without an invite by `user_id`, who belongs to
        one of the `allow` rooms; else the refusal as Synapse words it (403, or 400
        M_UNABLE_TO_GRANT_JOIN when nobody here may invite).

        Spec: rooms/v8, "Restricted rooms"; client-server-api, "Restricted rooms".
        """
        allowed = join_rules.get("allow")
        mine = await room_store.get_rooms_for_user(self._rs.db, user_id)
        if not isinstance(allowed, list) or not any(
                isinstance(a, dict) and a.get("type") == "m.room_membership" and a.get("room_id") in mine
                for a in allowed):
            raise Forbidden("You do not belong to any of the required rooms/spaces to join this room.")
        auth = auth_state_for(room.state, room.create, room.version)
        invite_level = auth.power_levels.invite
        for (event_type, member), pdu in room.state.items():
            if (event_type == "m.room.member" and pdu.content.get("membership") == "join"
                    and member.endswith(":" + self._rs.server_name)
                    and auth.user_power_level(member) >= invite_level):
                return member
        raise UnableToGrantJoin("Unable to find a user which could issue an invite")

    async def profile_changed(self, user_id: str) -> None:
        """Send a fresh join event with the new displayname/avatar_url into each joined room.

        Spec: client-server-api, "Events on Change of Profile Information".
        """
        profile = await self._profile(user_id)
        for room_id in await room_store.get_rooms_for_user(self._rs.db, user_id):
            async def check(room: RoomState, room_id: str = room_id) -> None:
                if room.membership(user_id) != "join":
                    raise _NotJoined(room_id)
            content = {"membership": "join", **profile}
            try:
                await self._change(room_id, user_id, user_id, content, check)
            except (_NotJoined, Forbidden):
                continue

    async def leave_all(self, user_id: str) -> None:
        """Leave every room and reject every invite of a deactivated user, as Synapse does."""
        rooms = await room_store.get_rooms_for_user(self._rs.db, user_id, ("join", "invite", "knock"))
        for room_id in rooms:
            try:
                await self.leave(user_id, room_id)
            except (Forbidden, NotFound):
                continue

    async def remove_guests(self, room_id: str) -> None:
        """Local guests leave (themselves, as in Synapse) a room that no longer lets guests in,
        and their invites are rejected. Spec: client-server-api, "Guest Access": "If the
        m.room.guest_access event is changed to stop this from being the case, the server MUST set
        those users' m.room.member state to leave"."""
        room = await self._rs.get_room_state(room_id)
        if room is None or room.guests_may_join():
            return
        local = ":" + self._rs.server_name
        members = [user for (event_type, user), pdu in room.state.items()
                   if event_type == "m.room.member" and user.endswith(local)
                   and pdu.content.get("membership") in ("join", "invite")]
        for guest in await account_store.guests_among(self._rs.db, members):
            try:
                await self.leave(guest, room_id)
            except Forbidden:       # left meanwhile
                continue

    async def invite(self, sender: str, room_id: str, target: Any, reason: Any = None, *,
                     fields: Mapping[str, Any] | None = None) -> str:
        """Spec: client-server-api, "POST /_matrix/client/v3/rooms/{roomId}/invite"."""
        target = _target(target)
        if UserID.parse(target).server_name != self._rs.server_name:
            raise Forbidden("Inviting users of other servers needs federation, which is not enabled")
        known = await self._rs.get_room_state(room_id)
        if known is not None:       # a sender outside the room learns nothing of the target (as Synapse)
            _require_member(known, sender)
        if await self._profiles_missing(target):
            raise NotFound("User not found")
        content = {"membership": "invite", **await self._fields(target, reason, fields)}

        async def check(room: RoomState) -> None:
            _require_member(room, sender)
            if room.membership(target) == "join":
                raise Forbidden(f"{target} is already in the room.")
            _refuse_if_banned(room, target, "invite")
            self._rs.limits.spend_invite(sender, room_id, target)

        return await self._change(room_id, sender, target, content, check)

    async def _profiles_missing(self, user_id: str) -> bool:
        try:
            await self._profiles.get_profile(user_id)
            return False
        except NotFound:
            return True

    async def leave(self, user_id: str, room_id: str, reason: Any = None, *,
                    fields: Mapping[str, Any] | None = None) -> str:
        """Leave, reject an invite or rescind a knock. Spec: "POST /_matrix/client/v3/rooms/{roomId}/leave"."""
        async def check(room: RoomState) -> None:
            if room.membership(user_id) not in ("join", "invite", "knock"):
                raise Forbidden("You are not in this room")

        return await self._change(room_id, user_id, user_id,
                                  {"membership": "leave", **await self._fields(None, reason, fields)}, check)

    async def kick(self, sender: str, room_id: str, target: Any, reason: Any = None, *,
                   fields: Mapping[str, Any] | None = None) -> str:
        """Spec: client-server-api, "POST /_matrix/client/v3/rooms/{roomId}/kick"."""
        target = _target(target)

        async def check(room: RoomState) -> None:
            _require_member(room, sender)
            _refuse_if_banned(room, target, "kick")
            if room.membership(target) not in ("join", "invite", "knock"):
                raise Forbidden(f"{target} is not in the room")

        return await self._change(room_id, sender, target,
                                  {"membership": "leave", **await self._fields(None, reason, fields)}, check)

    async def ban(self, sender: str, room_id: str, target: Any, reason: Any = None, *,
                  fields: Mapping[str, Any] | None = None) -> str:
        """Spec: client-server-api, "POST /_matrix/client/v3/rooms/{roomId}/ban"."""
        target = _target(target)
        content = {"membership": "ban", **await self._fields(None, reason, fields)}
        return await self._change(room_id, sender, target, content)

    async def unban(self, sender: str, room_id: str, target: Any, reason: Any = None, *,
                    fields: Mapping[str, Any] | None = None) -> str:
        """Spec: client-server-api, "POST /_matrix/client/v3/rooms/{roomId}/unban"."""
        target = _target(target)

        async def check(room: RoomState) -> None:
            _require_member(room, sender)
            if room.membership(target) != "ban":
                raise BadState(f"Cannot unban {target}: not banned")

        # Not through _change: unbanning twice is refused (as Synapse), not answered as a repeat.
        content = {"membership": "leave", **await self._fields(None, reason, fields)}
        persisted = await self._rs.send(room_id, sender, [EventSpec("m.room.member", content, target)], check=check)
        return persisted[0].event_id

    async def knock(self, user_id: str, room_id: str, reason: Any = None, *,
                    fields: Mapping[str, Any] | None = None) -> str:
        """Spec: client-server-api, "POST /_matrix/client/v3/knock/{roomIdOrAlias}"."""
        async def check(room: RoomState) -> None:
            if not room.version.knock_join_rule:
                raise Forbidden("This room version does not support knocking")
            if room.membership(user_id) == "join":
                raise Forbidden("You are already in the room")
            _refuse_if_banned(room, user_id, "knock")

        content = {"membership": "knock", **await self._fields(user_id, reason, fields)}
        return await self._change(room_id, user_id, user_id, content, check)

    async def forget(self, user_id: str, room_id: str) -> None:
        """Spec: client-server-api, "POST /_matrix/client/v3/rooms/{roomId}/forget"."""
        current = await room_store.get_local_membership(self._rs.db, user_id, room_id)
        if current is None:
            return      # nothing to forget: succeeds, as in Synapse
        if current[0] in ("join", "invite", "knock"):
            raise _Unknown("You must leave the room before forgetting it")
        await self._rs.db.write(lambda tx: room_store.forget_room(tx, user_id, room_id))
