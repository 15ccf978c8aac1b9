"""Small named room graphs of valid signed events, with fixed signing keys, for the room core tests.

Users: alice and carol on a.test, bob on b.test, zoe on z.test. Each server signs with a key
derived from its name, and the clock ticks by one per event, so every event is deterministic.
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping

from pocketserver.rooms.auth_rules import select_auth_events
from pocketserver.rooms.events import Pdu, StateKey, build_event, create_event_content
from pocketserver.rooms.signing import SigningKey
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS, RoomVersion

ALICE = "@alice:a.test"
BOB = "@bob:b.test"
CAROL = "@carol:a.test"
ZOE = "@zoe:z.test"
USERS = {"alice": ALICE, "bob": BOB, "carol": CAROL, "zoe": ZOE}
START_TS = 1_700_000_000_000


def signing_key_for(server_name: str) -> SigningKey:
    """The fixed test signing key of a server: its seed is the SHA-256 of the server name."""
    return SigningKey.from_seed(hashlib.sha256(server_name.encode()).digest(), "test")


def verify_keys_for(*server_names: str) -> dict[str, dict[str, Any]]:
    """The server -> key_id -> verify_key mapping for the fixed test keys."""
    return {s: {signing_key_for(s).key_id: signing_key_for(s).verify_key} for s in server_names}


class RoomGraph:
    """A room under construction: named events, the events by ID, and the current state."""

    def __init__(self, version: RoomVersion) -> None:
        self.version = version
        self.room_id: str | None = None
        self.create: Pdu | None = None
        self.named: dict[str, Pdu] = {}
        self.events: dict[str, Pdu] = {}
        self.state: dict[StateKey, Pdu] = {}
        self.forward_extremities: list[Pdu] = []
        self.clock = START_TS

    def __getitem__(self, name: str) -> Pdu:
        return self.named[name]

    def add(
        self,
        name: str,
        sender: str,
        type: str,
        content: Mapping[str, Any],
        state_key: str | None = None,
        *,
        prev: Iterable[Pdu] | None = None,
        auth: Iterable[Pdu] | None = None,
        state: Mapping[StateKey, Pdu] | None = None,
        ts: int | None = None,
        redacts: str | None = None,
        room_id: str | None = None,
        apply: bool = True,
    ) -> Pdu:
        """Build a signed event; by default its prev_events are the extremities and its auth events
        are selected from the current state, and a state event updates the current state."""
        base_state = self.state if state is None else state
        if auth is None:
            auth = select_auth_events(type, sender, state_key, content, base_state, self.version)
        prev_events = list(self.forward_extremities if prev is None else prev)
        self.clock += 1
        server_name = sender.partition(":")[2]
        is_v12_create = type == "m.room.create" and self.version.room_id_is_create_event_id
        event = build_event(
            version=self.version,
            room_id=None if is_v12_create else (room_id or self.room_id),
            sender=sender, type=type, content=content, state_key=state_key,
            prev_events=prev_events, auth_events=list(auth),
            origin_server_ts=self.clock if ts is None else ts,
            server_name=server_name, signing_key=signing_key_for(server_name),
            redacts=redacts, event_id_localpart=name,
        )
        self.named[name] = event
        self.events[event.event_id] = event
        if apply:
            self.forward_extremities = [event]
            if event.is_state:
                self.state[event.state_tuple] = event
        return event

    def fork(self) -> RoomGraph:
        """A branch of the room: it shares the named events and the event map, but has its own state,
        extremities and clock."""
        branch = RoomGraph(self.version)
        branch.__dict__.update(self.__dict__)
        branch.state = dict(self.state)
        branch.forward_extremities = list(self.forward_extremities)
        return branch

    def state_ids(self) -> dict[StateKey, str]:
        """The current state as a map of event IDs."""
        return {key: event.event_id for key, event in self.state.items()}

    def member(
        self, name: str, user: str, membership: str, sender: str | None = None, *, apply: bool = True, **extra: Any
    ) -> Pdu:
        """Add an m.room.member event for `user` (sent by `sender`, default the user)."""
        return self.add(name, sender or user, "m.room.member", {"membership": membership, **extra}, user, apply=apply)


def make_room(
    creator: str = ALICE,
    preset: str = "private_chat",
    version: str = "12",
    members: Iterable[str] = (),
    users: Mapping[str, int] | None = None,
    additional_creators: Iterable[str] = (),
    **create_extra: Any,
) -> RoomGraph:
    """A room with events `create`, `<name>_join` for the creator, `power`, `join_rules`, then joins of `members`.

    `preset` is `private_chat` (invite join rule) or `public_chat`; `users` overrides the power
    levels' `users` (by default the creator has 100, except in v12+ where creators are implicit).
    Members of a private room are invited by the creator first (`<name>_invite`).
    """
    room = RoomGraph(KNOWN_ROOM_VERSIONS[version])
    v = room.version
    content = create_event_content(v, creator, tuple(additional_creators), **create_extra)
    room_id = None if v.room_id_is_create_event_id else f"!room:{creator.partition(':')[2]}"
    room.room_id = room_id
    create = room.add("create", creator, "m.room.create", content, "")
    room.room_id = create.room_id
    room.create = create
    creator_name = creator[1:].partition(":")[0]
    room.member(f"{creator_name}_join", creator, "join")
    if users is None:
        users = {} if v.privileged_creators else {creator: 100}
    room.add("power", creator, "m.room.power_levels", {"users": dict(users)}, "")
    join_rule = "public" if preset == "public_chat" else "invite"
    room.add("join_rules", creator, "m.room.join_rules", {"join_rule": join_rule}, "")
    for user in members:
        name = user[1:].partition(":")[0]
        if join_rule == "invite":
            room.member(f"{name}_invite", user, "invite", sender=creator)
        room.member(f"{name}_join", user, "join")
    return room


def check(room: RoomGraph, event: Pdu, state: Mapping[StateKey, Pdu] | None = None) -> None:
    """Run the auth rules on `event` against the room's current state (or `state`)."""
    from pocketserver.rooms.auth_rules import check_auth_rules

    check_auth_rules(event, room.state if state is None else state, room.version, create=room.create)


def rejected_rule(room: RoomGraph, event: Pdu, state: Mapping[StateKey, Pdu] | None = None) -> str:
    """The number of the rule that rejects `event`; fails the test if the event is allowed."""
    from pocketserver.rooms.auth_rules import AuthRuleViolation

    try:
        check(room, event, state)
    except AuthRuleViolation as exc:
        return exc.rule
    raise AssertionError(f"{event.type} from {event.sender} was allowed")


def resign(event: Pdu, version: RoomVersion, change: Any) -> Pdu:
    """Apply `change(raw)` to a copy of the event's JSON, then hash, sign and parse it again."""
    import copy

    from pocketserver.rooms.events import parse_pdu
    from pocketserver.rooms.signing import sign_event

    raw = copy.deepcopy(dict(event.raw))
    raw.pop("signatures", None)
    change(raw)
    server_name = str(raw["sender"]).partition(":")[2]
    return parse_pdu(sign_event(raw, server_name, signing_key_for(server_name), version), version)


def cosign(event: Pdu, version: RoomVersion, server_name: str) -> Pdu:
    """Add `server_name`'s signature to the event (as a resident server does for restricted joins)."""
    from pocketserver.rooms.events import parse_pdu
    from pocketserver.rooms.signing import sign_event

    return parse_pdu(sign_event(event.raw, server_name, signing_key_for(server_name), version), version)
