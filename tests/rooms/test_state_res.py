"""State resolution v1, v2 and the v12 revision, on small forked room graphs."""
from __future__ import annotations

import pytest

from pocketserver.rooms.state_res import resolve_state, split_conflicts
from pocketserver.rooms.state_res.common import AuthChains
from pocketserver.rooms.state_res.v2 import (
    auth_difference, conflicted_state_subgraph, is_power_event, iterative_auth_checks, mainline_order,
    reverse_topological_power_order,
)

from roomgraph import ALICE, BOB, CAROL, ZOE, make_room

TOPIC, JR, PL = ("m.room.topic", ""), ("m.room.join_rules", ""), ("m.room.power_levels", "")
BOB_MEMBER, CAROL_MEMBER = ("m.room.member", BOB), ("m.room.member", CAROL)
V2_VERSIONS = ["2", "6", "10", "11", "12"]


def _room(version_id: str, **levels):
    users = {CAROL: 50} if version_id == "12" else {ALICE: 100, CAROL: 50}
    room = make_room(version=version_id, members=[BOB, CAROL], users=users)
    room.add("power2", ALICE, "m.room.power_levels",
             {"users": users, "events": {"m.room.topic": 0}, **levels}, "")
    return room


def _resolve(room, *branches):
    return resolve_state([b.state_ids() for b in branches], room.events, room.version)


def test_split_conflicts() -> None:
    """rooms/v2 "Definitions": a key missing from one state, or with different values, is conflicted."""
    unconflicted, conflicted = split_conflicts([{("a", ""): "$1", ("b", ""): "$2"}, {("a", ""): "$1", ("b", ""): "$3"},
                                                {("a", ""): "$1", ("b", ""): "$2", ("c", ""): "$4"}])
    assert unconflicted == {("a", ""): "$1"}
    assert conflicted == {("b", ""): {"$2", "$3"}, ("c", ""): {"$4"}}


@pytest.mark.parametrize("version_id", ["1"] + V2_VERSIONS)
def test_trivial_inputs(version_id: str) -> None:
    """No states resolve to nothing; one state resolves to itself; equal states to themselves."""
    room = _room(version_id)
    assert resolve_state([], room.events, room.version) == {}
    assert _resolve(room, room) == room.state_ids()
    assert _resolve(room, room, room.fork()) == room.state_ids()


@pytest.mark.parametrize("version_id", V2_VERSIONS)
def test_ban_beats_concurrent_topic(version_id: str) -> None:
    """A ban (a power event) is applied first, so the banned user's concurrent state change is dropped."""
    room = _room(version_id)
    a, b = room.fork(), room.fork()
    ban = a.member("ban_bob", BOB, "ban", sender=ALICE)
    topic = b.add("bob_topic", BOB, "m.room.topic", {"topic": "mine"}, "")
    resolved = _resolve(room, a, b)
    assert resolved[BOB_MEMBER] == ban.event_id
    assert TOPIC not in resolved
    assert is_power_event(ban) and not is_power_event(topic)


@pytest.mark.parametrize("version_id", V2_VERSIONS)
def test_demotion_beats_concurrent_kick(version_id: str) -> None:
    """Power conflicts: alice's demotion of carol sorts before carol's kick, which then fails."""
    room = _room(version_id)
    a, b = room.fork(), room.fork()
    users = {CAROL: 0} if version_id == "12" else {ALICE: 100, CAROL: 0}
    demote = a.add("demote", ALICE, "m.room.power_levels", {"users": users, "events": {"m.room.topic": 0}}, "")
    b.member("kick_bob", BOB, "leave", sender=CAROL)
    resolved = _resolve(room, a, b)
    assert resolved[PL] == demote.event_id
    assert resolved[BOB_MEMBER] == room["bob_join"].event_id


@pytest.mark.parametrize("version_id", V2_VERSIONS)
def test_concurrent_topics_later_timestamp_wins(version_id: str) -> None:
    """Mainline ordering: same mainline position, so origin_server_ts decides, then the event ID."""
    room = _room(version_id)
    a, b = room.fork(), room.fork()
    a.add("topic_a", ALICE, "m.room.topic", {"topic": "a"}, "", ts=room.clock + 50)
    late = b.add("topic_b", BOB, "m.room.topic", {"topic": "b"}, "", ts=room.clock + 60)
    assert _resolve(room, a, b)[TOPIC] == late.event_id
    c, d = room.fork(), room.fork()
    t1 = c.add("tie_1", ALICE, "m.room.topic", {"topic": "1"}, "", ts=room.clock + 70)
    t2 = d.add("tie_2", BOB, "m.room.topic", {"topic": "2"}, "", ts=room.clock + 70)
    assert _resolve(room, c, d)[TOPIC] == max(t1.event_id, t2.event_id)


@pytest.mark.parametrize("version_id", V2_VERSIONS)
def test_mainline_position_beats_timestamp(version_id: str) -> None:
    """Mainline ordering: a topic authorised by a later power levels event sorts after one by an earlier."""
    room = _room(version_id)
    a, b = room.fork(), room.fork()
    old_based = a.add("topic_old", BOB, "m.room.topic", {"topic": "old"}, "", ts=room.clock + 100)
    users = {CAROL: 50} if version_id == "12" else {ALICE: 100, CAROL: 50}
    power3 = b.add("power3", ALICE, "m.room.power_levels", {"users": users, "events": {"m.room.topic": 0},
                                                            "ban": 60}, "")
    new_based = b.add("topic_new", BOB, "m.room.topic", {"topic": "new"}, "", ts=room.clock + 5)
    resolved = _resolve(room, a, b)
    assert resolved[PL] == power3.event_id
    assert resolved[TOPIC] == new_based.event_id
    order = mainline_order([new_based.event_id, old_based.event_id], power3.event_id, room.events)
    assert order == [old_based.event_id, new_based.event_id]


@pytest.mark.parametrize("version_id", V2_VERSIONS)
def test_unconflicted_state_is_kept(version_id: str) -> None:
    """Algorithm step 5: unconflicted entries win at the end."""
    room = _room(version_id)
    room.add("name", ALICE, "m.room.name", {"name": "n"}, "")
    a, b = room.fork(), room.fork()
    a.add("topic_a", ALICE, "m.room.topic", {"topic": "a"}, "")
    resolved = _resolve(room, a, b)
    assert resolved[("m.room.name", "")] == room["name"].event_id
    assert resolved[TOPIC] == room["topic_a"].event_id
    assert set(resolved) == set(room.state) | {TOPIC}


def _join_rules_fork(version_id: str):
    """bob (50) opens the room while alice bans him; the ban is in both resulting states."""
    users = {BOB: 50} if version_id == "12" else {ALICE: 100, BOB: 50}
    room = make_room(version=version_id, members=[BOB], users=users)
    base = room.fork()
    opened = room.fork()
    jr_bob = opened.add("jr_bob", BOB, "m.room.join_rules", {"join_rule": "public"}, "")
    ban = base.member("ban_bob", BOB, "ban", sender=ALICE)
    merged = {**opened.state_ids(), BOB_MEMBER: ban.event_id}
    return room, merged, base.state_ids(), jr_bob


def test_v12_starts_power_events_from_empty_state() -> None:
    """rooms/v12 step 2 starts from an empty map, so unconflicted state (the ban) does not veto power events."""
    room, merged, banned, jr_bob = _join_rules_fork("12")
    resolved = resolve_state([merged, banned], room.events, room.version)
    assert resolved[JR] == jr_bob.event_id
    assert resolved[BOB_MEMBER] == banned[BOB_MEMBER]
    # bob's join lies on the auth path from jr_bob to the old join rules: the conflicted state subgraph.
    assert room["bob_join"].event_id in conflicted_state_subgraph({jr_bob.event_id, room["join_rules"].event_id},
                                                                  room.events)


@pytest.mark.parametrize("version_id", ["10", "12"])
def test_iterative_auth_checks_skip_rejected_auth_events(version_id: str) -> None:
    """rooms/v2 "Iterative auth checks": missing keys come from the event's auth events unless rejected."""
    room, _, _, jr_bob = _join_rules_fork(version_id)
    start = {k: v for k, v in room.state_ids().items() if k != BOB_MEMBER}
    applied = iterative_auth_checks(start, [jr_bob.event_id], room.events, room.version, frozenset())
    assert applied[JR] == jr_bob.event_id
    skipped = iterative_auth_checks(start, [jr_bob.event_id], room.events, room.version,
                                    {room["bob_join"].event_id})
    assert skipped[JR] == room["join_rules"].event_id
    joined = {**start, BOB_MEMBER: room["bob_join"].event_id}
    assert iterative_auth_checks(joined, [jr_bob.event_id], room.events, room.version, frozenset())[JR] == (
        jr_bob.event_id)


def test_v11_applies_power_events_on_unconflicted_state() -> None:
    """rooms/v2 step 2 starts from the unconflicted state, where bob is already banned."""
    room, merged, banned, _ = _join_rules_fork("11")
    resolved = resolve_state([merged, banned], room.events, room.version)
    assert resolved[JR] == room["join_rules"].event_id
    assert resolved[BOB_MEMBER] == banned[BOB_MEMBER]


def test_v12_create_event_in_result() -> None:
    """rooms/v12: the create event is never an auth event, yet resolution finds it through the room ID."""
    room = _room("12")
    a, b = room.fork(), room.fork()
    a.member("ban_bob", BOB, "ban", sender=ALICE)
    b.member("carol_leave", CAROL, "leave")
    resolved = _resolve(room, a, b)
    assert resolved[("m.room.create", "")] == room.create.event_id
    assert resolved[CAROL_MEMBER] == room["carol_leave"].event_id
    assert resolved[BOB_MEMBER] == room["ban_bob"].event_id


def test_conflicted_state_subgraph() -> None:
    """rooms/v12 "Conflicted state subgraph": events on auth paths between conflicted events, endpoints included."""
    room = _room("12")
    chains = AuthChains(room.events)
    power2, carol_join = room["power2"], room["carol_join"]
    subgraph = conflicted_state_subgraph({carol_join.event_id, room["alice_join"].event_id}, room.events)
    assert carol_join.event_id in subgraph and room["alice_join"].event_id in subgraph
    # carol's join cites the power levels, which cite alice's join: on a path, so included.
    assert room["power"].event_id in subgraph
    assert power2.event_id not in subgraph           # not reachable from carol's join
    assert room["bob_join"].event_id not in subgraph
    assert conflicted_state_subgraph(set(), room.events) == set()
    assert chains.of(room["alice_join"].event_id) == frozenset()    # v12: the create is not an auth event


def test_auth_difference() -> None:
    """rooms/v2 "Auth difference": union minus intersection of the states' full auth chains."""
    room = _room("10")
    a, b = room.fork(), room.fork()
    a.member("ban_bob", BOB, "ban", sender=ALICE)
    chains = AuthChains(room.events)
    diff = auth_difference([a.state_ids(), b.state_ids()], chains)
    # Auth chains exclude the state events themselves: only the ban cites bob's join.
    # Auth chains exclude the state events themselves: only side a's ban cites bob's join and power2.
    assert diff == {room["bob_join"].event_id, room["power2"].event_id}
    assert room["create"].event_id not in diff
    assert auth_difference([room.state_ids(), room.state_ids()], chains) == set()


def test_reverse_topological_power_order() -> None:
    """rooms/v2: auth ancestors first; otherwise higher sender power, then earlier ts, then smaller ID."""
    room = _room("10")
    a, b = room.fork(), room.fork()
    kick = a.member("kick_bob", BOB, "leave", sender=CAROL, ts=1)
    ban = b.member("ban_zoe", ZOE, "ban", sender=ALICE, ts=2)
    chains = AuthChains(room.events)
    ids = {kick.event_id, ban.event_id, room["power2"].event_id}
    order = reverse_topological_power_order(ids, room.events, chains, room.version)
    assert order == [room["power2"].event_id, ban.event_id, kick.event_id]


def test_v1_member_conflict_applies_in_depth_order() -> None:
    """rooms/v1: member conflicts are sorted by depth and applied while the rules allow them."""
    room = _room("1")
    a, b = room.fork(), room.fork()
    ban = a.member("ban_bob", BOB, "ban", sender=ALICE)
    b.add("filler", ALICE, "m.room.message", {"body": "x"})
    resolved = _resolve(room, a, b)
    assert resolved[BOB_MEMBER] == ban.event_id


def test_v1_power_levels_conflict_stops_at_first_unauthorised() -> None:
    """rooms/v1: power level conflicts start with the shallowest event and stop at the first one not allowed."""
    room = _room("1")
    a, b = room.fork(), room.fork()
    raise_carol = a.add("pl_a", ALICE, "m.room.power_levels", {"users": {ALICE: 100, CAROL: 50, BOB: 10},
                                                               "events": {"m.room.topic": 0}}, "")
    b.add("filler", ALICE, "m.room.message", {"body": "x"})
    b.add("filler2", ALICE, "m.room.message", {"body": "y"})
    sneaky = b.add("pl_b", CAROL, "m.room.power_levels", {"users": {ALICE: 100, CAROL: 50, BOB: 50},
                                                          "events": {"m.room.topic": 0}}, "")
    assert sneaky.depth > raise_carol.depth
    resolved = _resolve(room, a, b)
    assert resolved[PL] == sneaky.event_id     # carol (50) may raise bob from 10 to 50
    c, d = room.fork(), room.fork()
    c.add("pl_c", ALICE, "m.room.power_levels", {"users": {ALICE: 100, CAROL: 0}, "events": {"m.room.topic": 0}}, "")
    d.add("f1", ALICE, "m.room.message", {"body": "x"})
    d.add("f2", ALICE, "m.room.message", {"body": "y"})
    too_far = d.add("pl_d", CAROL, "m.room.power_levels", {"users": {ALICE: 100, CAROL: 50, BOB: 50},
                                                           "events": {"m.room.topic": 0}}, "")
    assert _resolve(room, c, d)[PL] == room["pl_c"].event_id
    assert too_far.depth > room["pl_c"].depth


def test_v1_other_conflicts_take_highest_depth() -> None:
    """rooms/v1: for other types the deepest event that passes auth wins."""
    room = _room("1")
    a, b = room.fork(), room.fork()
    a.add("topic_a", ALICE, "m.room.topic", {"topic": "a"}, "")
    b.add("filler", ALICE, "m.room.message", {"body": "x"})
    deep = b.add("topic_b", BOB, "m.room.topic", {"topic": "b"}, "")
    assert _resolve(room, a, b)[TOPIC] == deep.event_id
    c, d = room.fork(), room.fork()
    c.add("topic_c", ALICE, "m.room.topic", {"topic": "c"}, "")
    d.member("ban_bob2", BOB, "ban", sender=ALICE)
    d.add("topic_d", BOB, "m.room.topic", {"topic": "d"}, "", state=room.state)   # authorised before the ban
    resolved = _resolve(room, c, d)
    assert resolved[TOPIC] == room["topic_c"].event_id
