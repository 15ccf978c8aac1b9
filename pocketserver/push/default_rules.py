"""The server-default push rules, in their evaluation order within each kind.

Spec: client-server-api, "Predefined Rules" ("Default Override Rules", "Default Underride Rules").
The legacy body-matching mention rules (.m.rule.contains_display_name, .m.rule.roomnotif,
.m.rule.contains_user_name), .im.vector.jitsi and the poll rules are not in the current spec text;
they are served as Synapse serves them, so older clients and bots keep working.
"""
from __future__ import annotations

import functools
from typing import Any

from pocketserver.push.evaluator import PushRule

USER_ID = "[the user's Matrix ID]"       # replaced by the owner's user ID
LOCALPART = "[the user's localpart]"     # replaced by the owner's localpart

SOUND = {"set_tweak": "sound", "value": "default"}
HIGHLIGHT = {"set_tweak": "highlight"}
HIGHLIGHT_FALSE = {"set_tweak": "highlight", "value": False}


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _type(event_type: str) -> dict[str, Any]:
    return _match("type", event_type)


def _one_to_one() -> dict[str, Any]:
    return {"kind": "room_member_count", "is": "2"}


MASTER: dict[str, Any] = {"rule_id": ".m.rule.master", "enabled": False, "conditions": [], "actions": []}

OVERRIDE: list[dict[str, Any]] = [
    {"rule_id": ".m.rule.suppress_notices", "conditions": [_match("content.msgtype", "m.notice")], "actions": []},
    {"rule_id": ".m.rule.invite_for_me",
     "conditions": [_type("m.room.member"), _match("content.membership", "invite"), _match("state_key", USER_ID)],
     "actions": ["notify", SOUND]},
    {"rule_id": ".m.rule.member_event", "conditions": [_type("m.room.member")], "actions": []},
    {"rule_id": ".m.rule.is_user_mention",
     "conditions": [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": USER_ID}],
     "actions": ["notify", SOUND, HIGHLIGHT]},
    {"rule_id": ".m.rule.contains_display_name", "conditions": [{"kind": "contains_display_name"}],
     "actions": ["notify", SOUND, HIGHLIGHT]},
    {"rule_id": ".m.rule.is_room_mention",
     "conditions": [{"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                    {"kind": "sender_notification_permission", "key": "room"}],
     "actions": ["notify", HIGHLIGHT]},
    {"rule_id": ".m.rule.roomnotif",
     "conditions": [{"kind": "sender_notification_permission", "key": "room"}, _match("content.body", "@room")],
     "actions": ["notify", HIGHLIGHT]},
    {"rule_id": ".m.rule.tombstone", "conditions": [_type("m.room.tombstone"), _match("state_key", "")],
     "actions": ["notify", HIGHLIGHT]},
    {"rule_id": ".m.rule.reaction", "conditions": [_type("m.reaction")], "actions": []},
    {"rule_id": ".m.rule.room.server_acl", "conditions": [_type("m.room.server_acl"), _match("state_key", "")],
     "actions": []},
    {"rule_id": ".m.rule.suppress_edits",
     "conditions": [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}],
     "actions": []},
    {"rule_id": ".org.matrix.msc3930.rule.poll_response",
     "conditions": [_type("org.matrix.msc3381.poll.response")], "actions": []},
]

CONTENT: list[dict[str, Any]] = [
    {"rule_id": ".m.rule.contains_user_name", "pattern": LOCALPART, "actions": ["notify", SOUND, HIGHLIGHT]},
]

UNDERRIDE: list[dict[str, Any]] = [
    {"rule_id": ".m.rule.call", "conditions": [_type("m.call.invite")],
     "actions": ["notify", {"set_tweak": "sound", "value": "ring"}]},
    {"rule_id": ".m.rule.encrypted_room_one_to_one", "conditions": [_one_to_one(), _type("m.room.encrypted")],
     "actions": ["notify", SOUND]},
    {"rule_id": ".m.rule.room_one_to_one", "conditions": [_one_to_one(), _type("m.room.message")],
     "actions": ["notify", SOUND]},
    {"rule_id": ".m.rule.message", "conditions": [_type("m.room.message")], "actions": ["notify"]},
    {"rule_id": ".m.rule.encrypted", "conditions": [_type("m.room.encrypted")], "actions": ["notify"]},
    {"rule_id": ".im.vector.jitsi",
     "conditions": [_type("im.vector.modular.widgets"), _match("content.type", "jitsi"), _match("state_key", "*")],
     "actions": ["notify", HIGHLIGHT_FALSE]},
    {"rule_id": ".org.matrix.msc3930.rule.poll_start_one_to_one",
     "conditions": [_one_to_one(), _type("org.matrix.msc3381.poll.start")], "actions": ["notify", SOUND]},
    {"rule_id": ".org.matrix.msc3930.rule.poll_start", "conditions": [_type("org.matrix.msc3381.poll.start")],
     "actions": ["notify"]},
    {"rule_id": ".org.matrix.msc3930.rule.poll_end_one_to_one",
     "conditions": [_one_to_one(), _type("org.matrix.msc3381.poll.end")], "actions": ["notify", SOUND]},
    {"rule_id": ".org.matrix.msc3930.rule.poll_end", "conditions": [_type("org.matrix.msc3381.poll.end")],
     "actions": ["notify"]},
]


def _fill(value: Any, user_id: str, localpart: str) -> Any:
    if value == USER_ID:
        return user_id
    if value == LOCALPART:
        return localpart
    if isinstance(value, dict):
        return {k: _fill(v, user_id, localpart) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, user_id, localpart) for v in value]
    return value


def _rule(kind: str, raw: dict[str, Any], user_id: str, localpart: str) -> PushRule:
    """The rule for `user_id`; a rule that names no user is one object shared by every user's rules."""
    filled = _fill(raw, user_id, localpart)      # a copy: the tables above are never handed out
    if filled != raw:
        return _make_rule(kind, filled)
    shared = _SHARED.get((kind, raw["rule_id"]))
    if shared is None:
        shared = _SHARED[(kind, raw["rule_id"])] = _make_rule(kind, filled)
    return shared


_SHARED: dict[tuple[str, str], PushRule] = {}


def _make_rule(kind: str, raw: dict[str, Any]) -> PushRule:
    conditions = tuple(raw["conditions"]) if "conditions" in raw else None
    return PushRule(kind=kind, rule_id=raw["rule_id"], default=True, enabled=raw.get("enabled", True),
                    actions=tuple(raw["actions"]), conditions=conditions, pattern=raw.get("pattern"))


@functools.lru_cache(maxsize=256)
def default_rules(user_id: str) -> tuple[PushRule, ...]:
    """The master rule, then every other server-default rule for `user_id` (kinds in spec order)."""
    localpart = user_id[1:].split(":", 1)[0]
    rules = [_rule("override", MASTER, user_id, localpart)]
    rules += [_rule("override", r, user_id, localpart) for r in OVERRIDE]
    rules += [_rule("content", r, user_id, localpart) for r in CONTENT]
    rules += [_rule("underride", r, user_id, localpart) for r in UNDERRIDE]
    return tuple(rules)


def default_rule_ids() -> dict[str, set[str]]:
    """The IDs of the server-default rules, by kind."""
    ids: dict[str, set[str]] = {"override": {MASTER["rule_id"]} | {r["rule_id"] for r in OVERRIDE},
                                "content": {r["rule_id"] for r in CONTENT}, "room": set(), "sender": set(),
                                "underride": {r["rule_id"] for r in UNDERRIDE}}
    return ids
