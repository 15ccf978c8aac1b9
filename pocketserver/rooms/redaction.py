"""The redaction algorithm of each room version.

Spec: rooms/v1 "Redactions" (fragment v1-redactions) and its successors v6, v8, v9 and v11.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pocketserver.rooms.canonical import JsonValue, copy_json
from pocketserver.rooms.versions import RoomVersion

_KEPT_TOP_LEVEL_KEYS = frozenset({
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
    "signatures", "depth", "prev_events", "auth_events", "origin_server_ts",
})
# rooms/v11 "Redactions": no longer protected from v11 on.
_KEPT_TOP_LEVEL_KEYS_BEFORE_V11 = frozenset({"prev_state", "origin", "membership"})

_POWER_LEVELS_KEYS = frozenset({
    "ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default",
})


def _kept_content_keys(event_type: str, version: RoomVersion) -> frozenset[str]:
    """The content keys an event type keeps under redaction in this room version (all keys: see redact).

    Spec: rooms/v11, "Redactions" and the fragments v1-, v6-, v9-redactions.
    """
    if event_type == "m.room.member":
        keys = {"membership"}
        if version.redact_keeps_join_authorised_via_users_server:
            keys.add("join_authorised_via_users_server")
        return frozenset(keys)
    if event_type == "m.room.create":
        return frozenset({"creator"})
    if event_type == "m.room.join_rules":
        return frozenset({"join_rule", "allow"} if version.redact_keeps_join_rules_allow else {"join_rule"})
    if event_type == "m.room.power_levels":
        return _POWER_LEVELS_KEYS | {"invite"} if version.updated_redaction_rules else _POWER_LEVELS_KEYS
    if event_type == "m.room.history_visibility":
        return frozenset({"history_visibility"})
    if event_type == "m.room.aliases" and version.redact_keeps_aliases:
        return frozenset({"aliases"})
    if event_type == "m.room.redaction" and version.updated_redaction_rules:
        return frozenset({"redacts"})
    return frozenset()


def _redact_content(event_type: str, content: Mapping[str, Any], version: RoomVersion) -> dict[str, Any]:
    """Strip the content of every key the redaction algorithm does not protect.

    Spec: rooms/v11, "Redactions" (content rules); fragment v1-redactions.
    """
    if event_type == "m.room.create" and version.updated_redaction_rules:
        return copy_json(dict(content))
    kept = _kept_content_keys(event_type, version)
    new_content = {k: copy_json(v) for k, v in content.items() if k in kept}
    if event_type == "m.room.member" and version.updated_redaction_rules:
        invite = content.get("third_party_invite")
        if isinstance(invite, Mapping) and "signed" in invite:
            new_content["third_party_invite"] = {"signed": copy_json(invite["signed"])}
    return new_content


def redact(event: Mapping[str, JsonValue], version: RoomVersion) -> dict[str, JsonValue]:
    """Return a new dict holding only the keys of the event that survive redaction.

    Spec: client-server-api, "Redactions"; rooms/vN, "Redactions" for the per-version lists.
    """
    kept = _KEPT_TOP_LEVEL_KEYS
    if not version.updated_redaction_rules:
        kept = kept | _KEPT_TOP_LEVEL_KEYS_BEFORE_V11
    redacted: dict[str, JsonValue] = {k: copy_json(v) for k, v in event.items() if k in kept and k != "content"}
    content = event.get("content")
    event_type = event.get("type")
    if isinstance(content, Mapping):
        redacted["content"] = _redact_content(event_type if isinstance(event_type, str) else "", content, version)
    else:
        redacted["content"] = {}
    return redacted
