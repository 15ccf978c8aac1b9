"""State resolution v1, used only by room version 1.

Spec: rooms/v1, "State resolution".
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pocketserver.rooms.events import Pdu, StateKey
from pocketserver.rooms.state_res.common import EventMap, StateIds, is_allowed, split_conflicts
from pocketserver.rooms.versions import RoomVersion

_AUTH_TYPES_IN_ORDER = ("m.room.power_levels", "m.room.join_rules", "m.room.member")


def _sha1(event_id: str) -> bytes:
    """The SHA-1 digest of the event ID, the tie-breaker of v1 resolution.

    Spec: rooms/v1, "State resolution".
    """
    return hashlib.sha1(event_id.encode("utf-8")).digest()


def _allowed_in(event: Pdu, resolved: dict[StateKey, str], events: EventMap, version: RoomVersion) -> bool:
    """Whether the event would be allowed by the authorisation rules in a room in state `resolved`.

    Spec: rooms/v1, "State resolution".
    """
    state = {key: events[event_id] for key, event_id in resolved.items() if event_id in events}
    return is_allowed(event, state, events, version)


def _resolve_auth_conflict(
    candidates: list[Pdu], key: StateKey, resolved: dict[StateKey, str], events: EventMap, version: RoomVersion
) -> None:
    """Take the oldest candidate, then each next one while the rules allow it in the state so far.

    Spec: rooms/v1, "State resolution" (power levels, join rules and member conflicts).
    """
    def key_fn(event: Pdu) -> tuple[int, bytes]:
        """Ascending depth, then descending sha1(event_id). Spec: rooms/v1, "State resolution"."""
        return (event.depth, bytes(255 - b for b in _sha1(event.event_id)))   # descending sha1

    ordered = sorted(candidates, key=key_fn)
    resolved[key] = ordered[0].event_id
    for event in ordered[1:]:
        if not _allowed_in(event, resolved, events, version):
            break
        resolved[key] = event.event_id


def resolve_state_v1(state_sets: Sequence[StateIds], events: EventMap, version: RoomVersion) -> dict[StateKey, str]:
    """Resolve state sets with the original algorithm: auth-relevant types first, then highest depth.

    Each conflicted member key is resolved on its own, in sorted key order.

    Spec: rooms/v1, "State resolution".
    """
    unconflicted, conflicted = split_conflicts(state_sets)
    resolved = dict(unconflicted)
    for event_type in _AUTH_TYPES_IN_ORDER:
        for key in sorted(k for k in conflicted if k[0] == event_type):
            candidates = [events[e] for e in conflicted[key] if e in events]
            if candidates:
                _resolve_auth_conflict(candidates, key, resolved, events, version)
    for key in sorted(k for k in conflicted if k[0] not in _AUTH_TYPES_IN_ORDER):
        candidates = sorted(
            (events[e] for e in conflicted[key] if e in events),
            key=lambda e: (-e.depth, _sha1(e.event_id)),
        )
        for event in candidates:
            if _allowed_in(event, resolved, events, version):
                resolved[key] = event.event_id
                break
    return resolved
