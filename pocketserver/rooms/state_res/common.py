"""What both state resolution algorithms share: conflicts, auth chains and auth checks against a state.

Spec: rooms/v2, "State resolution" ("Definitions").
"""
from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence

from pocketserver.rooms.auth_rules import AuthRuleViolation, auth_types_for_event, check_auth_rules
from pocketserver.rooms.auth_rules.context import CREATE_KEY
from pocketserver.rooms.events import Pdu, StateKey
from pocketserver.rooms.versions import RoomVersion

EventMap = Mapping[str, Pdu]
StateIds = Mapping[StateKey, str]


def split_conflicts(state_sets: Sequence[StateIds]) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """The unconflicted state map, and the conflicted state set grouped by key.

    Spec: rooms/v2, "Definitions" ("Unconflicted state map and conflicted state set").
    """
    keys = set().union(*(s.keys() for s in state_sets))
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    for key in keys:
        values = {s.get(key) for s in state_sets}
        if len(values) == 1 and None not in values:
            unconflicted[key] = values.pop()
        else:
            conflicted[key] = {v for v in values if v is not None}
    return unconflicted, conflicted


class AuthChains:
    """Memoised auth chains over an event map; events missing from the map end the walk."""

    def __init__(self, events: EventMap) -> None:
        self._events = events
        self._chains: dict[str, frozenset[str]] = {}

    def of(self, event_id: str) -> frozenset[str]:
        """All of the event's auth events, theirs, and so on (not the event itself).

        Spec: rooms/v2, "Definitions" ("Auth chain").
        """
        cached = self._chains.get(event_id)
        if cached is not None:
            return cached
        chain: set[str] = set()
        stack = list(self._auth_ids(event_id))
        while stack:
            current = stack.pop()
            if current in chain:
                continue
            chain.add(current)
            if current in self._chains:
                chain |= self._chains[current]
            else:
                stack.extend(self._auth_ids(current))
        self._chains[event_id] = frozenset(chain)
        return self._chains[event_id]

    def of_all(self, event_ids: Iterable[str]) -> set[str]:
        """The union of the auth chains of the events.

        Spec: rooms/v2, "Definitions" ("Auth difference").
        """
        result: set[str] = set()
        for event_id in event_ids:
            result |= self.of(event_id)
        return result

    def _auth_ids(self, event_id: str) -> tuple[str, ...]:
        """The auth_events of an event we know, else nothing.

        Spec: rooms/v2, "Definitions" ("Auth chain").
        """
        event = self._events.get(event_id)
        return event.auth_events if event is not None else ()


def create_event_for(event: Pdu, events: EventMap, version: RoomVersion) -> Pdu | None:
    """The room's m.room.create: the event itself, the one its room ID names (v12+), or its auth event.

    Spec: rooms/v12, "Authorisation rules", rule 2; rooms/v1, rule 2.4.
    """
    if event.type == "m.room.create":
        return event
    if version.room_id_is_create_event_id:
        return events.get("$" + event.room_id[1:])
    for auth_id in event.auth_events:
        auth_event = events.get(auth_id)
        if auth_event is not None and auth_event.state_key == "" and auth_event.type == "m.room.create":
            return auth_event
    return None


def auth_state_for_check(
    event: Pdu, state: StateIds, events: EventMap, version: RoomVersion, rejected: Container[str]
) -> dict[StateKey, Pdu]:
    """The state to check an event against: the keys it needs, from `state` else its non-rejected auth events.

    Spec: rooms/v2, "Definitions" ("Iterative auth checks").
    """
    needed = auth_types_for_event(event.type, event.sender, event.state_key, event.content, version)
    needed.add(CREATE_KEY)
    from_auth_events: dict[StateKey, Pdu] = {}
    for auth_id in event.auth_events:
        auth_event = events.get(auth_id)
        if auth_event is not None and auth_event.is_state and auth_id not in rejected:
            from_auth_events[auth_event.state_tuple] = auth_event
    result: dict[StateKey, Pdu] = {}
    for key in needed:
        if key in state and state[key] in events:
            result[key] = events[state[key]]
        elif key in from_auth_events:
            result[key] = from_auth_events[key]
    return result


def is_allowed(event: Pdu, auth_state: Mapping[StateKey, Pdu], events: EventMap, version: RoomVersion) -> bool:
    """Whether the event passes the authorisation rules against the given state.

    Spec: server-server-api, "Authorisation rules".
    """
    create = auth_state.get(CREATE_KEY) if version.create_in_auth_events else create_event_for(event, events, version)
    try:
        check_auth_rules(event, auth_state, version, create=create)
    except AuthRuleViolation:
        return False
    return True
