"""Serialising PDUs into the client-server event format.

Spec: client-server-api, "Room Event Format" (ClientEvent) and "Syncing" (unsigned data).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Top-level PDU keys clients see; federation-only keys (auth_events, hashes, ...) are dropped.
_CLIENT_KEYS = ("content", "origin_server_ts", "sender", "state_key", "type", "redacts")


def format_client_event(raw: Mapping[str, Any], *, event_id: str, room_id: str,
                        unsigned: Mapping[str, Any] | None = None, include_room_id: bool = True) -> dict[str, Any]:
    """The ClientEvent for a stored PDU, with server-computed `unsigned` data.

    Spec: client-server-api, "Room Event Format".
    """
    event = format_client_event_base(raw, event_id=event_id, room_id=room_id, include_room_id=include_room_id)
    event["unsigned"] = dict(unsigned or {})
    return event


def format_client_event_base(raw: Mapping[str, Any], *, event_id: str, room_id: str,
                             include_room_id: bool = True) -> dict[str, Any]:
    """The ClientEvent for a stored PDU, all but `unsigned` (which the caller adds last).

    Redaction events also get a top-level `redacts` in v11+ rooms, as Synapse gives clients that read
    only the old place. Spec: client-server-api, "Room Event Format"; rooms/v11, "Moving the redacts key".
    """
    event: dict[str, Any] = {key: raw[key] for key in _CLIENT_KEYS if key in raw}
    event["event_id"] = event_id
    if include_room_id:
        event["room_id"] = room_id
    if raw.get("type") == "m.room.redaction" and "redacts" not in event:
        redacts = raw.get("content", {}).get("redacts") if isinstance(raw.get("content"), Mapping) else None
        if isinstance(redacts, str):
            event["redacts"] = redacts
    event.setdefault("content", {})
    return event


def apply_event_fields(event: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Keep only the dotted `fields` of an event (filter `event_fields`; `\\.` escapes a dot).

    Spec: client-server-api, "Filtering" (event_fields).
    """
    out: dict[str, Any] = {}
    for field in fields:
        parts = [p.replace("\x00", ".") for p in field.replace("\\.", "\x00").split(".")]
        src: Any = event
        for part in parts:
            if not isinstance(src, Mapping) or part not in src:
                src = None
                break
            src = src[part]
        if src is None:
            continue
        dst = out
        for part in parts[:-1]:
            dst = dst.setdefault(part, {})
        dst[parts[-1]] = src
    return out
