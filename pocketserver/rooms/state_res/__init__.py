"""State resolution: v1 for room version 1, v2 for versions 2-11, v2 with the v12 changes for 12+.

Spec: rooms/v1, "State resolution"; rooms/v2, "State resolution"; rooms/v12, "State resolution".
"""
from __future__ import annotations

from collections.abc import Container, Mapping, Sequence

from pocketserver.rooms.events import StateKey
from pocketserver.rooms.state_res.common import EventMap, StateIds, split_conflicts
from pocketserver.rooms.state_res.v1 import resolve_state_v1
from pocketserver.rooms.state_res.v2 import resolve_state_v2
from pocketserver.rooms.versions import RoomVersion, StateResAlgorithm

__all__ = ["EventMap", "StateIds", "resolve_state", "resolve_state_v1", "resolve_state_v2", "split_conflicts"]


def resolve_state(
    state_sets: Sequence[Mapping[StateKey, str]],
    events: EventMap,
    version: RoomVersion,
    rejected: Container[str] = frozenset(),
) -> dict[StateKey, str]:
    """Resolve several state maps (`(type, state_key) -> event_id`) into one, per the room version.

    `events` must map every event ID in the state sets and in their auth chains to its Pdu;
    `rejected` holds IDs of events rejected on receipt.

    Spec: rooms/v1, rooms/v2 and rooms/v12, "State resolution".
    """
    if not state_sets:
        return {}
    if version.state_res is StateResAlgorithm.V1:
        return resolve_state_v1(state_sets, events, version)
    return resolve_state_v2(state_sets, events, version, rejected)
