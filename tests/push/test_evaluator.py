"""Push rule evaluation: conditions, globs, dotted keys, and every server-default rule.

Spec: client-server-api, "Push Rules" ("Conditions", "Predefined Rules"); appendices,
"Glob-style matching" and "Dot-separated property paths".
"""
from __future__ import annotations

from typing import Any

import pytest

from pocketserver.push.default_rules import default_rule_ids, default_rules
from pocketserver.push.evaluator import (PushContext, PushRule, condition_matches, evaluate_rules, get_event_property,
                                         is_highlight, member_count_matches, split_dotted_key, tweaks_for_actions)
from pocketserver.push.rules import build_ruleset

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!room:example.org"


def event(type: str = "m.room.message", content: dict[str, Any] | None = None, sender: str = BOB,
          **extra: Any) -> dict[str, Any]:
    return {"type": type, "content": content if content is not None else {}, "sender": sender, "room_id": ROOM,
            "event_id": "$e", **extra}


def ctx(**overrides: Any) -> PushContext:
    values: dict[str, Any] = {"user_id": ALICE, "display_name": "Alice Liddell", "member_count": 5,
                              "sender_power_level": 0, "notification_levels": {"room": 50}}
    return PushContext(**{**values, **overrides})


def match(condition: dict[str, Any], ev: dict[str, Any], c: PushContext | None = None) -> bool:
    return condition_matches(condition, ev, c or ctx())


def winner(ev: dict[str, Any], c: PushContext | None = None, rules: tuple[PushRule, ...] | None = None) -> str | None:
    rule = evaluate_rules(rules if rules is not None else build_ruleset(ALICE, [], {}).rules, ev, c or ctx())
    return rule.rule_id if rule else None


# --- event_match -----------------------------------------------------------------------------------

def test_event_match_spec_topic_example() -> None:
    """Spec: "Conditions", event_match note: content.topic with pattern `lunc?*`."""
    cond = {"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}
    topic = lambda value: event("m.room.topic", {"topic": value}, state_key="")  # noqa: E731
    assert match(cond, topic("Lunch plans"))
    assert match(cond, topic("LUNCH"))
    assert not match(cond, topic(" lunch"))
    assert not match(cond, topic("lunc"))
    assert not match(cond, topic(None))


def test_event_match_body_word_boundaries() -> None:
    """Spec: "Conditions", event_match note: content.body with pattern `ex*ple`."""
    cond = {"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}
    body = lambda value: event(content={"body": value})  # noqa: E731
    assert match(cond, body("An example event."))
    assert match(cond, body("exple"))
    assert match(cond, body("An exciting triple-whammy"))
    assert not match(cond, body("An examples event"))
    assert not match(cond, body("anexample"))


def test_event_match_absent_or_non_string_never_matches() -> None:
    cond = {"kind": "event_match", "key": "content.missing", "pattern": "*"}
    assert not match(cond, event())
    assert not match({"kind": "event_match", "key": "content.n", "pattern": "*"}, event(content={"n": 1}))
    assert match({"kind": "event_match", "key": "content.s", "pattern": "*"}, event(content={"s": ""}))


def test_event_match_whole_value_and_case_insensitive() -> None:
    cond = {"kind": "event_match", "key": "type", "pattern": "m.room.message"}
    assert match(cond, event("M.Room.Message"))
    assert not match(cond, event("m.room.message.extra"))
    assert not match({"kind": "event_match", "key": "type", "pattern": "m.room.*"}, event("m.reaction"))
    assert match({"kind": "event_match", "key": "type", "pattern": "m.room.*"}, event("m.room.name"))


def test_glob_stays_fast_on_hostile_bodies() -> None:
    """Many `*` against a long body must not backtrack exponentially (this runs in the write job)."""
    import time
    cond = {"kind": "event_match", "key": "content.body", "pattern": "a*a*a*a*a*a*b"}
    started = time.perf_counter()
    assert not match(cond, event(content={"body": "a " * 20000}))
    assert not match({"kind": "event_match", "key": "content.x", "pattern": "a*a*a*a*a*b"},
                     event(content={"x": "a" * 20000}))
    assert time.perf_counter() - started < 5
    assert match(cond, event(content={"body": "a a a a a a-b"}))


def test_glob_special_characters_are_literal() -> None:
    cond = {"kind": "event_match", "key": "content.x", "pattern": "a.b[c]+"}
    assert match(cond, event(content={"x": "a.b[c]+"}))
    assert not match(cond, event(content={"x": "aXb[c]+"}))


# --- event_property_is / event_property_contains ----------------------------------------------------

def test_event_property_is_spec_example() -> None:
    """Spec: "Conditions", event_property_is note: content.m\\.federate is true."""
    cond = {"kind": "event_property_is", "key": "content.m\\.federate", "value": True}
    create = lambda v: event("m.room.create", {"creator": BOB, "m.federate": v}, state_key="")  # noqa: E731
    assert match(cond, create(True))
    assert not match(cond, create("true"))
    assert not match(cond, create(1))


def test_event_property_is_types() -> None:
    assert match({"kind": "event_property_is", "key": "content.v", "value": None}, event(content={"v": None}))
    assert match({"kind": "event_property_is", "key": "content.v", "value": 3}, event(content={"v": 3}))
    assert not match({"kind": "event_property_is", "key": "content.v", "value": 1}, event(content={"v": True}))
    assert not match({"kind": "event_property_is", "key": "content.v", "value": None}, event())
    assert not match({"kind": "event_property_is", "key": "content.v", "value": [1]}, event(content={"v": [1]}))
    assert not match({"kind": "event_property_is", "key": "content.v", "value": 1.5}, event(content={"v": 1.5}))


def test_event_property_contains_spec_example() -> None:
    """Spec: "Conditions", event_property_contains note: content.alt_aliases."""
    cond = {"kind": "event_property_contains", "key": "content.alt_aliases", "value": "#myroom:example.com"}
    aliases = lambda v: event("m.room.canonical_alias", {"alias": "#somewhere:localhost", "alt_aliases": v},  # noqa: E731
                              state_key="")
    assert match(cond, aliases(["#somewhere:example.org", "#myroom:example.com"]))
    assert not match(cond, aliases([":example.com"]))
    assert not match(cond, aliases("#myroom:example.com"))


# --- dotted keys ---------------------------------------------------------------------------------

def test_dotted_key_escaping() -> None:
    """Spec: appendices, "Dot-separated property paths"."""
    assert split_dotted_key("content.body") == ("content", "body")
    assert split_dotted_key(r"content.m\.relates_to") == ("content", "m.relates_to")
    assert split_dotted_key(r"content.m\\foo") == ("content", "m\\foo")
    assert split_dotted_key(r"content.m\xfoo") == ("content", "m\\xfoo")
    assert split_dotted_key(r"a\\.b") == ("a\\", "b")
    ev = event(content={"m.relates_to": {"rel_type": "m.replace"}, "m": {"relates_to": "wrong"}})
    assert get_event_property(ev, r"content.m\.relates_to.rel_type") == "m.replace"


# --- the other conditions --------------------------------------------------------------------------

@pytest.mark.parametrize("spec,count,expected", [
    ("2", 2, True), ("2", 3, False), ("==2", 2, True), ("<3", 2, True), ("<2", 2, False), (">2", 3, True),
    (">=2", 2, True), ("<=10", 11, False), ("<=10", 10, True), ("x", 2, False), ("", 2, False), (2, 2, False),
])
def test_room_member_count(spec: Any, count: int, expected: bool) -> None:
    assert member_count_matches(spec, count) is expected


def test_sender_notification_permission() -> None:
    cond = {"kind": "sender_notification_permission", "key": "room"}
    assert not match(cond, event(), ctx(sender_power_level=49))
    assert match(cond, event(), ctx(sender_power_level=50))
    assert match(cond, event(), ctx(sender_power_level=float("inf")))
    assert match(cond, event(), ctx(sender_power_level=10, notification_levels={"room": 10}))
    assert not match({"kind": "sender_notification_permission", "key": "other"}, event(), ctx(sender_power_level=100))


def test_contains_display_name() -> None:
    cond = {"kind": "contains_display_name"}
    assert match(cond, event(content={"body": "hi alice liddell!"}))
    assert not match(cond, event(content={"body": "hi alice"}))
    assert not match(cond, event(content={"body": "Alice Liddellx"}))
    assert not match(cond, event(content={"body": "hi"}), ctx(display_name=None))
    assert match(cond, event(content={"body": "ping a.b*"}), ctx(display_name="a.b*"))
    assert not match(cond, event(content={"body": "ping aXb"}), ctx(display_name="a.b*"))


def test_unknown_condition_never_matches() -> None:
    rule = PushRule("override", "x", False, True, ("notify",), ({"kind": "org.example.unknown"},))
    assert evaluate_rules((rule,), event(), ctx()) is None


def test_actions_tweaks_and_highlight() -> None:
    actions = ("notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"})
    assert tweaks_for_actions(actions) == {"sound": "default", "highlight": True}
    assert is_highlight(actions)
    assert not is_highlight(("notify", {"set_tweak": "highlight", "value": False}))
    assert not is_highlight(("notify",))


# --- the default rules -----------------------------------------------------------------------------

def test_default_rule_set_is_complete_and_ordered() -> None:
    rules = build_ruleset(ALICE, [], {}).by_kind()
    ids = {kind: [r.rule_id for r in rs] for kind, rs in rules.items()}
    assert ids["override"][:5] == [".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me",
                                   ".m.rule.member_event", ".m.rule.is_user_mention"]
    for rule_id in (".m.rule.contains_display_name", ".m.rule.is_room_mention", ".m.rule.roomnotif",
                    ".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl", ".m.rule.suppress_edits",
                    ".org.matrix.msc3930.rule.poll_response"):
        assert rule_id in ids["override"]
    assert ids["content"] == [".m.rule.contains_user_name"]
    assert ids["underride"][:5] == [".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one",
                                    ".m.rule.message", ".m.rule.encrypted"]
    assert ".org.matrix.msc3930.rule.poll_start" in ids["underride"]
    assert ids["room"] == [] and ids["sender"] == []
    assert all(r.default and r.rule_id.startswith(".") for rs in rules.values() for r in rs)
    assert {k: set(v) for k, v in ids.items()} == default_rule_ids()
    master = rules["override"][0]
    assert master.to_json() == {"rule_id": ".m.rule.master", "default": True, "enabled": False, "actions": [],
                                "conditions": []}
    assert rules["content"][0].to_json()["pattern"] == "alice"


def test_default_rules_fill_in_the_user() -> None:
    invite = next(r for r in default_rules(ALICE) if r.rule_id == ".m.rule.invite_for_me")
    assert {"kind": "event_match", "key": "state_key", "pattern": ALICE} in invite.conditions
    mention = next(r for r in default_rules(ALICE) if r.rule_id == ".m.rule.is_user_mention")
    assert mention.conditions[0]["value"] == ALICE


@pytest.mark.parametrize("ev,c,expected", [
    (event(content={"msgtype": "m.notice", "body": "bot"}), None, ".m.rule.suppress_notices"),
    (event("m.room.member", {"membership": "invite"}, state_key=ALICE), None, ".m.rule.invite_for_me"),
    (event("m.room.member", {"membership": "invite"}, state_key="@carol:example.org"), None, ".m.rule.member_event"),
    (event("m.room.member", {"membership": "join"}, state_key=BOB), None, ".m.rule.member_event"),
    (event(content={"body": "hey", "m.mentions": {"user_ids": [ALICE]}}), None, ".m.rule.is_user_mention"),
    (event(content={"body": "hello Alice Liddell"}), None, ".m.rule.contains_display_name"),
    (event(content={"body": "hey", "m.mentions": {"room": True}}), ctx(sender_power_level=50),
     ".m.rule.is_room_mention"),
    (event(content={"body": "@room hey"}), ctx(sender_power_level=100), ".m.rule.roomnotif"),
    (event("m.room.tombstone", {"body": "moved"}, state_key=""), None, ".m.rule.tombstone"),
    (event("m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "👍"}}), None,
     ".m.rule.reaction"),
    (event("m.room.server_acl", {"allow": ["*"]}, state_key=""), None, ".m.rule.room.server_acl"),
    (event(content={"body": "* fixed", "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}), None,
     ".m.rule.suppress_edits"),
    (event("org.matrix.msc3381.poll.response", {}), None, ".org.matrix.msc3930.rule.poll_response"),
    (event(content={"body": "is alice around?"}), None, ".m.rule.contains_user_name"),
    (event("m.call.invite", {"call_id": "1"}), None, ".m.rule.call"),
    (event("m.room.encrypted", {"ciphertext": "x"}), ctx(member_count=2), ".m.rule.encrypted_room_one_to_one"),
    (event(content={"body": "hi"}), ctx(member_count=2), ".m.rule.room_one_to_one"),
    (event(content={"body": "hi"}), None, ".m.rule.message"),
    (event("m.room.encrypted", {"ciphertext": "x"}), None, ".m.rule.encrypted"),
    (event("im.vector.modular.widgets", {"type": "jitsi"}, state_key="w"), None, ".im.vector.jitsi"),
    (event("org.matrix.msc3381.poll.start", {}), ctx(member_count=2), ".org.matrix.msc3930.rule.poll_start_one_to_one"),
    (event("org.matrix.msc3381.poll.start", {}), None, ".org.matrix.msc3930.rule.poll_start"),
    (event("org.matrix.msc3381.poll.end", {}), ctx(member_count=2), ".org.matrix.msc3930.rule.poll_end_one_to_one"),
    (event("org.matrix.msc3381.poll.end", {}), None, ".org.matrix.msc3930.rule.poll_end"),
    (event("m.room.topic", {"topic": "x"}, state_key=""), None, None),
])
def test_each_default_rule(ev: dict[str, Any], c: PushContext | None, expected: str | None) -> None:
    """Spec: "Predefined Rules": each default rule wins for the event it is meant for."""
    assert winner(ev, c) == expected


def test_default_actions() -> None:
    rules = {r.rule_id: r for r in default_rules(ALICE)}
    assert rules[".m.rule.message"].actions == ("notify",)
    assert rules[".m.rule.suppress_notices"].actions == ()
    assert is_highlight(rules[".m.rule.is_user_mention"].actions)
    assert is_highlight(rules[".m.rule.is_room_mention"].actions)
    assert is_highlight(rules[".m.rule.tombstone"].actions)
    assert not is_highlight(rules[".m.rule.room_one_to_one"].actions)
    assert tweaks_for_actions(rules[".m.rule.call"].actions) == {"sound": "ring"}


def test_room_mention_needs_power() -> None:
    ev = event(content={"body": "hey", "m.mentions": {"room": True}})
    assert winner(ev, ctx(sender_power_level=0)) == ".m.rule.message"
    assert winner(event(content={"body": "@room"}), ctx(sender_power_level=0)) == ".m.rule.message"


def test_intentional_mentions_disable_legacy_mention_rules() -> None:
    """With m.mentions present the body-matching rules are skipped (Synapse, "User and room mentions")."""
    ev = event(content={"body": "Alice Liddell, alice, @room", "m.mentions": {}})
    assert winner(ev, ctx(sender_power_level=100)) == ".m.rule.message"
    ev = event(content={"body": "hi", "m.mentions": {"user_ids": [BOB]}})
    assert winner(ev) == ".m.rule.message"


def test_mention_in_edit_still_notifies() -> None:
    ev = event(content={"body": "* hey", "m.mentions": {"user_ids": [ALICE]},
                        "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}})
    assert winner(ev) == ".m.rule.is_user_mention"


def test_master_rule_enabled_silences_everything() -> None:
    rules = build_ruleset(ALICE, [], {("override", ".m.rule.master"): (True, None)}).rules
    assert winner(event(content={"body": "hi"}), rules=rules) == ".m.rule.master"
    assert rules[0].actions == ()


def test_disabled_default_rule_is_skipped_and_user_rules_rank_first() -> None:
    from pocketserver.storage.push import StoredRule
    own = [StoredRule("underride", "mine", 1, [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
                      None, ["notify", {"set_tweak": "sound", "value": "mine"}], True),
           StoredRule("room", ROOM, 1, None, None, [], True),
           StoredRule("sender", BOB, 1, None, None, ["notify"], True)]
    rules = build_ruleset(ALICE, own, {("underride", ".m.rule.message"): (False, None)}).rules
    assert winner(event(content={"body": "hi"}), rules=rules) == ROOM
    rules = build_ruleset(ALICE, own[:1], {("underride", ".m.rule.message"): (False, None)}).rules
    assert winner(event(content={"body": "hi"}), rules=rules) == "mine"
    rules = build_ruleset(ALICE, own[2:], {}).rules
    assert winner(event(content={"body": "hi"}), rules=rules) == BOB
    assert winner(event(content={"body": "hi"}, sender="@carol:example.org"), rules=rules) == ".m.rule.message"


def test_glob_agrees_with_a_reference_regex() -> None:
    """The segment matcher gives the same answers as a plain backtracking regex on small inputs."""
    import itertools
    import re

    from pocketserver.push.evaluator import glob_matches

    def reference(pattern: str, value: str, word: bool) -> bool:
        body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        if word:
            body = rf"(?:^|(?<=[^A-Za-z0-9_])){body}(?:$|(?=[^A-Za-z0-9_]))"
            return re.search(body, value, re.IGNORECASE | re.DOTALL) is not None
        return re.fullmatch(body, value, re.IGNORECASE | re.DOTALL) is not None

    patterns = ["".join(p) for n in range(1, 5) for p in itertools.product("a*? ", repeat=n)]
    values = ["".join(v) for n in range(0, 6) for v in itertools.product("aB -", repeat=n)][::7]
    for pattern in patterns:
        for value in values:
            for word in (False, True):
                assert glob_matches(pattern, value, word) is reference(pattern, value, word), (pattern, value, word)


def test_shared_memo_gives_each_recipient_their_own_answer() -> None:
    """One memo per event serves every recipient: user-specific conditions still differ per user."""
    from pocketserver.storage.push import StoredRule

    def flag_rule(value: Any) -> StoredRule:
        return StoredRule("override", f"flag-{value!r}", 1,
                          [{"kind": "event_property_is", "key": "content.flag", "value": value}], None, ["notify"], True)

    carol, dave = "@carol:example.org", "@dave:example.org"
    events = [event(content={"body": "hello Alice Liddell"}), event(content={"body": "carol: lunch?"}),
              event(content={"body": "x", "flag": 1}), event(content={"body": "x", "flag": True}),
              event(content={"body": "@room", "m.mentions": {"user_ids": [carol]}}),
              event("m.room.member", {"membership": "invite"}, state_key=carol)]
    users = [(ALICE, "Alice Liddell", build_ruleset(ALICE, [], {}).rules),
             (carol, "Carol C.", build_ruleset(carol, [flag_rule(True)], {}).rules),
             (dave, None, build_ruleset(dave, [flag_rule(1)], {}).rules)]
    winners = []
    for ev in events:
        memo: dict[Any, bool] = {}
        for user_id, name, rules in users:
            c = ctx(user_id=user_id, display_name=name)
            alone = evaluate_rules(rules, ev, c)
            shared = evaluate_rules(rules, ev, c, memo)
            assert (shared.rule_id if shared else None) == (alone.rule_id if alone else None), (ev, user_id)
            winners.append(shared.rule_id if shared else None)
    assert winners[0] == ".m.rule.contains_display_name" and winners[4] == ".m.rule.contains_user_name"
    assert winners[6:9] == [".m.rule.message", ".m.rule.message", "flag-1"]
    assert winners[9:12] == [".m.rule.message", "flag-True", ".m.rule.message"]


def test_default_rules_shortcut_agrees_with_full_evaluation() -> None:
    """EventEvaluation's shortcut for untouched default rules gives every recipient the full answer."""
    from pocketserver.push.evaluator import EventEvaluation

    nobody = "@nobody-0123456789abcdef:invalid"
    template = build_ruleset(nobody, [], {}).rules
    users = [("@alice:example.org", "Alice Liddell"), ("@bob:example.org", None), ("@carol:example.org", "carol"),
             ("@dan:example.org", 'Dan "the man"'), ("@eve:example.org", "Ève"), ("@fay:example.org", "fay\\x"),
             ("@room:example.org", "room")]
    bodies = ["hello", "hello alice", "Alice Liddell!", "ping @bob:example.org", "CAROL?", 'it is "Dan "the man""',
              "ève et Ève", "fay\\x", "@room lunch", "bobby", "d a n"]
    events = [event(content={"body": b, "msgtype": "m.text"}) for b in bodies]
    events += [event(content={"body": "x", "m.mentions": {"user_ids": ["@carol:example.org"]}}),
               event(content={"body": "x", "m.mentions": {"room": True}}),
               event("m.room.member", {"membership": "invite"}, state_key="@bob:example.org"),
               event("m.room.member", {"membership": "join"}, state_key="@bob:example.org"),
               event(content={"msgtype": "m.notice", "body": "alice"}), event("m.reaction", {}),
               event("m.room.encrypted", {"algorithm": "x"})]
    shortcuts = 0
    for ev in events:
        for member_count in (2, 7):
            evaluation = EventEvaluation(ev, nobody, template, member_count=member_count, sender_power_level=100,
                                         notification_levels={"room": 50})
            for user_id, name in users:
                c = ctx(user_id=user_id, display_name=name, member_count=member_count, sender_power_level=100)
                rules = build_ruleset(user_id, [], {}).rules
                full = evaluate_rules(rules, ev, c)
                fast = evaluation.rule_for(rules, True, user_id, name)
                assert (fast and fast.rule_id) == (full and full.rule_id), (ev, user_id)
                if user_id == "@room:example.org":    # user-defined rules never take the shortcut
                    assert evaluation.rule_for(rules, False, user_id, name) == full
                shortcuts += fast is not None and fast in template
    assert shortcuts > 50          # the shortcut was really taken, not only the full path


def test_default_rules_that_name_no_user_are_shared_between_users() -> None:
    alice, bob = ({r.rule_id: r for r in default_rules(u)} for u in (ALICE, "@bob:example.org"))
    assert alice[".m.rule.message"] is bob[".m.rule.message"]
    assert alice[".m.rule.master"] is bob[".m.rule.master"]
    for rule_id in (".m.rule.invite_for_me", ".m.rule.is_user_mention", ".m.rule.contains_user_name"):
        assert alice[rule_id] != bob[rule_id]          # each names its own user
    assert alice[".m.rule.invite_for_me"].conditions[-1]["pattern"] == ALICE
