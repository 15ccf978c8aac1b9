"""Auth rules for m.room.power_levels, power level defaults, and v12 room creators."""
from __future__ import annotations

import math

import pytest

from pocketserver.rooms.auth_rules import auth_state_for
from pocketserver.rooms.content import PowerLevels, parse_power_level_value
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS

from roomgraph import ALICE, BOB, CAROL, ZOE, check, make_room, rejected_rule

PL = {"1": "10", "5": "10", "6": "9", "9": "9", "10": "9", "11": "9", "12": "10"}
# Sub-step offsets: v10+ add two type checks in front, v12 adds the creators check after `users`.
STEP = {
    "1": {"users": 1, "scalars": 3, "events_removed": 4, "events_added": 5, "users_removed": 6, "users_added": 7},
    "10": {"scalar_types": 1, "map_types": 2, "users": 3, "scalars": 5, "events_removed": 6, "events_added": 7,
           "users_removed": 8, "users_added": 9},
    "12": {"scalar_types": 1, "map_types": 2, "users": 3, "creators": 4, "scalars": 6, "events_removed": 7,
           "events_added": 8, "users_removed": 9, "users_added": 10},
}


def _rule(version_id: str, step: str, sub: str = "") -> str:
    steps = STEP["12" if version_id == "12" else ("10" if int(version_id) >= 10 else "1")]
    return f"{PL[version_id]}.{steps[step]}{sub}"


def _room(version_id: str, **content):
    """alice 100 (creator), carol 50, bob 40, zoe joined with 0."""
    users = {CAROL: 50, BOB: 40} if version_id == "12" else {ALICE: 100, CAROL: 50, BOB: 40}
    room = make_room(version=version_id, preset="public_chat", members=[BOB, CAROL, ZOE], users=users)
    if content:
        room.add("power2", ALICE, "m.room.power_levels", {"users": users, **content}, "")
    return room


def _pl(room, sender, users_change=None, **content):
    users = dict(room.state[("m.room.power_levels", "")].content.get("users", {}))
    users.update(users_change or {})
    base = {k: v for k, v in room.state[("m.room.power_levels", "")].content.items() if k != "users"}
    return room.add("new_pl", sender, "m.room.power_levels", {**base, **content, "users": users}, "", apply=False)


@pytest.mark.parametrize(("value", "version_id", "expected"), [
    (50, "10", 50), ("50", "9", 50), (" +007 ", "1", 7), ("-3", "9", -3), ("50", "10", None), ("5x", "1", None),
    ("1_000", "1", None), (50.9, "5", 50), (50.9, "6", None), (float("inf"), "1", None), (True, "1", None),
    (None, "1", None),
])
def test_parse_power_level_value(value, version_id: str, expected) -> None:
    """Fragments v1-stringy- and v1-floaty-power-levels; rooms/v10 integers only."""
    assert parse_power_level_value(value, KNOWN_ROOM_VERSIONS[version_id]) == expected


def test_power_levels_defaults() -> None:
    """client-server-api, "m.room.power_levels": ban/kick/redact 50, invite 0, state 50, events 0, users 0."""
    levels = PowerLevels.from_content({}, KNOWN_ROOM_VERSIONS["12"])
    assert (levels.ban, levels.kick, levels.redact, levels.invite) == (50, 50, 50, 0)
    assert (levels.state_default, levels.events_default, levels.users_default) == (50, 0, 0)
    assert levels.required_level("m.room.topic", True) == 50 and levels.required_level("m.x", False) == 0
    assert levels.notification_level("room") == 50
    custom = PowerLevels.from_content({"events": {"m.room.topic": 10}, "notifications": {"room": 20}},
                                      KNOWN_ROOM_VERSIONS["12"])
    assert custom.required_level("m.room.topic", True) == 10 and custom.notification_level("room") == 20


@pytest.mark.parametrize(("version_id", "creator_level"), [("1", 100), ("11", 100), ("12", math.inf)])
def test_levels_without_power_levels_event(version_id: str, creator_level: float) -> None:
    """No m.room.power_levels: the creator has 100 (v1-11) or infinite power (v12), others 0."""
    room = make_room(version=version_id)
    state = {k: v for k, v in room.state.items() if k[0] != "m.room.power_levels"}
    auth = auth_state_for(state, room.create, room.version)
    assert auth.user_power_level(ALICE) == creator_level
    assert auth.user_power_level(BOB) == 0


@pytest.mark.parametrize("version_id", ["1", "9", "10", "12"])
def test_users_must_be_valid(version_id: str) -> None:
    """PL rule 1 (3 from v10): users must map valid user IDs to integers."""
    room = _room(version_id)
    assert rejected_rule(room, _pl(room, ALICE, {"bob": 10})) == _rule(version_id, "users")
    assert rejected_rule(room, _pl(room, ALICE, {BOB: "ten"})) == _rule(version_id, "users")
    string_level = _pl(room, ALICE, {BOB: "10"})
    if KNOWN_ROOM_VERSIONS[version_id].string_power_levels:
        check(room, string_level)
    else:
        assert rejected_rule(room, string_level) == _rule(version_id, "users")
    bad_users = room.add("x", ALICE, "m.room.power_levels", {"users": [BOB]}, "", apply=False)
    assert rejected_rule(room, bad_users) == _rule(version_id, "users")


def test_float_levels_until_v5() -> None:
    """Fragment v1-floaty-power-levels: v1-5 accept floats in power levels."""
    room = _room("5")
    check(room, _pl(room, ALICE, {BOB: 10.5}))


@pytest.mark.parametrize(("version_id", "allowed"), [("9", True), ("10", False), ("12", False)])
def test_integer_only_from_v10(version_id: str, allowed: bool) -> None:
    """rooms/v10 PL rules 1-2: scalar values and events/notifications values must be integers."""
    room = _room(version_id)
    scalar = _pl(room, ALICE, ban="50")
    events = _pl(room, ALICE, events={"m.room.name": "50"})
    notifications = _pl(room, ALICE, notifications={"room": "50"})
    if allowed:
        for event in (scalar, events, notifications):
            check(room, event)
    else:
        assert rejected_rule(room, scalar) == _rule(version_id, "scalar_types")
        assert rejected_rule(room, events) == _rule(version_id, "map_types")
        assert rejected_rule(room, notifications) == _rule(version_id, "map_types")
        assert rejected_rule(room, _pl(room, ALICE, events=[1])) == _rule(version_id, "map_types")
        assert rejected_rule(room, _pl(room, ALICE, kick=True)) == _rule(version_id, "scalar_types")


@pytest.mark.parametrize("version_id", ["1", "6", "10", "11", "12"])
def test_scalar_changes(version_id: str) -> None:
    """PL rule 3 (5, 6): changed scalars must be at most the sender's level, before and after."""
    room = _room(version_id, kick=60)
    check(room, _pl(room, CAROL, ban=40))                 # carol 50: 50 -> 40
    check(room, _pl(room, CAROL, kick=60))                # unchanged value above her is fine
    assert rejected_rule(room, _pl(room, CAROL, kick=50)) == _rule(version_id, "scalars", ".1")
    assert rejected_rule(room, _pl(room, CAROL, ban=51)) == _rule(version_id, "scalars", ".2")
    assert rejected_rule(room, _pl(room, CAROL, invite=51)) == _rule(version_id, "scalars", ".2")
    check(room, _pl(room, CAROL, redact=50))


@pytest.mark.parametrize("version_id", ["1", "6", "10", "12"])
def test_events_changes(version_id: str) -> None:
    """PL rules 4-5 (6-7, 7-8): event levels may only move between values at most the sender's."""
    room = _room(version_id, events={"m.room.name": 100, "m.room.topic": 50})
    assert rejected_rule(room, _pl(room, CAROL, events={"m.room.name": 50, "m.room.topic": 50})) == _rule(
        version_id, "events_removed", ".1")
    assert rejected_rule(room, _pl(room, CAROL, events={"m.room.topic": 50})) == _rule(
        version_id, "events_removed", ".1")
    assert rejected_rule(room, _pl(room, CAROL, events={"m.room.name": 100, "m.room.topic": 50, "m.x": 51})) == _rule(
        version_id, "events_added", ".1")
    check(room, _pl(room, CAROL, events={"m.room.name": 100, "m.room.topic": 20, "m.x": 50}))


@pytest.mark.parametrize(("version_id", "limited"), [("5", False), ("6", True), ("12", True)])
def test_notifications_limited_from_v6(version_id: str, limited: bool) -> None:
    """rooms/v6 PL rules 4-5: the notifications object is checked like events."""
    room = _room(version_id, notifications={"room": 100})
    event = _pl(room, CAROL, notifications={"room": 0})
    if limited:
        assert rejected_rule(room, event) == _rule(version_id, "events_removed", ".1")
    else:
        check(room, event)


@pytest.mark.parametrize("version_id", ["1", "6", "10", "11", "12"])
def test_users_changes(version_id: str) -> None:
    """PL rules 6-7 (8-9, 9-10): others at or above the sender may not change; nobody goes above the sender."""
    room = _room(version_id)
    check(room, _pl(room, CAROL, {BOB: 10}))                          # bob 40 < carol 50
    check(room, _pl(room, CAROL, {ZOE: 50}))                          # up to her own level
    check(room, _pl(room, CAROL, {CAROL: 10}))                        # her own entry may drop
    assert rejected_rule(room, _pl(room, CAROL, {ZOE: 51})) == _rule(version_id, "users_added", ".1")
    assert rejected_rule(room, _pl(room, CAROL, {CAROL: 60})) == _rule(version_id, "users_added", ".1")
    room2 = _room(version_id)
    room2.add("p3", ALICE, "m.room.power_levels", {"users": {**room2.state[("m.room.power_levels", "")].content["users"],
                                                            ZOE: 50}}, "")
    assert rejected_rule(room2, _pl(room2, CAROL, {ZOE: 0})) == _rule(version_id, "users_removed", ".1")
    removed = dict(room2.state[("m.room.power_levels", "")].content)
    removed["users"] = {k: v for k, v in removed["users"].items() if k != ZOE}
    assert rejected_rule(room2, room2.add("rm", CAROL, "m.room.power_levels", removed, "", apply=False)) == _rule(
        version_id, "users_removed", ".1")


def test_v12_creators_may_not_be_listed() -> None:
    """rooms/v12 PL rule 10.4: users must not contain the create sender or an additional creator."""
    room = make_room(version="12", additional_creators=[BOB], members=[BOB, CAROL])
    assert rejected_rule(room, _pl(room, ALICE, {ALICE: 100})) == "10.4"
    assert rejected_rule(room, _pl(room, ALICE, {BOB: 100})) == "10.4"
    check(room, _pl(room, ALICE, {CAROL: 100}))
    room11 = make_room(version="11", members=[BOB])
    check(room11, _pl(room11, ALICE, {ALICE: 100, BOB: 50}))


def test_v12_creators_have_infinite_power() -> None:
    """rooms/v12 "room creators": they outrank everyone and cannot be demoted, kicked or banned."""
    room = make_room(version="12", additional_creators=[BOB], members=[BOB, CAROL], users={CAROL: 2**53 - 1})
    auth = auth_state_for(room.state, room.create, room.version)
    assert auth.user_power_level(ALICE) == math.inf == auth.user_power_level(BOB)
    kick_creator = room.member("k", ALICE, "leave", sender=CAROL, apply=False)
    assert rejected_rule(room, kick_creator) == "5.5.5"
    creators_kick = room.member("k2", ALICE, "leave", sender=BOB, apply=False)
    assert rejected_rule(room, creators_kick) == "5.5.5"
    check(room, room.member("b", CAROL, "ban", sender=BOB, apply=False))
    check(room, _pl(room, BOB, {CAROL: 0}, state_default=2**53 - 1))


def test_v11_creator_loses_power_when_not_listed() -> None:
    """Before v12 the creator's power comes only from the power levels once they exist."""
    room = make_room(version="11", members=[BOB, CAROL], users={CAROL: 100})
    assert rejected_rule(room, room.member("b", BOB, "ban", sender=ALICE, apply=False)) == "4.6.3"
    room12 = make_room(version="12", members=[BOB, CAROL], users={CAROL: 100})
    check(room12, room12.member("b", BOB, "ban", sender=ALICE, apply=False))
