"""The violation type, the state an event is checked against, and the per-version rule numbers.

Spec: rooms/v12, "Authorisation rules"; server-server-api, "Definitions".
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from pocketserver.rooms.content import INFINITE_POWER, JoinRules, Membership, PowerLevel, PowerLevels, RoomCreate
from pocketserver.rooms.events import Pdu, StateKey
from pocketserver.rooms.versions import RoomVersion

StateMap = Mapping[StateKey, Pdu]
CREATE_KEY: StateKey = ("m.room.create", "")
POWER_LEVELS_KEY: StateKey = ("m.room.power_levels", "")
JOIN_RULES_KEY: StateKey = ("m.room.join_rules", "")


class AuthRuleViolation(Exception):
    """An event fails the authorisation rule numbered `rule` (numbered as in its room version's page).

    `malformed` marks a failure of the content's shape rather than of the sender's rights: a
    client that sends such an event gets 400 M_BAD_JSON, as from Synapse, not 403.
    """

    def __init__(self, rule: str, message: str, *, malformed: bool = False) -> None:
        super().__init__(f"auth rule {rule}: {message}")
        self.rule = rule
        self.message = message
        self.malformed = malformed


# Top-level rule numbers by era: v1-5 (with the aliases rule), v6-11, v12 (with the room ID rule).
_TOP_LEVEL = {
    "create": (1, 1, 1), "room_id": (0, 0, 2), "auth_events": (2, 2, 3), "federate": (3, 3, 4),
    "aliases": (4, 0, 0), "member": (5, 4, 5), "sender_joined": (6, 5, 6), "third_party_invite": (7, 6, 7),
    "required_power_level": (8, 7, 8), "state_key_user": (9, 8, 9), "power_levels": (10, 9, 10),
    "redaction": (11, 0, 0),
}


def rule_number(version: RoomVersion, name: str, *sub: int) -> str:
    """The spec's number for a named top-level rule in this room version, with sub-steps appended.

    Spec: rooms/v1, rooms/v6 and rooms/v12, "Authorisation rules" (the numbering shifts).
    """
    era = 0 if version.special_case_aliases_auth else (2 if version.room_id_is_create_event_id else 1)
    return ".".join(str(n) for n in (_TOP_LEVEL[name][era], *sub))


def server_name_of_user(user_id: str) -> str:
    """The domain of a user ID (everything after the first colon).

    Spec: appendices, "User Identifiers".
    """
    return user_id.partition(":")[2]


class AuthState(NamedTuple):
    """The room state an event is checked against, with the values the rules derive from it."""

    events: StateMap
    create: RoomCreate
    create_event: Pdu
    power_levels_event: Pdu | None
    power_levels: PowerLevels
    version: RoomVersion

    @classmethod
    def build(cls, events: StateMap, create: Pdu, version: RoomVersion) -> AuthState:
        """Read the create and power levels events out of the state once.

        Spec: server-server-api, "Definitions".
        """
        pl_event = events.get(POWER_LEVELS_KEY)
        levels = PowerLevels.from_content(pl_event.content, version) if pl_event else PowerLevels()
        return cls(events, RoomCreate.from_event(create, version), create, pl_event, levels, version)

    def membership(self, user_id: str) -> str | None:
        """The user's current membership (`join`, `invite`, ...), None when they have no member event.

        Spec: rooms/v12, "Authorisation rules" ("current membership state").
        """
        member = self.events.get(("m.room.member", user_id))
        return Membership.from_content(member.content).membership if member else None

    @property
    def join_rule(self) -> str:
        """The current join rule; `invite` when the room has no m.room.join_rules event.

        Spec: client-server-api, "m.room.join_rules".
        """
        event = self.events.get(JOIN_RULES_KEY)
        return JoinRules.from_content(event.content).join_rule if event else "invite"

    def user_power_level(self, user_id: str) -> PowerLevel:
        """The user's power level: infinite for v12+ creators, else `users`/`users_default`, else 100 for the creator.

        Spec: client-server-api, "m.room.power_levels" (`users_default` notes); rooms/v12,
        "Authorisation rules" (room creators).
        """
        if self.version.privileged_creators and user_id in self.create.creators:
            return INFINITE_POWER
        if self.power_levels_event is not None:
            return self.power_levels.users.get(user_id, self.power_levels.users_default)
        if not self.version.privileged_creators and user_id in self.create.creators:
            return 100
        return 0
