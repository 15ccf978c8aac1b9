"""The Pdu record: parsing and validating received PDUs, and building local events."""
from __future__ import annotations

import copy

import pytest

from pocketserver.rooms.events import (EventFormatError, Pdu, build_event, create_event_content, get_redacts, parse_pdu,
                                       pdu_from_checked)
from pocketserver.rooms.hashing import compute_event_id
from pocketserver.rooms.signing import check_content_hash, verify_event_signatures
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS

from roomgraph import ALICE, BOB, make_room, signing_key_for, verify_keys_for

V1, V3, V4, V5, V6, V10, V11, V12 = (KNOWN_ROOM_VERSIONS[v] for v in ("1", "3", "4", "5", "6", "10", "11", "12"))


def _raw(version_id: str = "10") -> dict:
    room = make_room(version=version_id, members=[BOB])
    return copy.deepcopy(dict(room["bob_join"].raw))


@pytest.mark.parametrize("version_id", [str(n) for n in range(1, 13)])
def test_builds_and_reparses_in_every_version(version_id: str) -> None:
    """Built events round-trip through parse_pdu and carry valid hashes and signatures."""
    room = make_room(version=version_id, members=[BOB])
    version = KNOWN_ROOM_VERSIONS[version_id]
    for event in room.named.values():
        again = parse_pdu(event.raw, version)
        assert again == event and again.raw == event.raw
        assert check_content_hash(event.raw)
        verify_event_signatures(event.raw, version, verify_keys_for("a.test", "b.test"))


@pytest.mark.parametrize("version_id", [str(n) for n in range(1, 13)])
def test_checked_json_loads_as_parse_pdu_reads_it(version_id: str) -> None:
    """An event read back from storage is not checked again, and comes out field for field the same."""
    room = make_room(version=version_id, members=[BOB])
    version = KNOWN_ROOM_VERSIONS[version_id]
    for event in room.named.values():
        loaded = pdu_from_checked(event.raw, version, event.event_id)
        fields = ("event_id", "room_id", "sender", "type", "state_key", "content", "prev_events", "auth_events",
                  "depth", "origin_server_ts", "raw")
        assert all(getattr(loaded, f) == getattr(event, f) for f in fields), event.type
    raw = copy.deepcopy(dict(room["bob_join"].raw))
    loaded = pdu_from_checked(raw, version, room["bob_join"].event_id)
    raw["content"]["membership"] = "leave"
    assert loaded.content["membership"] == "join"    # a copy, as parse_pdu keeps


def test_pdu_fields() -> None:
    """STYLE section 6: typed top-level fields, raw kept."""
    room = make_room(version="10", members=[BOB])
    join = room["bob_join"]
    assert join.sender == BOB and join.type == "m.room.member" and join.state_key == BOB
    assert join.content == {"membership": "join"}
    assert join.room_id == "!room:a.test"
    assert join.prev_events == (room["bob_invite"].event_id,)
    assert set(join.auth_events) == {room["create"].event_id, room["power"].event_id,
                                     room["join_rules"].event_id, room["bob_invite"].event_id}
    assert join.depth == room["bob_invite"].depth + 1
    assert join.is_state and join.state_tuple == ("m.room.member", BOB)
    assert join.event_id == compute_event_id(join.raw, V10)
    assert "event_id" not in join.raw
    assert hash(join) == hash(join.event_id)


def test_v1_event_ids_and_reference_pairs() -> None:
    """rooms/v1 "Event IDs" and pdu_v1: `$opaque:domain` IDs and [id, {sha256}] references."""
    room = make_room(version="1", members=[BOB])
    join = room["bob_join"]
    assert join.event_id == "$bob_join:b.test"
    assert join.raw["event_id"] == "$bob_join:b.test"
    assert join.raw["prev_events"][0][0] == room["bob_invite"].event_id
    assert set(join.raw["prev_events"][0][1]) == {"sha256"}
    assert join.prev_events == (room["bob_invite"].event_id,)


def test_v3_ids_use_standard_base64() -> None:
    """rooms/v3 "Event IDs": base64, which may contain / and +."""
    room = make_room(version="3")
    assert all(len(e.event_id) == 44 and "-" not in e.event_id for e in room.named.values())


def test_v12_create_has_no_room_id() -> None:
    """rooms/v12 "Event format": the create event has no room_id; the room ID is `!` + its hash."""
    room = make_room(version="12")
    create = room["create"]
    assert "room_id" not in create.raw
    assert create.room_id == "!" + create.event_id[1:]
    assert room["alice_join"].room_id == create.room_id
    assert create.content == {"room_version": "12"}


def test_create_content_per_version() -> None:
    """rooms/v11 drops `creator`; rooms/v12 adds `additional_creators`."""
    assert create_event_content(V10, ALICE) == {"room_version": "10", "creator": ALICE}
    assert create_event_content(V11, ALICE) == {"room_version": "11"}
    assert create_event_content(V12, ALICE, [BOB], type="m.space") == {
        "room_version": "12", "additional_creators": [BOB], "type": "m.space"}
    with pytest.raises(ValueError):
        create_event_content(V11, ALICE, [BOB])


def test_build_requires_room_id_except_for_v12_create() -> None:
    """rooms/v12: only the create event lacks room_id."""
    key = signing_key_for("a.test")
    common = dict(sender=ALICE, content={}, prev_events=[], auth_events=[], origin_server_ts=1,
                  server_name="a.test", signing_key=key)
    with pytest.raises(ValueError):
        build_event(version=V12, room_id="!x", type="m.room.create", state_key="", **common)
    with pytest.raises(ValueError):
        build_event(version=V11, room_id=None, type="m.room.create", state_key="", **common)
    event = build_event(version=V11, room_id="!r:a.test", type="m.room.create", state_key="", **common)
    assert event.depth == 1 and event.raw["room_id"] == "!r:a.test"


def test_redacts_location() -> None:
    """rooms/v11: `redacts` moves from the top level into content."""
    for version_id, where in (("10", "top"), ("11", "content")):
        room = make_room(version=version_id)
        redaction = room.add("redaction", ALICE, "m.room.redaction", {}, redacts=room["power"].event_id)
        assert get_redacts(redaction, room.version) == room["power"].event_id
        if where == "top":
            assert redaction.raw["redacts"] == room["power"].event_id and "redacts" not in redaction.content
        else:
            assert redaction.content["redacts"] == room["power"].event_id and "redacts" not in redaction.raw


def test_depth_is_capped() -> None:
    """depth_v6: if the room's depth is at the limit, the depth is set to the limit."""
    room = make_room(version="6")
    deep = Pdu(**{**{f: getattr(room["power"], f) for f in Pdu.__slots__}, "depth": V6.max_depth})
    event = room.add("next", ALICE, "m.room.message", {"body": "x"}, prev=[deep])
    assert event.depth == V6.max_depth


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.pop("sender"), "sender"),
        (lambda e: e.update(sender="alice"), "sender"),
        (lambda e: e.update(type=5), "type"),
        (lambda e: e.update(type="x" * 256), "type"),
        (lambda e: e.update(state_key="x" * 256), "state_key"),
        (lambda e: e.update(state_key=3), "state_key"),
        (lambda e: e.update(content=[]), "content"),
        (lambda e: e.update(depth=-1), "depth"),
        (lambda e: e.update(depth=True), "depth"),
        (lambda e: e.update(origin_server_ts="1"), "origin_server_ts"),
        (lambda e: e.pop("hashes"), "hashes"),
        (lambda e: e.update(hashes={}), "hashes"),
        (lambda e: e.update(signatures=[]), "signatures"),
        (lambda e: e.update(prev_events=["$x"] * 21), "prev_events"),
        (lambda e: e.update(auth_events=["not an id"]), "auth_events"),
        (lambda e: e.update(auth_events=["$x"] * 11), "auth_events"),
        (lambda e: e.update(room_id="room"), "room ID"),
        (lambda e: e.update(content={"body": "x" * 70000}), "bytes"),
    ],
)
def test_parse_rejects_bad_structure(change, message: str) -> None:
    """server-server-api, "Checks performed on receipt of a PDU" step 1; client-server-api, "Size limits"."""
    raw = _raw()
    change(raw)
    with pytest.raises(EventFormatError, match=message):
        parse_pdu(raw, V10)


def test_strict_canonical_json_from_v6() -> None:
    """rooms/v6 "Event format": floats and out-of-range integers are rejected; v5 accepts them."""
    for bad in ({"n": 1.5}, {"n": 2**53}):
        raw = _raw("5")
        raw["content"] = dict(raw["content"], **bad)
        parse_pdu(raw, V5)
        raw6 = _raw("6")
        raw6["content"] = dict(raw6["content"], **bad)
        with pytest.raises(EventFormatError):
            parse_pdu(raw6, V6)


def test_depth_limit_per_version() -> None:
    """pdu_v1 depth < 2**63; depth_v6 depth < 2**53."""
    raw = _raw("5")
    raw["depth"] = 2**60
    assert parse_pdu(raw, V5).depth == 2**60
    raw = _raw("6")
    raw["depth"] = 2**60
    with pytest.raises(EventFormatError):
        parse_pdu(raw, V6)


def test_v1_requires_event_id_and_pairs() -> None:
    """pdu_v1: event_id is required and references are pairs."""
    raw = _raw("1")
    with pytest.raises(EventFormatError):
        parse_pdu({k: v for k, v in raw.items() if k != "event_id"}, V1)
    with pytest.raises(EventFormatError):
        parse_pdu(dict(raw, prev_events=["$x:a.test"]), V1)
    with pytest.raises(EventFormatError):
        parse_pdu(dict(raw, prev_events=[["$x:a.test"]]), V1)


def test_v4_rejects_v3_style_references() -> None:
    """rooms/v4: event IDs are URL-safe base64, so a `/` cannot appear."""
    raw = _raw("4")
    raw["prev_events"] = ["$" + "a/" * 21 + "a"]
    with pytest.raises(EventFormatError):
        parse_pdu(raw, V4)
    raw3 = _raw("3")
    raw3["prev_events"] = ["$" + "a/" * 21 + "a"]
    parse_pdu(raw3, V3)


def test_given_event_id_is_trusted() -> None:
    """parse_pdu(event_id=...) skips hashing for events loaded from storage."""
    raw = _raw("10")
    assert parse_pdu(raw, V10, event_id="$" + "A" * 43).event_id == "$" + "A" * 43
    with pytest.raises(EventFormatError):
        parse_pdu(raw, V10, event_id="nope")


def test_parse_copies_input() -> None:
    """The Pdu keeps its own copy of the JSON."""
    raw = _raw("10")
    event = parse_pdu(raw, V10)
    raw["content"]["membership"] = "leave"
    assert event.content["membership"] == "join"


def test_v12_room_id_must_be_a_hash() -> None:
    """appendices, "Room IDs": v12 room IDs have no domain."""
    raw = _raw("12")
    raw["room_id"] = "!room:a.test"
    with pytest.raises(EventFormatError):
        parse_pdu(raw, V12)
