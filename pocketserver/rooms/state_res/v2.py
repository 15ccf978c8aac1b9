"""State resolution v2 (room versions 2-11) and its v12 revision.

Spec: rooms/v2, "State resolution" (fragment v2-state-res); rooms/v12, "State resolution".
"""
from __future__ import annotations

import heapq
import math
from collections.abc import Container, Iterable, Sequence

from pocketserver.rooms.auth_rules import AuthState
from pocketserver.rooms.auth_rules.context import POWER_LEVELS_KEY
from pocketserver.rooms.content import PowerLevel
from pocketserver.rooms.events import Pdu, StateKey
from pocketserver.rooms.state_res.common import (
    AuthChains, EventMap, StateIds, auth_state_for_check, create_event_for, is_allowed, split_conflicts,
)
from pocketserver.rooms.versions import RoomVersion, StateResAlgorithm


def is_power_event(event: Pdu) -> bool:
    """Whether the event is a power event: power levels, join rules, or a kick or ban of someone else.

    Spec: rooms/v2, "Definitions" ("Power events").
    """
    if event.state_key is None:
        return False
    if event.type in ("m.room.power_levels", "m.room.join_rules"):
        return True
    return (
        event.type == "m.room.member"
        and event.content.get("membership") in ("leave", "ban")
        and event.sender != event.state_key
    )


def auth_difference(state_sets: Sequence[StateIds], chains: AuthChains) -> set[str]:
    """The events in some but not all of the states' full auth chains.

    Spec: rooms/v2, "Definitions" ("Auth difference").
    """
    full_chains = [chains.of_all(s.values()) for s in state_sets]
    return set().union(*full_chains) - set.intersection(*full_chains)


def conflicted_state_subgraph(conflicted: set[str], events: EventMap) -> set[str]:
    """The events on auth_events paths from one conflicted event to another, endpoints included.

    Spec: rooms/v12, "Definitions" ("Conflicted state subgraph").
    """
    reachable: set[str] = set()
    children: dict[str, set[str]] = {}
    stack = list(conflicted)
    while stack:
        event_id = stack.pop()
        if event_id in reachable:
            continue
        reachable.add(event_id)
        event = events.get(event_id)
        for auth_id in event.auth_events if event is not None else ():
            children.setdefault(auth_id, set()).add(event_id)
            stack.append(auth_id)
    # Walk back up from the conflicted events: what they reach that also reaches a conflicted event.
    subgraph: set[str] = set()
    stack = [e for e in conflicted if e in reachable]
    while stack:
        event_id = stack.pop()
        if event_id in subgraph:
            continue
        subgraph.add(event_id)
        stack.extend(children.get(event_id, ()))
    return subgraph & reachable


def _sender_power_level(event: Pdu, events: EventMap, version: RoomVersion) -> PowerLevel:
    """The sender's power level according to the event's own auth events.

    Spec: rooms/v2, "Definitions" ("Reverse topological power ordering", comparison 1).
    """
    create = create_event_for(event, events, version)
    if create is None:
        return 0
    auth_state = {e.state_tuple: e for e in (events.get(a) for a in event.auth_events) if e is not None and e.is_state}
    return AuthState.build(auth_state, create, version).user_power_level(event.sender)


def reverse_topological_power_order(
    event_ids: set[str], events: EventMap, chains: AuthChains, version: RoomVersion
) -> list[str]:
    """Kahn's algorithm over the auth DAG, always taking the highest-powered, then oldest, then smallest ID.

    Spec: rooms/v2, "Definitions" ("Reverse topological power ordering").
    """
    def key(event_id: str) -> tuple[float, int, str]:
        """Higher power, then earlier ts, then smaller ID. Spec: as above, comparisons 1-3."""
        event = events[event_id]
        return (-_sender_power_level(event, events, version), event.origin_server_ts, event_id)

    blockers = {e: set(chains.of(e)) & event_ids for e in event_ids}
    dependants: dict[str, set[str]] = {}
    for event_id, before in blockers.items():
        for other in before:
            dependants.setdefault(other, set()).add(event_id)
    ready = [(key(e), e) for e, before in blockers.items() if not before]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        _, event_id = heapq.heappop(ready)
        ordered.append(event_id)
        for dependant in dependants.get(event_id, ()):
            blockers[dependant].discard(event_id)
            if not blockers[dependant]:
                heapq.heappush(ready, (key(dependant), dependant))
    return ordered


def _power_levels_auth_event(event: Pdu, events: EventMap) -> Pdu | None:
    """The m.room.power_levels event among the event's auth_events, if any.

    Spec: rooms/v2, "Definitions" ("Mainline ordering").
    """
    for auth_id in event.auth_events:
        auth_event = events.get(auth_id)
        if auth_event is not None and auth_event.type == "m.room.power_levels" and auth_event.state_key == "":
            return auth_event
    return None


def mainline_order(event_ids: Iterable[str], power_levels_id: str | None, events: EventMap) -> list[str]:
    """Sort events by mainline position (earliest first), then origin_server_ts, then event ID.

    Spec: rooms/v2, "Definitions" ("Mainline ordering").
    """
    mainline: dict[str, int] = {}
    current = events.get(power_levels_id) if power_levels_id else None
    while current is not None and current.event_id not in mainline:
        mainline[current.event_id] = len(mainline)
        current = _power_levels_auth_event(current, events)

    def position(event: Pdu) -> float:
        """The index in the mainline of the first power levels ancestor there, else infinity. Spec: as above."""
        seen: set[str] = set()
        parent = _power_levels_auth_event(event, events)
        while parent is not None and parent.event_id not in seen:
            if parent.event_id in mainline:
                return mainline[parent.event_id]
            seen.add(parent.event_id)
            parent = _power_levels_auth_event(parent, events)
        return math.inf

    def key(event_id: str) -> tuple[float, int, str]:
        """Greater mainline position first, then earlier ts, then smaller ID. Spec: as above, comparisons 1-3."""
        event = events[event_id]
        return (-position(event), event.origin_server_ts, event_id)

    return sorted(event_ids, key=key)


def iterative_auth_checks(
    initial: StateIds, event_ids: Sequence[str], events: EventMap, version: RoomVersion, rejected: Container[str]
) -> dict[StateKey, str]:
    """Apply each state event in order to the state if the authorisation rules allow it there.

    Spec: rooms/v2, "Definitions" ("Iterative auth checks").
    """
    state = dict(initial)
    for event_id in event_ids:
        event = events[event_id]
        if event.state_key is None:
            continue
        if is_allowed(event, auth_state_for_check(event, state, events, version, rejected), events, version):
            state[event.state_tuple] = event_id
    return state


def resolve_state_v2(
    state_sets: Sequence[StateIds], events: EventMap, version: RoomVersion, rejected: Container[str] = frozenset()
) -> dict[StateKey, str]:
    """Resolve the state sets with state resolution v2 (with the v12 changes when the version says so).

    Spec: rooms/v2, "State resolution" ("Algorithm"); rooms/v12, "State resolution" ("Algorithm").
    """
    unconflicted, conflicted_by_key = split_conflicts(state_sets)
    conflicted = set().union(*conflicted_by_key.values()) if conflicted_by_key else set()
    chains = AuthChains(events)
    full_conflicted = conflicted | auth_difference(state_sets, chains)
    is_v2_1 = version.state_res is StateResAlgorithm.V2_1
    if is_v2_1:
        full_conflicted |= conflicted_state_subgraph(conflicted, events)
    full_conflicted = {e for e in full_conflicted if e in events}
    # Step 1: power events and the parts of their auth chains in the full conflicted set.
    power_events = {e for e in full_conflicted if is_power_event(events[e])}
    selected = set(power_events)
    for event_id in power_events:
        selected |= chains.of(event_id) & full_conflicted
    ordered_power = reverse_topological_power_order(selected, events, chains, version)
    # Step 2: v12 starts from an empty state map instead of the unconflicted one.
    partial = iterative_auth_checks({} if is_v2_1 else unconflicted, ordered_power, events, version, rejected)
    # Steps 3 and 4: everything else, in mainline order of the partially resolved power levels.
    others = mainline_order(full_conflicted - selected, partial.get(POWER_LEVELS_KEY), events)
    resolved = iterative_auth_checks(partial, others, events, version, rejected)
    # Step 5.
    resolved.update(unconflicted)
    return resolved
