"""Auth rules for other events (joined sender, m.room.third_party_invite, required level, `@` state keys,
v1-2 redactions), "Handling redactions", and auth events selection."""
from __future__ import annotations

import pytest

from pocketserver.rooms.auth_rules import (
    auth_state_for, auth_types_for_event, check_redaction_applies, select_auth_events,
)
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS

from roomgraph import ALICE, BOB, CAROL, ZOE, check, make_room, rejected_rule

# (sender joined, third-party invite, required level, state_key user) per era
TOP = {"1": ("6", "7", "8", "9"), "6": ("5", "6", "7", "8"), "11": ("5", "6", "7", "8"), "12": ("6", "7", "8", "9")}


@pytest.mark.parametrize("version_id", TOP)
def test_sender_must_be_joined(version_id: str) -> None:
    """Rule 6 (5 in v6-11): non-member events need a joined sender."""
    room = make_room(version=version_id, members=[BOB])
    check(room, room.add("m", BOB, "m.room.message", {"body": "hi"}, apply=False))
    assert rejected_rule(room, room.add("z", ZOE, "m.room.message", {"body": "hi"}, apply=False)) == TOP[version_id][0]
    room.member("bob_leave", BOB, "leave")
    assert rejected_rule(room, room.add("b", BOB, "m.room.message", {"body": "hi"}, apply=False)) == TOP[version_id][0]


@pytest.mark.parametrize("version_id", TOP)
def test_third_party_invite_event_needs_invite_level(version_id: str) -> None:
    """Rule 7 (6 in v6-11): m.room.third_party_invite needs the invite level, not the state level."""
    room = make_room(version=version_id, members=[BOB])
    event = room.add("tpi", BOB, "m.room.third_party_invite", {"display_name": "x"}, "tok", apply=False)
    check(room, event)
    users = {} if version_id == "12" else {ALICE: 100}
    room.add("pl", ALICE, "m.room.power_levels", {"users": users, "invite": 1}, "")
    assert rejected_rule(room, event) == TOP[version_id][1] + ".1"


@pytest.mark.parametrize("version_id", TOP)
def test_required_power_level(version_id: str) -> None:
    """Rule 8 (7 in v6-11): the event type's required level: events, else state_default / events_default."""
    room = make_room(version=version_id, members=[BOB])
    assert rejected_rule(room, room.add("t", BOB, "m.room.topic", {"topic": "x"}, "", apply=False)) == TOP[version_id][2]
    users = {BOB: 0} if version_id == "12" else {ALICE: 100}
    room.add("pl", ALICE, "m.room.power_levels",
             {"users": users, "events_default": 10, "events": {"m.room.topic": 0}}, "")
    check(room, room.add("t2", BOB, "m.room.topic", {"topic": "x"}, "", apply=False))
    assert rejected_rule(room, room.add("m", BOB, "m.room.message", {"body": "x"}, apply=False)) == TOP[version_id][2]


@pytest.mark.parametrize("version_id", TOP)
def test_state_key_naming_another_user(version_id: str) -> None:
    """Rule 9 (8 in v6-11): a state_key starting with `@` must be the sender."""
    room = make_room(version=version_id)
    check(room, room.add("own", ALICE, "m.custom", {}, ALICE, apply=False))
    check(room, room.add("plain", ALICE, "m.custom", {}, "bob", apply=False))
    assert rejected_rule(room, room.add("other", ALICE, "m.custom", {}, BOB, apply=False)) == TOP[version_id][3]


@pytest.mark.parametrize("version_id", ["1", "2"])
def test_redaction_rule_v1_v2(version_id: str) -> None:
    """rooms/v1 rule 11: redact level, or the redacted event's ID has the redaction's ID's domain."""
    room = make_room(version=version_id, members=[BOB, CAROL])
    alice_msg = room.add("alice_msg", ALICE, "m.room.message", {"body": "a"})
    bob_msg = room.add("bob_msg", BOB, "m.room.message", {"body": "b"})
    check(room, room.add("r1", ALICE, "m.room.redaction", {}, redacts=bob_msg.event_id, apply=False))
    check(room, room.add("r2", BOB, "m.room.redaction", {}, redacts=bob_msg.event_id, apply=False))
    assert rejected_rule(room, room.add("r3", BOB, "m.room.redaction", {}, redacts=alice_msg.event_id,
                                        apply=False)) == "11.3"
    # carol shares alice's server, so the event ID domains match.
    check(room, room.add("r4", CAROL, "m.room.redaction", {}, redacts=alice_msg.event_id, apply=False))


def test_redactions_are_ordinary_events_from_v3() -> None:
    """rooms/v3 "Authorisation rules" note: the redact level is not considered by the auth rules."""
    room = make_room(version="3", members=[BOB])
    alice_msg = room.add("alice_msg", ALICE, "m.room.message", {"body": "a"})
    redaction = room.add("r", BOB, "m.room.redaction", {}, redacts=alice_msg.event_id, apply=False)
    check(room, redaction)
    auth = auth_state_for(room.state, room.create, room.version)
    assert not check_redaction_applies(redaction, alice_msg, auth)


@pytest.mark.parametrize("version_id", ["3", "11", "12"])
def test_handling_redactions(version_id: str) -> None:
    """rooms/v3 "Handling redactions": apply if the sender has the redact level or the original's domain."""
    room = make_room(version=version_id, members=[BOB, CAROL])
    alice_msg = room.add("alice_msg", ALICE, "m.room.message", {"body": "a"})
    bob_msg = room.add("bob_msg", BOB, "m.room.message", {"body": "b"})
    auth = auth_state_for(room.state, room.create, room.version)

    def redaction(sender: str, target):
        return room.add(f"r_{sender}_{target.event_id}", sender, "m.room.redaction", {}, redacts=target.event_id,
                        apply=False)

    assert check_redaction_applies(redaction(ALICE, bob_msg), bob_msg, auth)      # redact level
    assert check_redaction_applies(redaction(BOB, bob_msg), bob_msg, auth)        # own server
    assert check_redaction_applies(redaction(CAROL, alice_msg), alice_msg, auth)  # same server as alice
    assert not check_redaction_applies(redaction(BOB, alice_msg), alice_msg, auth)
    assert not check_redaction_applies(redaction(ALICE, bob_msg), alice_msg, auth)   # names another event


def test_handling_redactions_v1_defers_to_auth_rules() -> None:
    """rooms/v1: the auth rules already decided, so an authorised redaction applies."""
    room = make_room(version="1", members=[BOB])
    msg = room.add("msg", BOB, "m.room.message", {"body": "b"})
    redaction = room.add("r", ALICE, "m.room.redaction", {}, redacts=msg.event_id, apply=False)
    assert check_redaction_applies(redaction, msg, auth_state_for(room.state, room.create, room.version))


V = KNOWN_ROOM_VERSIONS
PL, CREATE, JR = ("m.room.power_levels", ""), ("m.room.create", ""), ("m.room.join_rules", "")


def test_selection_create_event_has_no_auth_events() -> None:
    """server-server-api, "Auth events selection": the create event's auth_events is empty."""
    assert auth_types_for_event("m.room.create", ALICE, "", {}, V["10"]) == set()


def test_selection_message() -> None:
    """Create (v1-11 only), power levels, the sender's membership."""
    assert auth_types_for_event("m.room.message", BOB, None, {}, V["11"]) == {CREATE, PL, ("m.room.member", BOB)}
    assert auth_types_for_event("m.room.message", BOB, None, {}, V["12"]) == {PL, ("m.room.member", BOB)}


@pytest.mark.parametrize(("membership", "with_join_rules"), [("join", True), ("invite", True), ("knock", True),
                                                             ("leave", False), ("ban", False)])
def test_selection_member(membership: str, with_join_rules: bool) -> None:
    """Member events add the target's membership, and join rules for join, invite and knock."""
    keys = auth_types_for_event("m.room.member", ALICE, BOB, {"membership": membership}, V["10"])
    expected = {CREATE, PL, ("m.room.member", ALICE), ("m.room.member", BOB)} | ({JR} if with_join_rules else set())
    assert keys == expected


def test_selection_third_party_invite() -> None:
    """An invite with third_party_invite adds the m.room.third_party_invite for the token."""
    content = {"membership": "invite", "third_party_invite": {"signed": {"token": "tok", "mxid": BOB}}}
    assert ("m.room.third_party_invite", "tok") in auth_types_for_event("m.room.member", ALICE, BOB, content, V["6"])
    content["third_party_invite"] = {"signed": {}}
    assert not any(k[0] == "m.room.third_party_invite"
                   for k in auth_types_for_event("m.room.member", ALICE, BOB, content, V["6"]))


@pytest.mark.parametrize(("version_id", "selected"), [("7", False), ("8", True)])
def test_selection_join_authorised_via(version_id: str, selected: bool) -> None:
    """Restricted joins (v8+) add the authorising user's membership."""
    content = {"membership": "join", "join_authorised_via_users_server": CAROL}
    keys = auth_types_for_event("m.room.member", BOB, BOB, content, V[version_id])
    assert (("m.room.member", CAROL) in keys) is selected


def test_select_auth_events_from_state() -> None:
    """select_auth_events picks the existing state events for the selected keys."""
    room = make_room(version="10", members=[BOB])
    picked = select_auth_events("m.room.member", BOB, CAROL, {"membership": "invite"}, room.state, room.version)
    assert {e.event_id for e in picked} == {room["create"].event_id, room["power"].event_id,
                                            room["join_rules"].event_id, room["bob_join"].event_id}
