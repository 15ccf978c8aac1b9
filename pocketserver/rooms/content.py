"""Typed views of the event content that the authorisation rules read, with the spec's defaults.

Spec: client-server-api, "m.room.power_levels", "m.room.join_rules", "m.room.member", "m.room.create".
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pocketserver.rooms.events import Pdu
from pocketserver.rooms.versions import RoomVersion

PowerLevel = int | float     # float only for the infinite power of v12+ room creators
INFINITE_POWER = math.inf
_STRING_INTEGER = re.compile(r"^\s*[+-]?[0-9]+\s*$")
_EMPTY: Mapping[str, int] = MappingProxyType({})


def parse_power_level_value(value: Any, version: RoomVersion) -> int | None:
    """The integer a power level value stands for in this room version, or None if it stands for none.

    Spec: fragments v1-stringy-power-levels and v1-floaty-power-levels; rooms/v10,
    "Values in m.room.power_levels events must be integers".
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and version.float_power_levels:
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str) and version.string_power_levels and _STRING_INTEGER.match(value):
        return int(value.strip())
    return None


def _parse_level_map(value: Any, version: RoomVersion) -> Mapping[str, int]:
    """A `{key: level}` object with unusable values dropped.

    Spec: client-server-api, "m.room.power_levels" (`events`, `notifications`, `users`).
    """
    if not isinstance(value, Mapping):
        return _EMPTY
    parsed = {}
    for key, level in value.items():
        number = parse_power_level_value(level, version)
        if number is not None:
            parsed[key] = number
    return MappingProxyType(parsed)


@dataclass(frozen=True, slots=True)
class PowerLevels:
    """The content of m.room.power_levels; the field defaults are the spec's defaults."""

    ban: int = 50
    events: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    events_default: int = 0
    invite: int = 0
    kick: int = 50
    redact: int = 50
    state_default: int = 50
    users: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    users_default: int = 0
    notifications: Mapping[str, int] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def from_content(cls, content: Mapping[str, Any], version: RoomVersion) -> PowerLevels:
        """Read the levels from an event's content, ignoring values the room version cannot read.

        Spec: client-server-api, "m.room.power_levels".
        """
        scalars = {}
        for name in ("ban", "events_default", "invite", "kick", "redact", "state_default", "users_default"):
            number = parse_power_level_value(content.get(name), version)
            if number is not None:
                scalars[name] = number
        return cls(
            events=_parse_level_map(content.get("events"), version),
            users=_parse_level_map(content.get("users"), version),
            notifications=_parse_level_map(content.get("notifications"), version),
            **scalars,
        )

    def required_level(self, event_type: str, is_state: bool) -> int:
        """The event type's *required power level*: `events`, else state_default or events_default.

        Spec: server-server-api, "Definitions" ("Required Power Level").
        """
        if event_type in self.events:
            return self.events[event_type]
        return self.state_default if is_state else self.events_default

    def notification_level(self, key: str) -> int:
        """The level needed to trigger a notification kind; `room` defaults to 50.

        Spec: client-server-api, "m.room.power_levels" (`notifications`).
        """
        return self.notifications.get(key, 50)


@dataclass(frozen=True, slots=True)
class RoomCreate:
    """What the rules read from m.room.create: the creator(s), m.federate and the room version."""

    sender: str
    creator: str | None          # `content.creator` (v1-10) or the sender (v11+): who may join first
    creators: frozenset[str]     # the creator plus, from v12, `additional_creators`
    federate: bool
    room_version: str

    @classmethod
    def from_event(cls, create: Pdu, version: RoomVersion) -> RoomCreate:
        """Read the creators: `content.creator` (v1-10), the sender (v11), plus `additional_creators` (v12+).

        Spec: rooms/v11, "Remove the creator property"; rooms/v12, "Authorisation rules" (room creators).
        """
        content = create.content
        if version.creator_in_content:
            named = content.get("creator")
            creator = named if isinstance(named, str) else None
        else:
            creator = create.sender
        creators = {creator} if creator is not None else set()
        extra = content.get("additional_creators")
        if version.additional_creators and isinstance(extra, list):
            creators.update(u for u in extra if isinstance(u, str))
        room_version = content.get("room_version", "1")
        return cls(
            sender=create.sender,
            creator=creator,
            creators=frozenset(creators),
            federate=content.get("m.federate", True) is not False,
            room_version=room_version if isinstance(room_version, str) else "1",
        )


@dataclass(frozen=True, slots=True)
class JoinRules:
    """The content of m.room.join_rules; a room without one behaves as `invite`."""

    join_rule: str = "invite"
    allow: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> JoinRules:
        """Read `join_rule` and the `allow` conditions.

        Spec: client-server-api, "m.room.join_rules".
        """
        join_rule = content.get("join_rule")
        allow = content.get("allow")
        return cls(
            join_rule=join_rule if isinstance(join_rule, str) else "invite",
            allow=tuple(a for a in allow if isinstance(a, Mapping)) if isinstance(allow, list) else (),
        )


@dataclass(frozen=True, slots=True)
class Membership:
    """The content of m.room.member that the rules read."""

    membership: str | None
    join_authorised_via_users_server: str | None = None
    third_party_invite: Mapping[str, Any] | None = None

    @classmethod
    def from_content(cls, content: Mapping[str, Any]) -> Membership:
        """Read `membership`, `join_authorised_via_users_server` and `third_party_invite`.

        Spec: client-server-api, "m.room.member".
        """
        membership = content.get("membership")
        via = content.get("join_authorised_via_users_server")
        invite = content.get("third_party_invite")
        return cls(
            membership=membership if isinstance(membership, str) else None,
            join_authorised_via_users_server=via if isinstance(via, str) else None,
            third_party_invite=invite if isinstance(invite, Mapping) else None,
        )
