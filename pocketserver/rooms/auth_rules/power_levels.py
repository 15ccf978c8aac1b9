"""The authorisation rules for m.room.power_levels events.

Spec: rooms/v12, "Authorisation rules", rule 10 (rule 9 in v6-11, rule 10 in v1-5).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pocketserver.rooms.auth_rules.context import AuthRuleViolation, AuthState, rule_number
from pocketserver.rooms.content import PowerLevel, parse_power_level_value
from pocketserver.rooms.events import Pdu
from pocketserver.rooms.identifiers import is_valid_user_id
from pocketserver.rooms.versions import RoomVersion

_SCALARS = ("users_default", "events_default", "state_default", "ban", "redact", "kick", "invite")


def _is_integer(value: Any) -> bool:
    """Whether a JSON value is an integer (JSON booleans are not).

    Spec: rooms/v10, "Values in m.room.power_levels events must be integers".
    """
    return isinstance(value, int) and not isinstance(value, bool)


def _step(version: RoomVersion, step: str) -> str:
    """The spec's number of a power-levels sub-step, which shifts as v10 and v12 add checks.

    Spec: rooms/v1, rooms/v10 and rooms/v12, "Authorisation rules".
    """
    steps = ["users", "no_previous", "scalars", "events_removed", "events_added", "users_removed",
             "users_added"]
    if version.privileged_creators:
        steps.insert(1, "creators")
    if not version.string_power_levels:
        steps[:0] = ["scalar_types", "map_types"]
    return rule_number(version, "power_levels", steps.index(step) + 1)


def _check_structure(content: Mapping[str, Any], state: AuthState) -> None:
    """Integer-only values (v10+), a well-formed `users` object, and no room creators in it (v12+).

    Spec: rooms/v12, "Authorisation rules", rules 10.1 to 10.4.
    """
    version = state.version
    if not version.string_power_levels:
        for name in _SCALARS:
            if name in content and not _is_integer(content[name]):
                raise AuthRuleViolation(_step(version, "scalar_types"), f"{name} is not an integer", malformed=True)
        for name in ("events", "notifications"):
            if name in content and not (
                isinstance(content[name], Mapping) and all(_is_integer(v) for v in content[name].values())
            ):
                raise AuthRuleViolation(_step(version, "map_types"), f"{name} is not an object of integers",
                                        malformed=True)
    users = content.get("users", {})
    if not isinstance(users, Mapping):
        raise AuthRuleViolation(_step(version, "users"), "users is not an object", malformed=True)
    for user_id, level in users.items():
        if not is_valid_user_id(user_id) or parse_power_level_value(level, version) is None:
            raise AuthRuleViolation(_step(version, "users"), f"invalid users entry {user_id!r}", malformed=True)
        if not version.string_power_levels and not _is_integer(level):
            raise AuthRuleViolation(_step(version, "users"), f"users entry {user_id!r} is not an integer",
                                    malformed=True)
    if version.privileged_creators and state.create.creators & set(users):
        raise AuthRuleViolation(_step(version, "creators"), "users names a room creator", malformed=True)


def _levels(value: Any, version: RoomVersion) -> dict[str, int]:
    """The readable `{key: level}` entries of an events/notifications/users object.

    Spec: client-server-api, "m.room.power_levels".
    """
    if not isinstance(value, Mapping):
        return {}
    parsed = {k: parse_power_level_value(v, version) for k, v in value.items()}
    return {k: v for k, v in parsed.items() if v is not None}


def check_power_levels(event: Pdu, state: AuthState) -> None:
    """Raise AuthRuleViolation unless the m.room.power_levels event is allowed; return if it is.

    Spec: rooms/v12, "Authorisation rules", rule 10.
    """
    version = state.version
    _check_structure(event.content, state)
    if state.power_levels_event is None:
        return
    old, new = state.power_levels_event.content, event.content
    sender_level: PowerLevel = state.user_power_level(event.sender)
    for name in _SCALARS:
        before = parse_power_level_value(old.get(name), version)
        after = parse_power_level_value(new.get(name), version)
        if before == after:
            continue
        if before is not None and before > sender_level:
            raise AuthRuleViolation(_step(version, "scalars") + ".1", f"current {name} is above the sender's level")
        if after is not None and after > sender_level:
            raise AuthRuleViolation(_step(version, "scalars") + ".2", f"new {name} is above the sender's level")
    maps = ("events", "notifications") if version.limit_notifications_power_levels else ("events",)
    for name in maps:
        _check_map_changes(name, _levels(old.get(name), version), _levels(new.get(name), version),
                           sender_level, version)
    _check_users_changes(event.sender, _levels(old.get("users"), version), _levels(new.get("users"), version),
                         sender_level, version)


def _check_map_changes(
    name: str, before: dict[str, int], after: dict[str, int], sender_level: PowerLevel, version: RoomVersion
) -> None:
    """Entries of `events` (and `notifications` from v6) may change only between levels the sender holds.

    Spec: rooms/v12, "Authorisation rules", rules 10.7 and 10.8.
    """
    for key, level in before.items():
        if after.get(key) != level and level > sender_level:
            raise AuthRuleViolation(_step(version, "events_removed") + ".1", f"current {name}[{key!r}] is too high")
    for key, level in after.items():
        if before.get(key) != level and level > sender_level:
            raise AuthRuleViolation(_step(version, "events_added") + ".1", f"new {name}[{key!r}] is too high")


def _check_users_changes(
    sender: str, before: dict[str, int], after: dict[str, int], sender_level: PowerLevel, version: RoomVersion
) -> None:
    """Users at or above the sender's level may not be changed; nobody may be raised above it.

    Spec: rooms/v12, "Authorisation rules", rules 10.9 and 10.10.
    """
    for user_id, level in before.items():
        if user_id != sender and after.get(user_id) != level and level >= sender_level:
            raise AuthRuleViolation(_step(version, "users_removed") + ".1", f"may not change {user_id}'s level")
    for user_id, level in after.items():
        if before.get(user_id) != level and level > sender_level:
            raise AuthRuleViolation(_step(version, "users_added") + ".1", f"may not raise {user_id} above oneself")
