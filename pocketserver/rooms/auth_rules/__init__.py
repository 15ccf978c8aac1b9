"""The authorisation rules of room versions 1 to 12, and auth events selection.

Spec: rooms/v12, "Authorisation rules"; older versions differ where a RoomVersion flag says so.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pocketserver.rooms.auth_rules.context import (
    CREATE_KEY, AuthRuleViolation, AuthState, StateMap, rule_number, server_name_of_user,
)
from pocketserver.rooms.auth_rules.membership import check_member
from pocketserver.rooms.auth_rules.power_levels import check_power_levels
from pocketserver.rooms.auth_rules.redactions import check_redaction, check_redaction_applies
from pocketserver.rooms.auth_rules.selection import auth_types_for_event, check_auth_events, select_auth_events
from pocketserver.rooms.events import Pdu
from pocketserver.rooms.identifiers import is_valid_user_id, server_name_of
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS, RoomVersion

__all__ = [
    "AuthRuleViolation", "AuthState", "StateMap", "auth_state_for", "auth_types_for_event", "check_auth_events",
    "check_auth_rules", "check_redaction_applies", "select_auth_events",
]


def check_auth_rules(event: Pdu, auth_events: StateMap, version: RoomVersion, *, create: Pdu | None = None) -> None:
    """Raise AuthRuleViolation unless the event passes the authorisation rules against this state.

    `auth_events` is the state to check against (the event's auth events, the state before it,
    or the current state). `create` is the room's m.room.create event; when omitted it is taken
    from `auth_events`, which v12+ events never cite, so v12+ callers usually pass it.

    Spec: rooms/v12, "Authorisation rules"; rooms/v1, v3, v6, v8, v10 and v11 for older versions.
    """
    if event.type == "m.room.create":
        return _check_create(event, version)
    create = create if create is not None else auth_events.get(CREATE_KEY)
    if version.room_id_is_create_event_id:
        if create is None or create.type != "m.room.create" or event.room_id[1:] != create.event_id[1:]:
            raise AuthRuleViolation(rule_number(version, "room_id"), "room_id does not name the create event")
    elif create is None:
        raise AuthRuleViolation(rule_number(version, "auth_events", 4), "no m.room.create event")
    state = AuthState.build(auth_events, create, version)
    if not state.create.federate and server_name_of_user(event.sender) != server_name_of_user(create.sender):
        raise AuthRuleViolation(rule_number(version, "federate"), "room is not federated")
    if version.special_case_aliases_auth and event.type == "m.room.aliases":
        return _check_aliases(event, version)
    if event.type == "m.room.member":
        return check_member(event, state)
    _check_sender_may_send(event, state)
    if event.type == "m.room.power_levels":
        check_power_levels(event, state)
    elif event.type == "m.room.redaction" and version.redaction_checked_by_auth_rules:
        check_redaction(event, state)


def _check_create(event: Pdu, version: RoomVersion) -> None:
    """The m.room.create rules: no prev_events, room ID shape, known version, creator fields.

    Spec: rooms/v12, "Authorisation rules", rule 1 (and rooms/v1, rooms/v11 for older versions).
    """
    if event.prev_events:
        raise AuthRuleViolation(rule_number(version, "create", 1), "m.room.create has prev_events")
    if version.room_id_is_create_event_id:
        if "room_id" in event.raw:
            raise AuthRuleViolation(rule_number(version, "create", 2), "m.room.create has a room_id")
    elif server_name_of(event.room_id) != server_name_of_user(event.sender):
        raise AuthRuleViolation(rule_number(version, "create", 2), "room_id domain does not match sender's")
    room_version = event.content.get("room_version", "1")
    if room_version not in KNOWN_ROOM_VERSIONS:
        raise AuthRuleViolation(rule_number(version, "create", 3), f"unknown room_version {room_version!r}")
    if version.creator_in_content and "creator" not in event.content:
        raise AuthRuleViolation(rule_number(version, "create", 4), "content has no creator")
    if version.additional_creators and "additional_creators" in event.content:
        extra: Any = event.content["additional_creators"]
        if not isinstance(extra, list) or not all(isinstance(u, str) and is_valid_user_id(u) for u in extra):
            raise AuthRuleViolation(rule_number(version, "create", 4), "additional_creators is not a list of user IDs")


def _check_aliases(event: Pdu, version: RoomVersion) -> None:
    """The v1-5 m.room.aliases rule: the state_key is the sender's domain.

    Spec: rooms/v1, "Authorisation rules", rule 4.
    """
    if event.state_key is None:
        raise AuthRuleViolation(rule_number(version, "aliases", 1), "m.room.aliases has no state_key")
    if event.state_key != server_name_of_user(event.sender):
        raise AuthRuleViolation(rule_number(version, "aliases", 2), "state_key is not the sender's domain")


def _check_sender_may_send(event: Pdu, state: AuthState) -> None:
    """The rules for every non-member event: joined sender, invite level, required level, `@` state keys.

    Spec: rooms/v12, "Authorisation rules", rules 6 to 9.
    """
    version = state.version
    if state.membership(event.sender) != "join":
        raise AuthRuleViolation(rule_number(version, "sender_joined"), "sender is not joined")
    sender_level = state.user_power_level(event.sender)
    if event.type == "m.room.third_party_invite":
        if sender_level >= state.power_levels.invite:
            return
        raise AuthRuleViolation(rule_number(version, "third_party_invite", 1), "below the invite level")
    if state.power_levels.required_level(event.type, event.is_state) > sender_level:
        raise AuthRuleViolation(rule_number(version, "required_power_level"), f"may not send {event.type}")
    if event.state_key is not None and event.state_key.startswith("@") and event.state_key != event.sender:
        raise AuthRuleViolation(rule_number(version, "state_key_user"), "state_key names another user")


def auth_state_for(auth_events: Mapping[tuple[str, str], Pdu], create: Pdu, version: RoomVersion) -> AuthState:
    """The AuthState (power levels, memberships, creators) of a state map, for callers outside the rules.

    Spec: server-server-api, "Definitions".
    """
    return AuthState.build(auth_events, create, version)
