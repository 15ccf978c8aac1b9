"""Push rule evaluation: which rule of a user matches an event, and what its actions say.

Pure: plain event JSON and a PushContext in, the matching rule out.
Spec: client-server-api, "Push Rules" ("Conditions", "Actions"); appendices, "Glob-style matching"
and "Dot-separated property paths".
"""
from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

KINDS = ("override", "content", "room", "sender", "underride")
LEGACY_ACTIONS = ("dont_notify", "coalesce")
# Synapse's behaviour for intentional mentions: the legacy body-matching mention rules are skipped
# when the event says whom it mentions (spec: "User and room mentions").
LEGACY_MENTION_RULES = frozenset({".m.rule.contains_display_name", ".m.rule.contains_user_name",
                                  ".m.rule.roomnotif"})
MAX_SAFE_INTEGER = 2**53 - 1
_MISSING = object()
_WORD = "A-Za-z0-9_"
_MEMBER_COUNT = re.compile(r"^(==|<=|>=|<|>)?([0-9]+)$")


@dataclass(frozen=True, slots=True)
class PushRule:
    """One push rule as the client API shows it."""

    kind: str
    rule_id: str
    default: bool
    enabled: bool
    actions: tuple[Any, ...]
    conditions: tuple[Mapping[str, Any], ...] | None = None    # override and underride rules
    pattern: str | None = None                                 # content rules
    _effective: tuple[Mapping[str, Any], ...] = field(init=False, repr=False, compare=False)
    _memo_id: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_effective", self._conditions_for_kind())
        object.__setattr__(self, "_memo_id", _memo_id(self._effective))

    def to_json(self) -> dict[str, Any]:
        """The rule in the shape of the spec's PushRule object."""
        body: dict[str, Any] = {"rule_id": self.rule_id, "default": self.default, "enabled": self.enabled,
                                "actions": list(self.actions)}
        if self.kind in ("override", "underride"):
            body["conditions"] = [dict(c) for c in self.conditions or ()]
        elif self.kind == "content":
            body["pattern"] = self.pattern or ""
        return body

    def effective_conditions(self) -> tuple[Mapping[str, Any], ...]:
        """The conditions the rule stands for; content, room and sender rules have predefined ones.

        Spec: client-server-api, "Push Rules" (kinds).
        """
        return self._effective

    def _conditions_for_kind(self) -> tuple[Mapping[str, Any], ...]:
        if self.kind == "content":
            return ({"kind": "event_match", "key": "content.body", "pattern": self.pattern or ""},)
        if self.kind == "room":
            return ({"kind": "event_property_is", "key": "room_id", "value": self.rule_id},)
        if self.kind == "sender":
            return ({"kind": "event_property_is", "key": "sender", "value": self.rule_id},)
        return tuple(self.conditions or ())


class PushContext(NamedTuple):
    """What the conditions need to know besides the event, for one user."""

    user_id: str
    display_name: str | None = None
    member_count: int = 0
    sender_power_level: float = 0
    notification_levels: Mapping[str, int] = MappingProxyType({"room": 50})


def strip_legacy_actions(actions: Iterable[Any]) -> tuple[Any, ...]:
    """Drop `dont_notify` and `coalesce`. Spec: "Historical Actions"."""
    return tuple(a for a in actions if a not in LEGACY_ACTIONS)


def evaluate_rules(rules: Sequence[PushRule], event: Mapping[str, Any], ctx: PushContext,
                   memo: dict[Any, bool] | None = None) -> PushRule | None:
    """The first enabled rule (in evaluation order) whose conditions all hold, or None.

    `memo` carries condition results from one recipient to the next for the same event: most
    conditions (and every default rule's, bar the display name) don't depend on who is asking, so a
    room of N members costs about one evaluation, not N. Pass a fresh dict per event; the event's
    member count and sender power level (in `ctx`) must be the same for every call sharing it.
    Spec: client-server-api, "Push Rules".
    """
    content = event.get("content")
    has_mentions = isinstance(content, dict) and "m.mentions" in content
    for rule in rules:
        if not rule.enabled:
            continue
        if has_mentions and rule.default and rule.rule_id in LEGACY_MENTION_RULES:
            continue
        if memo is not None and rule._memo_id is not None:
            hit = memo.get(rule._memo_id)
            if hit is None:
                hit = memo[rule._memo_id] = all(condition_matches(c, event, ctx) for c in rule._effective)
        else:
            hit = all(_memo_match(c, event, ctx, memo) for c in rule._effective)
        if hit:
            return rule
    return None


# Rules whose conditions are the same (as JSON) share one memo entry per event: the ID below.
_MEMO_IDS: dict[tuple[Any, ...], int] = {}
_MAX_MEMO_IDS = 100_000


def _condition_key(condition: Mapping[str, Any]) -> tuple[Any, ...]:
    value = condition.get("value")
    return (condition.get("kind"), condition.get("key"), condition.get("pattern"), value, type(value),
            condition.get("is"))


def _memo_id(conditions: tuple[Mapping[str, Any], ...]) -> int | None:
    """An ID for a rule's conditions when their outcome doesn't depend on who asks, else None."""
    if any(c.get("kind") == "contains_display_name" for c in conditions):
        return None
    key = tuple(_condition_key(c) for c in conditions)
    try:
        found = _MEMO_IDS.get(key)
    except TypeError:     # a malformed condition with a list or object value: not memoised
        return None
    if found is None and len(_MEMO_IDS) < _MAX_MEMO_IDS:
        found = _MEMO_IDS[key] = len(_MEMO_IDS)
    return found


def _memo_match(condition: Mapping[str, Any], event: Mapping[str, Any], ctx: PushContext,
                memo: dict[Any, bool] | None) -> bool:
    """One condition of a rule that depends on the asker (the display name), memoised by its inputs."""
    if memo is None:
        return condition_matches(condition, event, ctx)
    try:
        key = (_condition_key(condition), ctx.display_name)
        return memo[key]
    except KeyError:
        found = memo[key] = condition_matches(condition, event, ctx)
        return found
    except TypeError:
        return condition_matches(condition, event, ctx)


class EventEvaluation:
    """Push rules of one event, evaluated for each of its recipients.

    Besides the per-event memo, a shortcut: the server-default rules single a user out only
    through their user ID, localpart (mentions, invites, user-name match) and display name. A
    recipient with untouched default rules whose ID, localpart and display name appear nowhere in
    the event's content or state_key gets the same answer as a user nobody mentions, which is
    worked out once (`template_rules`: the defaults of a user ID that never occurs).
    """

    def __init__(self, event: Mapping[str, Any], template_user: str, template_rules: Sequence[PushRule], *,
                 member_count: int, sender_power_level: float, notification_levels: Mapping[str, int]) -> None:
        self.event = event
        self.memo: dict[Any, bool] = {}
        self._template_user = template_user
        self._template_rules = template_rules
        # The room's facts, the same for every recipient (the memo relies on it).
        self._member_count = member_count
        self._sender_power_level = sender_power_level
        self._notification_levels = notification_levels
        self._text: str | None = None
        self._template: PushRule | None | object = _MISSING

    def rule_for(self, rules: Sequence[PushRule], defaults_only: bool, user_id: str,
                 display_name: str | None) -> PushRule | None:
        """The rule of `rules` (the user's, in evaluation order) that matches the event, or None."""
        if defaults_only and not self.may_single_out(user_id, display_name):
            return self._template_rule()
        return evaluate_rules(rules, self.event, self._context(user_id, display_name), self.memo)

    def _template_rule(self) -> PushRule | None:
        """The answer of untouched default rules for a user the event doesn't single out, worked out once."""
        if self._template is _MISSING:
            self._template = evaluate_rules(self._template_rules, self.event,
                                            self._context(self._template_user, None), self.memo)
        return self._template  # type: ignore[return-value]

    def _context(self, user_id: str, display_name: str | None) -> PushContext:
        return PushContext(user_id, display_name, self._member_count, self._sender_power_level,
                           self._notification_levels)

    def may_single_out(self, user_id: str, display_name: str | None) -> bool:
        """Conservative: True unless none of the user's identifiers can be in the event."""
        if self._text is None:
            self._text = json.dumps([self.event.get("content"), self.event.get("state_key")],
                                    ensure_ascii=False).lower()
        for value in (user_id, _localpart(user_id), display_name):
            if not value:
                continue
            lowered = _searchable(value)
            if lowered is None or lowered in self._text:
                return True
        return False


@functools.lru_cache(maxsize=1024)
def _localpart(user_id: str) -> str:
    return user_id[1:].partition(":")[0]


@functools.lru_cache(maxsize=1024)
def _searchable(value: str) -> str | None:
    """`value` lower-cased, when it can be looked for in lower-cased JSON text; None when it can't.

    Only plain ASCII compares safely that way (no escapes, no case folding). Cached: recipients'
    IDs and display names repeat from one event to the next.
    """
    if not value.isascii() or not value.isprintable() or '"' in value or "\\" in value:
        return None
    return value.lower()


def condition_matches(condition: Mapping[str, Any], event: Mapping[str, Any], ctx: PushContext) -> bool:
    """Whether one condition holds; unknown or malformed conditions never match.

    Spec: client-server-api, "Conditions".
    """
    kind = condition.get("kind")
    if kind == "event_match":
        return _event_match(condition, event)
    if kind == "event_property_is":
        found = get_event_property(event, condition.get("key"))
        return found is not _MISSING and _same_value(found, condition.get("value", _MISSING))
    if kind == "event_property_contains":
        found = get_event_property(event, condition.get("key"))
        wanted = condition.get("value", _MISSING)
        return isinstance(found, list) and any(_same_value(item, wanted) for item in found)
    if kind == "contains_display_name":
        return _contains_display_name(event, ctx.display_name)
    if kind == "room_member_count":
        return member_count_matches(condition.get("is"), ctx.member_count)
    if kind == "sender_notification_permission":
        key = condition.get("key")
        required = ctx.notification_levels.get(key) if isinstance(key, str) else None
        return required is not None and ctx.sender_power_level >= required
    return False


def _event_match(condition: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    key, pattern = condition.get("key"), condition.get("pattern")
    if not isinstance(pattern, str):
        return False
    value = get_event_property(event, key)
    if not isinstance(value, str):
        return False
    return glob_matches(pattern, value, key == "content.body")


def _contains_display_name(event: Mapping[str, Any], display_name: str | None) -> bool:
    if not display_name:
        return False
    body = get_event_property(event, "content.body")
    if not isinstance(body, str):
        return False
    return _literal_word_matcher(display_name).search(body) is not None


def _same_value(a: Any, b: Any) -> bool:
    """Exact equality of non-compound canonical JSON values (no casts: True is not 1)."""
    if b is _MISSING or not _is_simple(a) or not _is_simple(b):
        return False
    return type(a) is type(b) and a == b


def _is_simple(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER


def member_count_matches(spec: Any, count: int) -> bool:
    """`room_member_count`'s `is`: a number with an optional ==, <, >, <= or >= prefix."""
    if not isinstance(spec, str):
        return False
    m = _MEMBER_COUNT.match(spec)
    if m is None:
        return False
    op, number = m.group(1) or "==", int(m.group(2))
    return {"==": count == number, "<": count < number, ">": count > number,
            "<=": count <= number, ">=": count >= number}[op]


def split_dotted_key(key: str) -> tuple[str, ...]:
    r"""Split a dot-separated property path; `\.` is a literal dot and `\\` a literal backslash.

    Spec: appendices, "Dot-separated property paths" (other escapes are kept as they are).
    """
    parts, current, i = [], [], 0
    while i < len(key):
        ch = key[i]
        if ch == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            current.append(key[i + 1])
            i += 2
            continue
        if ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def get_event_property(event: Mapping[str, Any], key: Any) -> Any:
    """The value at a dotted path in the event, or a sentinel when absent."""
    if not isinstance(key, str) or not key:
        return _MISSING
    value: Any = event
    for part in _split_cached(key):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


@functools.lru_cache(maxsize=1024)
def _split_cached(key: str) -> tuple[str, ...]:
    return split_dotted_key(key)


def glob_matches(pattern: str, value: str, word_boundary: bool) -> bool:
    """Case-insensitive glob match (`*` any run, `?` one character).

    Whole-value match normally; for `content.body`, any substring that starts and ends at a word
    boundary (start or end of the value, or a character outside [A-Za-z0-9_]).
    Spec: client-server-api, "Conditions" (`event_match`).

    The pattern is matched segment by segment (the parts between `*`s), each at its leftmost
    place, which is exact for globs: one regex with a `.*?` per star could backtrack for a very
    long time on a hostile body, and this runs inside the write job.
    """
    segments = pattern.split("*")
    if len(segments) == 1:
        return _regex(pattern, "body" if word_boundary else "whole").search(value) is not None
    first, *middle, last = segments
    found = _regex(first, "boundary_start" if word_boundary else "start").search(value)
    if found is None:
        return False
    pos = found.end()
    for segment in middle:
        if segment:
            found = _regex(segment, "anywhere").search(value, pos)
            if found is None:
                return False
            pos = found.end()
    if word_boundary:
        return _regex(last, "boundary_end").search(value, pos) is not None
    start = len(value) - len(last)
    return start >= pos and _regex(last, "end").match(value, start) is not None


@functools.lru_cache(maxsize=4096)
def _regex(segment: str, where: str) -> re.Pattern[str]:
    """A compiled, case-insensitive regex for a star-free glob segment (`?` is any one character)."""
    body = "".join("." if ch == "?" else re.escape(ch) for ch in segment)
    before, after = rf"(?:^|(?<=[^{_WORD}]))", rf"(?:$|(?=[^{_WORD}]))"
    source = {"body": before + body + after, "whole": rf"\A{body}\Z", "boundary_start": before + body,
              "start": rf"\A{body}", "anywhere": body, "boundary_end": body + after, "end": rf"{body}\Z"}[where]
    return re.compile(source, re.IGNORECASE | re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _literal_word_matcher(text: str) -> re.Pattern[str]:
    return re.compile(rf"(?:^|(?<=[^{_WORD}])){re.escape(text)}(?:$|(?=[^{_WORD}]))", re.IGNORECASE)


def tweaks_for_actions(actions: Iterable[Any]) -> dict[str, Any]:
    """The `set_tweak` actions as a dict; a tweak without `value` is true. Spec: "Actions"."""
    tweaks: dict[str, Any] = {}
    for action in actions:
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            tweaks[action["set_tweak"]] = action.get("value", True)
    return tweaks


def is_notify(actions: Iterable[Any]) -> bool:
    return "notify" in tuple(actions)


def is_highlight(actions: Iterable[Any]) -> bool:
    """Whether the highlight tweak is set to true (absent value means true). Spec: "Actions"."""
    return tweaks_for_actions(actions).get("highlight", False) is True
