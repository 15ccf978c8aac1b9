"""Push rules over HTTP: listing, creating with before/after, enabling, actions, errors, sync account data.

Spec: client-server-api, "Push Rules: API", "Push Rules: Events".
"""
from __future__ import annotations

PR = "/_matrix/client/v3/pushrules"
SYNC = "/_matrix/client/v3/sync"


async def test_get_default_rules(api) -> None:
    a = (await api.register("alice"))["access_token"]
    status, body = await api.call("GET", f"{PR}/", token=a)
    assert status == 200, body
    ruleset = body["global"]
    assert set(ruleset) == {"override", "content", "room", "sender", "underride"}
    assert ruleset["override"][0]["rule_id"] == ".m.rule.master"
    assert ruleset["override"][0]["enabled"] is False
    assert ruleset["content"][0] == {"rule_id": ".m.rule.contains_user_name", "default": True, "enabled": True,
                                     "pattern": "alice", "actions": ["notify", {"set_tweak": "sound", "value": "default"},
                                                                     {"set_tweak": "highlight"}]}
    status, global_only = await api.call("GET", f"{PR}/global/", token=a)
    assert status == 200 and global_only == ruleset
    status, rule = await api.call("GET", f"{PR}/global/underride/.m.rule.message", token=a)
    assert status == 200 and rule["actions"] == ["notify"] and rule["default"] is True
    status, _ = await api.call("GET", f"{PR}/", token=None)
    assert status == 401


async def test_create_order_and_delete(api) -> None:
    a = (await api.register("alice"))["access_token"]
    cake = {"pattern": "cake", "actions": ["notify", {"set_tweak": "sound", "value": "cakealarm.wav"}]}
    status, body = await api.call("PUT", f"{PR}/global/content/SSByZWFsbHkgbGlrZSBjYWtl", cake, token=a)
    assert status == 200 and body == {}, body
    status, body = await api.call("PUT", f"{PR}/global/content/U3BvbmdlIGNha2UgaXMgYmVzdA",
                                  {"pattern": "cake*lie", "actions": ["notify"]}, token=a,
                                  query={"before": "SSByZWFsbHkgbGlrZSBjYWtl"})
    assert status == 200, body
    status, body = await api.call("PUT", f"{PR}/global/content/last", {"pattern": "x", "actions": []}, token=a,
                                  query={"after": "SSByZWFsbHkgbGlrZSBjYWtl"})
    assert status == 200, body
    status, body = await api.call("PUT", f"{PR}/global/content/first", {"pattern": "y", "actions": []}, token=a)
    assert status == 200, body
    _, content = await api.call("GET", f"{PR}/global/", token=a)
    assert [r["rule_id"] for r in content["content"]] == [
        "first", "U3BvbmdlIGNha2UgaXMgYmVzdA", "SSByZWFsbHkgbGlrZSBjYWtl", "last", ".m.rule.contains_user_name"]
    status, rule = await api.call("GET", f"{PR}/global/content/SSByZWFsbHkgbGlrZSBjYWtl", token=a)
    assert rule == {"rule_id": "SSByZWFsbHkgbGlrZSBjYWtl", "default": False, "enabled": True, "pattern": "cake",
                    "actions": ["notify", {"set_tweak": "sound", "value": "cakealarm.wav"}]}

    # Updating keeps the position; legacy actions are stripped.
    status, _ = await api.call("PUT", f"{PR}/global/content/last", {"pattern": "z", "actions": ["dont_notify"]},
                               token=a)
    assert status == 200
    _, rule = await api.call("GET", f"{PR}/global/content/last", token=a)
    assert rule["pattern"] == "z" and rule["actions"] == []
    _, content = await api.call("GET", f"{PR}/global/", token=a)
    assert [r["rule_id"] for r in content["content"]][3] == "last"

    status, _ = await api.call("DELETE", f"{PR}/global/content/last", token=a)
    assert status == 200
    status, body = await api.call("GET", f"{PR}/global/content/last", token=a)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"
    status, body = await api.call("DELETE", f"{PR}/global/content/last", token=a)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"


async def test_override_room_and_sender_rules(api) -> None:
    a = (await api.register("alice"))["access_token"]
    beer = {"conditions": [{"kind": "event_match", "key": "content.body", "pattern": "beer"},
                           {"kind": "room_member_count", "is": "<=10"}],
            "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}]}
    status, _ = await api.call("PUT", f"{PR}/global/override/U2VlIHlvdSBpbiBUaGUgRHVrZQ", beer, token=a)
    assert status == 200
    status, _ = await api.call("PUT", f"{PR}/global/room/!dj234r78wl45Gh4D:matrix.org", {"actions": []}, token=a)
    assert status == 200
    status, _ = await api.call("PUT", f"{PR}/global/sender/@spambot:matrix.org", {"actions": []}, token=a)
    assert status == 200
    _, ruleset = await api.call("GET", f"{PR}/global/", token=a)
    assert [r["rule_id"] for r in ruleset["override"]][:2] == [".m.rule.master", "U2VlIHlvdSBpbiBUaGUgRHVrZQ"]
    assert ruleset["override"][1]["conditions"] == beer["conditions"]
    assert ruleset["room"] == [{"rule_id": "!dj234r78wl45Gh4D:matrix.org", "default": False, "enabled": True,
                                "actions": []}]
    assert ruleset["sender"][0]["rule_id"] == "@spambot:matrix.org"


async def test_enabled_and_actions(api) -> None:
    a = (await api.register("alice"))["access_token"]
    rule = f"{PR}/global/override/.m.rule.master"
    status, body = await api.call("GET", f"{rule}/enabled", token=a)
    assert status == 200 and body == {"enabled": False}
    status, _ = await api.call("PUT", f"{rule}/enabled", {"enabled": True}, token=a)
    assert status == 200
    _, body = await api.call("GET", f"{rule}/enabled", token=a)
    assert body == {"enabled": True}
    status, body = await api.call("PUT", f"{rule}/enabled", {"enabled": "yes"}, token=a)
    assert status == 400 and body["errcode"] == "M_UNKNOWN"

    message = f"{PR}/global/underride/.m.rule.message"
    status, _ = await api.call("PUT", f"{message}/actions", {"actions": ["notify", {"set_tweak": "highlight"}]},
                               token=a)
    assert status == 200
    _, body = await api.call("GET", f"{message}/actions", token=a)
    assert body == {"actions": ["notify", {"set_tweak": "highlight"}]}
    _, body = await api.call("GET", message, token=a)
    assert body["default"] is True and body["enabled"] is True
    status, body = await api.call("PUT", f"{message}/actions", {"actions": ["explode"]}, token=a)
    assert status == 400 and body["errcode"] == "M_UNKNOWN"
    status, body = await api.call("PUT", f"{message}/actions", {"actions": "notify"}, token=a)
    assert status == 400

    await api.call("PUT", f"{PR}/global/sender/@bob:test.local", {"actions": ["notify"]}, token=a)
    status, _ = await api.call("PUT", f"{PR}/global/sender/@bob:test.local/enabled", {"enabled": False}, token=a)
    assert status == 200
    _, body = await api.call("GET", f"{PR}/global/sender/@bob:test.local", token=a)
    assert body["enabled"] is False
    status, body = await api.call("PUT", f"{PR}/global/sender/@nobody:test.local/enabled", {"enabled": True}, token=a)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"
    status, body = await api.call("GET", f"{PR}/global/override/.m.rule.nope/actions", token=a)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"


async def test_errors(api) -> None:
    a = (await api.register("alice"))["access_token"]
    # Default rules cannot be replaced (their pattern or conditions) or deleted.
    status, body = await api.call("PUT", f"{PR}/global/content/.m.rule.contains_user_name",
                                  {"pattern": "bob", "actions": ["notify"]}, token=a)
    assert status == 400 and body["errcode"] == "M_UNKNOWN"
    status, body = await api.call("DELETE", f"{PR}/global/override/.m.rule.master", token=a)
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"
    status, body = await api.call("PUT", f"{PR}/global/bogus/x", {"actions": []}, token=a)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await api.call("GET", f"{PR}/global/bogus/x", token=a)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await api.call("PUT", f"{PR}/global/content/a\\b", {"pattern": "x", "actions": []}, token=a)
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
    status, body = await api.call("PUT", f"{PR}/global/content/x", {"actions": []}, token=a)
    assert status == 400 and body["errcode"] == "M_UNKNOWN"
    status, body = await api.call("PUT", f"{PR}/global/override/x", {"conditions": [{"key": "type"}],
                                                                     "actions": []}, token=a)
    assert status == 400 and body["errcode"] == "M_UNKNOWN"
    status, body = await api.call("PUT", f"{PR}/global/override/x", {"conditions": []}, token=a)
    assert status == 400 and body["errcode"] == "M_UNKNOWN"
    status, body = await api.call("PUT", f"{PR}/global/override/x", {"actions": []}, token=a,
                                  query={"before": "missing"})
    assert status == 400 and body["errcode"] == "M_UNKNOWN" and "missing" in body["error"]
    status, body = await api.call("PUT", f"{PR}/global/override/x", {"actions": []}, token=a,
                                  query={"after": ".m.rule.master"})
    assert status == 400 and body["errcode"] == "M_UNKNOWN"
    status, body = await api.call("PUT", f"{PR}/global/override/x", raw=b"not json", token=a)
    assert status == 400 and body["errcode"] == "M_NOT_JSON"
    status, body = await api.call("PUT", f"{PR}/global/override/x", raw=b"[]", token=a)
    assert status == 400 and body["errcode"] == "M_BAD_JSON"


async def test_rules_are_per_user(api) -> None:
    a = (await api.register("alice"))["access_token"]
    b = (await api.register("bob"))["access_token"]
    await api.call("PUT", f"{PR}/global/content/secret", {"pattern": "x", "actions": []}, token=a)
    status, _ = await api.call("GET", f"{PR}/global/content/secret", token=b)
    assert status == 404
    status, _ = await api.call("DELETE", f"{PR}/global/content/secret", token=b)
    assert status == 404
    status, _ = await api.call("GET", f"{PR}/global/content/secret", token=a)
    assert status == 200


async def test_push_rules_account_data_in_sync(api) -> None:
    a = (await api.register("alice"))["access_token"]
    status, first = await api.call("GET", SYNC, token=a)
    assert status == 200
    pushed = [e for e in first["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert len(pushed) == 1 and pushed[0]["content"]["global"]["override"][0]["rule_id"] == ".m.rule.master"
    _, empty = await api.call("GET", SYNC, query={"since": first["next_batch"]}, token=a)
    assert not [e for e in empty["account_data"]["events"] if e["type"] == "m.push_rules"]

    await api.call("PUT", f"{PR}/global/override/.m.rule.master/enabled", {"enabled": True}, token=a)
    _, incr = await api.call("GET", SYNC, query={"since": empty["next_batch"]}, token=a)
    pushed = [e for e in incr["account_data"]["events"] if e["type"] == "m.push_rules"]
    assert len(pushed) == 1 and pushed[0]["content"]["global"]["override"][0]["enabled"] is True
    # The account data API shows the same rules and still refuses to set them.
    status, body = await api.call("GET", "/_matrix/client/v3/user/@alice:test.local/account_data/m.push_rules",
                                  token=a)
    assert status == 200 and body["global"]["override"][0]["enabled"] is True
    status, _ = await api.call("PUT", "/_matrix/client/v3/user/@alice:test.local/account_data/m.push_rules",
                               {"global": {}}, token=a)
    assert status == 405


async def test_push_rules_read_as_account_data(api) -> None:
    """m.push_rules cannot be put as account data, but "Servers must allow clients to read" it
    (spec, "Client Config"): the same ruleset /pushrules/ gives."""
    me = await api.register("ursula")
    token = me["access_token"]
    status, body = await api.call("GET", "/_matrix/client/v3/user/@ursula:test.local/account_data/m.push_rules",
                                  token=token)
    _, rules = await api.call("GET", "/_matrix/client/v3/pushrules/", token=token)
    assert status == 200 and body == rules, body
