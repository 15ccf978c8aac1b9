"""Which state events a new event cites as its auth_events, and checks on a received event's list.

Spec: server-server-api, "Auth events selection"; rooms/v12, "Authorisation rules", rule 3
(rule 2 before v12).
"""
from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import Any

from pocketserver.rooms.auth_rules.context import (
    CREATE_KEY, JOIN_RULES_KEY, POWER_LEVELS_KEY, AuthRuleViolation, StateMap, rule_number,
)
from pocketserver.rooms.events import Pdu, StateKey
from pocketserver.rooms.versions import RoomVersion


def auth_types_for_event(
    event_type: str, sender: str, state_key: str | None, content: Mapping[str, Any], version: RoomVersion
) -> set[StateKey]:
    """The `(type, state_key)` keys of the state events an event of this shape should cite.

    Spec: server-server-api, "Auth events selection".
    """
    if event_type == "m.room.create":
        return set()
    keys = {POWER_LEVELS_KEY, ("m.room.member", sender)}
    if version.create_in_auth_events:
        keys.add(CREATE_KEY)
    if event_type == "m.room.member" and state_key is not None:
        keys.add(("m.room.member", state_key))
        membership = content.get("membership")
        if membership in ("join", "invite", "knock"):
            keys.add(JOIN_RULES_KEY)
        invite = content.get("third_party_invite")
        if membership == "invite" and isinstance(invite, Mapping):
            signed = invite.get("signed")
            token = signed.get("token") if isinstance(signed, Mapping) else None
            if isinstance(token, str):
                keys.add(("m.room.third_party_invite", token))
        via = content.get("join_authorised_via_users_server")
        if membership == "join" and isinstance(via, str) and version.restricted_join_rule:
            keys.add(("m.room.member", via))
    return keys


def select_auth_events(
    event_type: str, sender: str, state_key: str | None, content: Mapping[str, Any], state: StateMap,
    version: RoomVersion,
) -> list[Pdu]:
    """The events of the current state a new local event should list in auth_events, in a stable order.

    Spec: server-server-api, "Auth events selection".
    """
    keys = auth_types_for_event(event_type, sender, state_key, content, version)
    return [state[key] for key in sorted(keys) if key in state]


def check_auth_events(
    event: Pdu, auth_events: Sequence[Pdu], version: RoomVersion, rejected: Container[str] = frozenset()
) -> None:
    """Raise AuthRuleViolation if the event's own auth_events break the rules about them.

    `auth_events` are the events the event's auth_events IDs name; `rejected` holds the IDs of
    events rejected on receipt.

    Spec: rooms/v12, "Authorisation rules", rule 3 (rule 2 in v1-11).
    """
    if event.type == "m.room.create":
        return
    allowed = auth_types_for_event(event.type, event.sender, event.state_key, event.content, version)
    seen: set[StateKey] = set()
    for auth_event in auth_events:
        if auth_event.state_key is None:
            raise AuthRuleViolation(rule_number(version, "auth_events", 2), f"{auth_event.event_id} is not state")
        key = auth_event.state_tuple
        if key in seen:
            raise AuthRuleViolation(rule_number(version, "auth_events", 1), f"duplicate auth event for {key}")
        seen.add(key)
        if key not in allowed:
            raise AuthRuleViolation(rule_number(version, "auth_events", 2), f"auth event {key} is not selected")
        if auth_event.event_id in rejected:
            raise AuthRuleViolation(rule_number(version, "auth_events", 3), f"{auth_event.event_id} was rejected")
    if version.create_in_auth_events and CREATE_KEY not in seen:
        raise AuthRuleViolation(rule_number(version, "auth_events", 4), "no m.room.create among auth_events")
    for auth_event in auth_events:
        if auth_event.room_id != event.room_id:
            raise AuthRuleViolation(rule_number(version, "auth_events", 5), f"{auth_event.event_id} is in another room")
