"""Auth rules for m.room.member: join, invite (incl. third-party), leave, ban, knock, restricted joins."""
from __future__ import annotations

import pytest

from pocketserver.rooms.signing import SigningKey, sign_json

from roomgraph import ALICE, BOB, CAROL, ZOE, check, cosign, make_room, rejected_rule, resign

# Member rule numbers per era: (member section, join, invite, leave, ban, knock, unknown)
V5 = {"member": "5", "join": "5.2", "invite": "5.3", "leave": "5.4", "ban": "5.5", "unknown": "5.6"}
V6 = {"member": "4", "join": "4.2", "invite": "4.3", "leave": "4.4", "ban": "4.5", "unknown": "4.6"}
V7 = {"member": "4", "join": "4.2", "invite": "4.3", "leave": "4.4", "ban": "4.5", "knock": "4.6", "unknown": "4.7"}
V8 = {"member": "4", "via": "4.2", "join": "4.3", "invite": "4.4", "leave": "4.5", "ban": "4.6", "knock": "4.7",
      "unknown": "4.8"}
V12 = {k: "5" + v[1:] for k, v in V8.items()}
RULES = {"1": V5, "5": V5, "6": V6, "7": V7, "8": V8, "9": V8, "10": V8, "11": V8, "12": V12}
JOIN_REJECT = {"1": "5.2.6", "5": "5.2.6", "6": "4.2.6", "7": "4.2.6", "8": "4.3.7", "10": "4.3.7",
               "11": "4.3.7", "12": "5.3.7"}
SAMPLE = ["1", "6", "7", "8", "10", "11", "12"]


@pytest.mark.parametrize("version_id", SAMPLE)
def test_member_needs_state_key_and_membership(version_id: str) -> None:
    """Rule x.1: no state_key or no membership is rejected."""
    room = make_room(version=version_id, members=[BOB])
    event = room.add("x", BOB, "m.room.member", {"displayname": "Bob"}, BOB, apply=False)
    assert rejected_rule(room, event) == RULES[version_id]["member"] + ".1"


@pytest.mark.parametrize("version_id", SAMPLE)
def test_unknown_membership(version_id: str) -> None:
    """Rule x.(last): an unknown membership is rejected."""
    room = make_room(version=version_id, members=[BOB])
    assert rejected_rule(room, room.member("x", BOB, "dance", apply=False)) == RULES[version_id]["unknown"]


def test_creator_first_join_v10_uses_content_creator() -> None:
    """Join rule 1 (v1-10): only the `creator` named in content may join right after the create event."""
    room = make_room(version="10")
    create_only = {("m.room.create", ""): room.create}
    carol_first = room.add("carol_first", CAROL, "m.room.member", {"membership": "join"}, CAROL,
                           prev=[room.create], state=create_only, apply=False)
    assert rejected_rule(room, carol_first, create_only) == "4.3.7"
    creator_carol = resign(room.create, room.version, lambda raw: raw["content"].update(creator=CAROL))
    create_only_carol = {("m.room.create", ""): creator_carol}
    room.create = creator_carol
    carol_first2 = room.add("carol_first2", CAROL, "m.room.member", {"membership": "join"}, CAROL,
                            prev=[creator_carol], state=create_only_carol, apply=False)
    check(room, carol_first2, create_only_carol)


@pytest.mark.parametrize("version_id", ["11", "12"])
def test_creator_first_join_v11_uses_sender(version_id: str) -> None:
    """Join rule 1 (v11+): the sender of m.room.create may join right after it; others may not."""
    room = make_room(version=version_id)
    only = {("m.room.create", ""): room.create}
    check(room, room["alice_join"], only)
    bob = room.add("bob_first", BOB, "m.room.member", {"membership": "join"}, BOB, prev=[room.create],
                   state=only, apply=False)
    assert rejected_rule(room, bob, only) == RULES[version_id]["join"] + ".7"
    late = room.add("late", ALICE, "m.room.member", {"membership": "join"}, ALICE, prev=[room["power"]],
                    state=only, apply=False)
    assert rejected_rule(room, late, only) == RULES[version_id]["join"] + ".7"


@pytest.mark.parametrize("version_id", SAMPLE)
def test_join_for_someone_else(version_id: str) -> None:
    """Join rule 2: sender must match state_key."""
    room = make_room(version=version_id, preset="public_chat", members=[BOB])
    assert rejected_rule(room, room.member("x", CAROL, "join", sender=BOB, apply=False)) == RULES[version_id]["join"] + ".2"


@pytest.mark.parametrize("version_id", SAMPLE)
def test_banned_cannot_join(version_id: str) -> None:
    """Join rule 3: a banned sender cannot join, even a public room."""
    room = make_room(version=version_id, preset="public_chat")
    room.member("ban", BOB, "ban", sender=ALICE)
    assert rejected_rule(room, room.member("x", BOB, "join", apply=False)) == RULES[version_id]["join"] + ".3"


@pytest.mark.parametrize("version_id", SAMPLE)
def test_invite_join_rule(version_id: str) -> None:
    """Join rule 4: under `invite`, only invited (or joined) users may join."""
    room = make_room(version=version_id)
    uninvited = room.member("x", BOB, "join", apply=False)
    assert rejected_rule(room, uninvited) == JOIN_REJECT[version_id]
    room.member("bob_invite", BOB, "invite", sender=ALICE)
    check(room, room.add("y", BOB, "m.room.member", {"membership": "join"}, BOB, apply=False))


@pytest.mark.parametrize(("version_id", "allowed"), [("6", False), ("7", True), ("12", True)])
def test_knock_join_rule_allows_invited(version_id: str, allowed: bool) -> None:
    """Join rule 4 (v7+): `knock` behaves like `invite` for joining; before v7 it is unknown."""
    room = make_room(version=version_id)
    room.add("jr", ALICE, "m.room.join_rules", {"join_rule": "knock"}, "")
    room.member("bob_invite", BOB, "invite", sender=ALICE)
    join = room.add("j", BOB, "m.room.member", {"membership": "join"}, BOB, apply=False)
    if allowed:
        check(room, join)
    else:
        assert rejected_rule(room, join) == "4.2.6"


@pytest.mark.parametrize("version_id", SAMPLE)
def test_public_join_rule(version_id: str) -> None:
    """Join rule "public": anyone may join."""
    room = make_room(version=version_id, preset="public_chat")
    check(room, room.add("j", ZOE, "m.room.member", {"membership": "join"}, ZOE, apply=False))


def _restricted_room(version_id: str, join_rule: str = "restricted"):
    room = make_room(version=version_id, members=[CAROL])
    room.add("jr", ALICE, "m.room.join_rules", {"join_rule": join_rule, "allow": [
        {"type": "m.room_membership", "room_id": "!space:a.test"}]}, "")
    return room


def _via_join(room, via: str | None, cosigner: str | None = "a.test"):
    content = {"membership": "join"}
    if via is not None:
        content["join_authorised_via_users_server"] = via
    event = room.add("bob_via", BOB, "m.room.member", content, BOB, apply=False)
    return cosign(event, room.version, cosigner) if cosigner else event


@pytest.mark.parametrize("version_id", ["8", "9", "12"])
def test_restricted_join(version_id: str) -> None:
    """Join rule 5 (v8+): a joined user who may invite must authorise the join, and their server sign it."""
    room = _restricted_room(version_id)
    rules = RULES[version_id]
    check(room, _via_join(room, ALICE))
    check(room, _via_join(room, CAROL))                      # carol: level 0 >= invite 0
    assert rejected_rule(room, _via_join(room, None, None)) == rules["join"] + ".5.2"
    assert rejected_rule(room, _via_join(room, ZOE, "z.test")) == rules["join"] + ".5.2"
    assert rejected_rule(room, _via_join(room, ALICE, None)) == rules["via"] + ".1"
    room.add("pl", ALICE, "m.room.power_levels", {"users": {ALICE: 100} if version_id != "12" else {},
                                                   "invite": 50}, "")
    assert rejected_rule(room, _via_join(room, CAROL)) == rules["join"] + ".5.2"
    room.member("bob_invite", BOB, "invite", sender=ALICE)
    check(room, _via_join(room, None, None))                 # invited: no authoriser needed


def test_restricted_needs_v8() -> None:
    """rooms/v8 adds `restricted`; in v7 it is an unknown join rule and joining is rejected."""
    room = _restricted_room("7")
    assert rejected_rule(room, _via_join(room, ALICE)) == "4.2.6"


@pytest.mark.parametrize(("version_id", "allowed"), [("9", False), ("10", True)])
def test_knock_restricted_join(version_id: str, allowed: bool) -> None:
    """rooms/v10 join rule 5: `knock_restricted` works like `restricted` for joins."""
    room = _restricted_room(version_id, "knock_restricted")
    event = _via_join(room, ALICE)
    if allowed:
        check(room, event)
    else:
        assert rejected_rule(room, event) == "4.3.7"


def test_via_key_ignored_before_v8() -> None:
    """Before v8, join_authorised_via_users_server means nothing: no signature is required."""
    room = make_room(version="7", preset="public_chat")
    check(room, _via_join(room, ALICE, None))


@pytest.mark.parametrize("version_id", SAMPLE)
def test_invite(version_id: str) -> None:
    """Invite rules 2-5: joined sender, target not joined or banned, invite level."""
    room = make_room(version=version_id, members=[BOB])
    rules = RULES[version_id]
    check(room, room.member("i", CAROL, "invite", sender=BOB, apply=False))
    outsider = room.add("o", ZOE, "m.room.member", {"membership": "invite"}, CAROL, apply=False)
    assert rejected_rule(room, outsider) == rules["invite"] + ".2"
    joined = room.add("j", BOB, "m.room.member", {"membership": "invite"}, ALICE, apply=False)
    assert rejected_rule(room, joined) == rules["invite"] + ".3"
    room.member("ban", ZOE, "ban", sender=ALICE)
    banned = room.add("b", BOB, "m.room.member", {"membership": "invite"}, ZOE, apply=False)
    assert rejected_rule(room, banned) == rules["invite"] + ".3"
    room.add("pl", ALICE, "m.room.power_levels", {"users": {} if version_id == "12" else {ALICE: 100},
                                                   "invite": 10}, "")
    low = room.add("l", BOB, "m.room.member", {"membership": "invite"}, CAROL, apply=False)
    assert rejected_rule(room, low) == rules["invite"] + ".5"


IDENTITY_KEY = SigningKey.from_seed(b"\x07" * 32, "0")


def _third_party(room, token: str = "tok", mxid: str = ZOE, signer: SigningKey = IDENTITY_KEY, sender: str = ALICE,
                 **overrides):
    signed = sign_json({"mxid": mxid, "token": token, "sender": sender}, "id.test", signer)
    invite = {"display_name": "z...@example.org", "signed": signed, **overrides}
    return room.add("tp_invite", sender, "m.room.member", {"membership": "invite", "third_party_invite": invite},
                    ZOE, apply=False)


@pytest.mark.parametrize("version_id", ["1", "6", "11", "12"])
def test_third_party_invite(version_id: str) -> None:
    """Invite rule 1: a third-party invite must match a token and be signed by one of its public keys."""
    room = make_room(version=version_id, members=[BOB])
    rule = RULES[version_id]["invite"] + ".1."
    public = IDENTITY_KEY.verify_key_base64
    assert rejected_rule(room, _third_party(room)) == rule + "5"
    room.add("tpi", ALICE, "m.room.third_party_invite",
             {"display_name": "z", "key_validity_url": "https://id.test/v", "public_key": "AAAA",
              "public_keys": [{"public_key": public}]}, "tok")
    check(room, _third_party(room))
    assert rejected_rule(room, _third_party(room, signer=SigningKey.from_seed(b"\x08" * 32, "0"))) == rule + "8"
    assert rejected_rule(room, _third_party(room, mxid=CAROL)) == rule + "4"
    assert rejected_rule(room, _third_party(room, token="other")) == rule + "5"
    assert rejected_rule(room, _third_party(room, sender=BOB)) == rule + "6"
    assert rejected_rule(room, _third_party(room, signed="nope")) == rule + "2"
    assert rejected_rule(room, _third_party(room, signed={"mxid": ZOE})) == rule + "3"
    room.member("ban", ZOE, "ban", sender=ALICE)
    assert rejected_rule(room, _third_party(room)) == rule + "1"


def test_third_party_invite_single_public_key() -> None:
    """Invite rule 1.7.1: the key may be the single `public_key`."""
    room = make_room(version="10", members=[BOB])
    room.add("tpi", ALICE, "m.room.third_party_invite",
             {"display_name": "z", "key_validity_url": "https://id.test/v",
              "public_key": IDENTITY_KEY.verify_key_base64}, "tok")
    check(room, _third_party(room))


@pytest.mark.parametrize("version_id", SAMPLE)
def test_leave(version_id: str) -> None:
    """Leave rules 1-5: leaving oneself, kicking with the kick level and more power, unbanning."""
    room = make_room(version=version_id, members=[BOB, CAROL])
    rules = RULES[version_id]
    check(room, room.add("l", BOB, "m.room.member", {"membership": "leave"}, BOB, apply=False))
    never = room.add("z", ZOE, "m.room.member", {"membership": "leave"}, ZOE, apply=False)
    assert rejected_rule(room, never) == rules["leave"] + ".1"
    check(room, room.add("k", ALICE, "m.room.member", {"membership": "leave"}, BOB, apply=False))
    weak = room.add("w", BOB, "m.room.member", {"membership": "leave"}, CAROL, apply=False)
    assert rejected_rule(room, weak) == rules["leave"] + ".5"
    outsider = room.add("o", ZOE, "m.room.member", {"membership": "leave"}, BOB, apply=False)
    assert rejected_rule(room, outsider) == rules["leave"] + ".2"
    up = room.add("up", BOB, "m.room.member", {"membership": "leave"}, ALICE, apply=False)
    assert rejected_rule(room, up) == rules["leave"] + ".5"
    users = {CAROL: 50} if version_id == "12" else {ALICE: 100, CAROL: 50}
    room.add("pl", ALICE, "m.room.power_levels", {"users": users, "ban": 60, "kick": 0}, "")
    room.member("ban", ZOE, "ban", sender=ALICE)
    unban = room.add("u", CAROL, "m.room.member", {"membership": "leave"}, ZOE, apply=False)
    assert rejected_rule(room, unban) == rules["leave"] + ".3"
    check(room, room.add("u2", ALICE, "m.room.member", {"membership": "leave"}, ZOE, apply=False))
    equal = room.add("eq", CAROL, "m.room.member", {"membership": "leave"}, BOB, apply=False)
    check(room, equal)   # carol 50 > bob 0 and kick level is 0


@pytest.mark.parametrize(("version_id", "allowed"), [("6", False), ("7", True)])
def test_leave_after_knock(version_id: str, allowed: bool) -> None:
    """Leave rule 1 (v7+): a knocking user may withdraw the knock."""
    room = make_room(version=version_id)
    room.member("knock", ZOE, "knock")
    event = room.add("l", ZOE, "m.room.member", {"membership": "leave"}, ZOE, apply=False)
    if allowed:
        check(room, event)
    else:
        assert rejected_rule(room, event) == "4.4.1"


@pytest.mark.parametrize("version_id", SAMPLE)
def test_ban(version_id: str) -> None:
    """Ban rules 1-3: a joined sender with the ban level and more power than the target."""
    room = make_room(version=version_id, members=[BOB])
    rules = RULES[version_id]
    check(room, room.add("b", ALICE, "m.room.member", {"membership": "ban"}, ZOE, apply=False))
    weak = room.add("w", BOB, "m.room.member", {"membership": "ban"}, ZOE, apply=False)
    assert rejected_rule(room, weak) == rules["ban"] + ".3"
    outsider = room.add("o", ZOE, "m.room.member", {"membership": "ban"}, BOB, apply=False)
    assert rejected_rule(room, outsider) == rules["ban"] + ".1"


@pytest.mark.parametrize("version_id", ["7", "10", "12"])
def test_knock(version_id: str) -> None:
    """Knock rules 1-4 (v7+): only under `knock`, only for oneself, not when banned, invited or joined."""
    room = make_room(version=version_id, members=[BOB])
    rules = RULES[version_id]
    assert rejected_rule(room, room.member("k0", ZOE, "knock", apply=False)) == rules["knock"] + ".1"
    room.add("jr", ALICE, "m.room.join_rules", {"join_rule": "knock"}, "")
    check(room, room.add("k1", ZOE, "m.room.member", {"membership": "knock"}, ZOE, apply=False))
    other = room.add("k2", BOB, "m.room.member", {"membership": "knock"}, ZOE, apply=False)
    assert rejected_rule(room, other) == rules["knock"] + ".2"
    joined = room.add("k3", BOB, "m.room.member", {"membership": "knock"}, BOB, apply=False)
    assert rejected_rule(room, joined) == rules["knock"] + ".4"


def test_knock_is_unknown_before_v7() -> None:
    """rooms/v7 adds knocking; in v6 `knock` is an unknown membership."""
    room = make_room(version="6")
    room.add("jr", ALICE, "m.room.join_rules", {"join_rule": "knock"}, "")
    assert rejected_rule(room, room.add("k", ZOE, "m.room.member", {"membership": "knock"}, ZOE, apply=False)) == "4.6"


@pytest.mark.parametrize(("version_id", "allowed"), [("9", False), ("10", True)])
def test_knock_restricted_allows_knocking(version_id: str, allowed: bool) -> None:
    """rooms/v10 knock rule 1: `knock_restricted` also allows knocking."""
    room = _restricted_room(version_id, "knock_restricted")
    event = room.add("k", ZOE, "m.room.member", {"membership": "knock"}, ZOE, apply=False)
    if allowed:
        check(room, event)
    else:
        assert rejected_rule(room, event) == "4.7.1"
