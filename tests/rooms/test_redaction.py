"""The redaction algorithm of each room version."""
from __future__ import annotations

import pytest

from pocketserver.rooms.redaction import redact
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS, RoomVersion

V = {n: KNOWN_ROOM_VERSIONS[str(n)] for n in range(1, 13)}

BASE = {
    "event_id": "$e:a.test", "type": "m.room.message", "room_id": "!r:a.test", "sender": "@u:a.test",
    "state_key": "", "hashes": {"sha256": "h"}, "signatures": {"a.test": {"ed25519:1": "s"}}, "depth": 4,
    "prev_events": ["$p"], "auth_events": ["$a"], "origin_server_ts": 7, "origin": "a.test",
    "membership": "join", "prev_state": [], "unsigned": {"age": 1}, "redacts": "$x", "extra": 1,
}


def _content(event_type: str, content: dict, version: RoomVersion) -> dict:
    return redact(dict(BASE, type=event_type, content=content), version)["content"]


def test_top_level_keys_v1_to_v10() -> None:
    """fragment v1-redactions: origin, membership and prev_state are protected before v11."""
    for n in range(1, 11):
        redacted = redact(dict(BASE, content={"body": "x"}), V[n])
        assert set(redacted) == set(BASE) - {"unsigned", "redacts", "extra"} | {"content"}
        assert redacted["content"] == {}


def test_top_level_keys_v11_and_v12() -> None:
    """rooms/v11 "Redactions": origin, membership and prev_state are no longer protected."""
    for n in (11, 12):
        redacted = redact(dict(BASE, content={}), V[n])
        assert set(redacted) == set(BASE) - {"unsigned", "redacts", "extra", "origin", "membership", "prev_state"} | {"content"}


def test_returns_new_dict() -> None:
    """redact does not modify its input."""
    event = dict(BASE, content={"membership": "join", "displayname": "U"}, type="m.room.member")
    redacted = redact(event, V[9])
    redacted["content"]["membership"] = "leave"
    assert event["content"] == {"membership": "join", "displayname": "U"}


def test_missing_content_becomes_empty() -> None:
    """Every redacted event has a content object."""
    event = {k: v for k, v in BASE.items() if k != "content"}
    assert redact(event, V[1])["content"] == {}


def test_member() -> None:
    """v1: membership; v9: + join_authorised_via_users_server; v11: + third_party_invite.signed."""
    content = {"membership": "join", "displayname": "U", "join_authorised_via_users_server": "@x:a.test",
               "third_party_invite": {"display_name": "e-mail", "signed": {"token": "t"}}}
    assert _content("m.room.member", content, V[8]) == {"membership": "join"}
    assert _content("m.room.member", content, V[9]) == {
        "membership": "join", "join_authorised_via_users_server": "@x:a.test"}
    assert _content("m.room.member", content, V[11]) == {
        "membership": "join", "join_authorised_via_users_server": "@x:a.test",
        "third_party_invite": {"signed": {"token": "t"}}}
    assert _content("m.room.member", {"membership": "invite", "third_party_invite": {"x": 1}}, V[11]) == {
        "membership": "invite"}


def test_create() -> None:
    """v1-10 keep only creator; v11 keeps the entire content."""
    content = {"creator": "@u:a.test", "room_version": "10", "m.federate": False}
    assert _content("m.room.create", content, V[10]) == {"creator": "@u:a.test"}
    assert _content("m.room.create", content, V[11]) == content
    assert _content("m.room.create", {"additional_creators": ["@b:b.test"]}, V[12]) == {
        "additional_creators": ["@b:b.test"]}


def test_join_rules() -> None:
    """v1: join_rule; v8: + allow."""
    content = {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "other": 1}
    assert _content("m.room.join_rules", content, V[7]) == {"join_rule": "restricted"}
    assert _content("m.room.join_rules", content, V[8]) == {"join_rule": "restricted", "allow": content["allow"]}


def test_power_levels() -> None:
    """v1: ban, events, events_default, kick, redact, state_default, users, users_default; v11: + invite."""
    content = {k: 1 for k in ("ban", "events_default", "kick", "redact", "state_default", "users_default",
                              "invite", "notifications_x")}
    content.update(events={"m.x": 5}, users={"@u:a.test": 9}, notifications={"room": 1})
    expected_v1 = {k: content[k] for k in ("ban", "events", "events_default", "kick", "redact", "state_default",
                                            "users", "users_default")}
    assert _content("m.room.power_levels", content, V[10]) == expected_v1
    assert _content("m.room.power_levels", content, V[11]) == dict(expected_v1, invite=1)


def test_aliases() -> None:
    """v1-5 keep aliases; rooms/v6 removes the special meaning of m.room.aliases."""
    assert _content("m.room.aliases", {"aliases": ["#a:a.test"]}, V[5]) == {"aliases": ["#a:a.test"]}
    assert _content("m.room.aliases", {"aliases": ["#a:a.test"]}, V[6]) == {}


def test_history_visibility() -> None:
    """All versions keep history_visibility."""
    for version in V.values():
        assert _content("m.room.history_visibility", {"history_visibility": "shared", "x": 1}, version) == {
            "history_visibility": "shared"}


def test_redaction_event() -> None:
    """rooms/v11: m.room.redaction keeps content.redacts; before v11 it keeps nothing in content."""
    assert _content("m.room.redaction", {"redacts": "$x", "reason": "spam"}, V[10]) == {}
    assert _content("m.room.redaction", {"redacts": "$x", "reason": "spam"}, V[11]) == {"redacts": "$x"}


@pytest.mark.parametrize("n", range(1, 13))
def test_other_types_lose_all_content(n: int) -> None:
    """Event types not listed keep no content keys."""
    assert _content("m.room.topic", {"topic": "t"}, V[n]) == {}
