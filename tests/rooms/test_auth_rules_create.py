"""Auth rules for m.room.create, the room ID (v12), the auth_events list, m.federate and m.room.aliases."""
from __future__ import annotations

import pytest

from pocketserver.rooms.auth_rules import AuthRuleViolation, check_auth_events, check_auth_rules
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS

from roomgraph import ALICE, BOB, CAROL, check, make_room, rejected_rule, resign

ALL = [str(n) for n in range(1, 13)]


@pytest.mark.parametrize("version_id", ALL)
def test_whole_room_is_allowed(version_id: str) -> None:
    """Every event of a freshly built room passes the rules against the state before it."""
    room = make_room(version=version_id, members=[BOB, CAROL])
    state: dict = {}
    for event in room.named.values():
        check(room, event, state)
        state[event.state_tuple] = event


@pytest.mark.parametrize("version_id", ALL)
def test_create_with_prev_events_rejected(version_id: str) -> None:
    """Rule 1.1: a create event with prev_events is rejected."""
    room = make_room(version=version_id)
    bad = resign(room["create"], room.version, lambda raw: raw.update(prev_events=room["power"].raw["prev_events"]))
    assert rejected_rule(room, bad) == "1.1"


@pytest.mark.parametrize("version_id", [str(n) for n in range(1, 12)])
def test_create_room_id_domain_must_match_sender(version_id: str) -> None:
    """Rule 1.2 (v1-11): the room ID's domain must be the sender's."""
    room = make_room(version=version_id)
    bad = resign(room["create"], room.version, lambda raw: raw.update(room_id="!room:b.test"))
    assert rejected_rule(room, bad) == "1.2"


def test_v12_create_must_not_have_room_id() -> None:
    """rooms/v12 rule 1.2: a create event with a room_id is rejected."""
    room = make_room(version="12")
    bad = resign(room["create"], room.version, lambda raw: raw.update(room_id=room.room_id))
    assert rejected_rule(room, bad) == "1.2"
    check(room, room["create"])


@pytest.mark.parametrize("version_id", ALL)
def test_create_unknown_room_version(version_id: str) -> None:
    """Rule 1.3: content.room_version must be recognised; absent means "1"."""
    room = make_room(version=version_id)
    bad = resign(room["create"], room.version, lambda raw: raw["content"].update(room_version="99"))
    assert rejected_rule(room, bad) == "1.3"
    absent = resign(room["create"], room.version, lambda raw: raw["content"].pop("room_version"))
    check(room, absent)


def test_create_creator_required_until_v10() -> None:
    """Rule 1.4 (v1-10): content.creator is required; rooms/v11 removes the rule."""
    for version_id, allowed in (("10", False), ("11", True), ("1", False)):
        room = make_room(version=version_id)
        event = resign(room["create"], room.version, lambda raw: raw["content"].pop("creator", None))
        if allowed:
            check(room, event)
        else:
            assert rejected_rule(room, event) == "1.4"


def test_v12_additional_creators_must_be_user_ids() -> None:
    """rooms/v12 rule 1.4: additional_creators must be a list of valid user IDs; v11 does not look."""
    room = make_room(version="12", additional_creators=[BOB])
    check(room, room["create"])
    for bad in ("@bob:b.test", ["bob"], [3], ["@bob:b.test", "@:"]):
        event = resign(room["create"], room.version, lambda raw: raw["content"].update(additional_creators=bad))
        assert rejected_rule(room, event) == "1.4"
    room11 = make_room(version="11")
    check(room11, resign(room11["create"], room11.version,
                         lambda raw: raw["content"].update(additional_creators="junk")))


def test_v12_room_id_must_name_the_create_event() -> None:
    """rooms/v12 rule 2: the room_id is the create event's ID with `!`."""
    room = make_room(version="12")
    other = make_room(version="12", creator=CAROL)
    event = room.add("msg", ALICE, "m.room.message", {"body": "hi"}, apply=False)
    check(room, event)
    with pytest.raises(AuthRuleViolation) as info:
        check_auth_rules(event, room.state, room.version, create=other.create)
    assert info.value.rule == "2"
    with pytest.raises(AuthRuleViolation) as info:
        check_auth_rules(event, {}, room.version)
    assert info.value.rule == "2"


def test_v11_requires_a_create_event() -> None:
    """Rule 2.4 (v1-11): without an m.room.create the event is rejected."""
    room = make_room(version="11")
    event = room.add("msg", ALICE, "m.room.message", {"body": "hi"}, apply=False)
    state = {k: v for k, v in room.state.items() if k[0] != "m.room.create"}
    with pytest.raises(AuthRuleViolation) as info:
        check_auth_rules(event, state, room.version)
    assert info.value.rule == "2.4"
    check_auth_rules(event, room.state, room.version)   # create found in the state map


def _auth_list(room, event):
    return [room.events[e] for e in event.auth_events]


@pytest.mark.parametrize(("version_id", "prefix"), [("6", "2"), ("11", "2"), ("12", "3")])
def test_auth_events_list(version_id: str, prefix: str) -> None:
    """Rule 2 (v1-11) / 3 (v12): duplicates, unselected, rejected, missing create, other rooms."""
    room = make_room(version=version_id, members=[BOB])
    version = room.version
    message = room.add("msg", BOB, "m.room.message", {"body": "hi"}, apply=False)
    good = _auth_list(room, message)
    check_auth_events(message, good, version)

    def rule(auth_events, rejected=frozenset()) -> str:
        with pytest.raises(AuthRuleViolation) as info:
            check_auth_events(message, auth_events, version, rejected)
        return info.value.rule

    assert rule(good + [room["power"]]) == f"{prefix}.1"
    assert rule(good + [room["join_rules"]]) == f"{prefix}.2"
    assert rule(good, rejected={room["power"].event_id}) == f"{prefix}.3"
    if version.create_in_auth_events:
        assert rule([e for e in good if e.type != "m.room.create"]) == "2.4"
    else:
        assert rule(good + [room["create"]]) == "3.2"
    other = make_room(version=version_id, creator=CAROL)
    if version.room_id_is_create_event_id:
        foreign = [other["power"] if e.type == "m.room.power_levels" else e for e in good]
    else:
        foreign = [resign(e, version, lambda raw: raw.update(room_id="!other:a.test")) if e.type == "m.room.power_levels" else e for e in good]
    assert rule(foreign) == f"{prefix}.5"
    assert rule(good + [message]) == f"{prefix}.2"   # a message event is never selected


def test_auth_events_list_ignores_create_event() -> None:
    """The create event's auth_events are empty and not checked."""
    room = make_room(version="10")
    check_auth_events(room["create"], [], room.version)


@pytest.mark.parametrize(("version_id", "rule"), [("5", "3"), ("11", "3"), ("12", "4")])
def test_m_federate_false(version_id: str, rule: str) -> None:
    """Rule 3 (4 in v12): with m.federate false only the create sender's server may take part."""
    room = make_room(version=version_id, preset="public_chat", **{"m.federate": False})
    bob_join = room.member("bob_join", BOB, "join", apply=False)
    assert rejected_rule(room, bob_join) == rule
    carol_join = room.member("carol_join", CAROL, "join", apply=False)
    check(room, carol_join)
    open_room = make_room(version=version_id, preset="public_chat")
    check(open_room, open_room.member("bob_join", BOB, "join", apply=False))


def test_aliases_special_case_v1_to_v5() -> None:
    """rooms/v1 rule 4: m.room.aliases needs only state_key == sender's domain, even from a non-member."""
    room = make_room(version="5")
    check(room, room.add("aliases", BOB, "m.room.aliases", {"aliases": ["#x:b.test"]}, "b.test", apply=False))
    assert rejected_rule(room, room.add("bad", BOB, "m.room.aliases", {"aliases": []}, "a.test", apply=False)) == "4.2"
    assert rejected_rule(room, room.add("none", BOB, "m.room.aliases", {"aliases": []}, apply=False)) == "4.1"


def test_aliases_are_ordinary_state_from_v6() -> None:
    """rooms/v6: rule 4 is removed; m.room.aliases passes the usual state event rules."""
    room = make_room(version="6")
    assert rejected_rule(room, room.add("aliases", BOB, "m.room.aliases", {"aliases": []}, "b.test", apply=False)) == "5"
    check(room, room.add("mine", ALICE, "m.room.aliases", {"aliases": []}, "x.test", apply=False))
    assert KNOWN_ROOM_VERSIONS["6"].special_case_aliases_auth is False
