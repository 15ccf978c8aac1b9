"""Profiles: generic fields, validation, ownership and size limits.

Spec: client-server-api, "Profiles".
"""
from __future__ import annotations


async def test_profile_fields(api) -> None:
    me = await api.register("yara")
    token, base = me["access_token"], "/_matrix/client/v3/profile/@yara:test.local"
    status, body = await api.call("GET", base)
    assert (status, body) == (200, {"displayname": "yara"})
    assert (await api.call("PUT", f"{base}/displayname", {"displayname": "Yara"}, token=token))[0] == 200
    assert (await api.call("PUT", f"{base}/avatar_url", {"avatar_url": "mxc://test.local/abc123"}, token=token))[0] == 200
    assert (await api.call("PUT", f"{base}/m.tz", {"m.tz": "Europe/Paris"}, token=token))[0] == 200
    assert (await api.call("PUT", f"{base}/org.example.pets", {"org.example.pets": ["cat"]}, token=token))[0] == 200
    status, body = await api.call("GET", base)
    assert body == {"displayname": "Yara", "avatar_url": "mxc://test.local/abc123", "m.tz": "Europe/Paris",
                    "org.example.pets": ["cat"]}
    assert (await api.call("GET", f"{base}/displayname"))[1] == {"displayname": "Yara"}
    assert (await api.call("DELETE", f"{base}/m.tz", token=token))[0] == 200
    status, body = await api.call("GET", f"{base}/m.tz")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_profile_validation(api) -> None:
    me = await api.register("zed")
    token, base = me["access_token"], "/_matrix/client/v3/profile/@zed:test.local"
    cases = [
        ("displayname", {"displayname": 5}, 400, "M_BAD_JSON"),
        ("avatar_url", {"avatar_url": "http://example.com/a.png"}, 400, "M_BAD_JSON"),
        ("displayname", {"other": "x"}, 400, "M_MISSING_PARAM"),
        ("NotAValidKey", {"NotAValidKey": 1}, 400, "M_INVALID_PARAM"),
        ("a." + "b" * 300, {"a." + "b" * 300: 1}, 400, "M_KEY_TOO_LARGE"),
        ("org.example.big", {"org.example.big": "x" * 70_000}, 400, "M_PROFILE_TOO_LARGE"),
    ]
    for key, payload, status, errcode in cases:
        got_status, body = await api.call("PUT", f"{base}/{key}", payload, token=token)
        assert (got_status, body["errcode"]) == (status, errcode), key


async def test_cannot_change_another_users_profile(api) -> None:
    me = await api.register("abe")
    await api.register("bea")
    status, body = await api.call("PUT", "/_matrix/client/v3/profile/@bea:test.local/displayname",
                                  {"displayname": "hacked"}, token=me["access_token"])
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("PUT", "/_matrix/client/v3/profile/@bea:test.local/displayname",
                                  {"displayname": "hacked"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    assert (await api.call("GET", "/_matrix/client/v3/profile/@bea:test.local"))[1]["displayname"] == "bea"


async def test_custom_keys_follow_the_namespaced_identifier_grammar(api) -> None:
    """Any key of the Common Namespaced Identifier Grammar (appendices): hyphens, digits after a dot,
    no dot at all; not upper case or a leading digit."""
    me = await api.register("zed")
    token, base = me["access_token"], "/_matrix/client/v3/profile/@zed:test.local"
    for key in ("com.example-corp.status", "org.example.2fa", "status"):
        status, body = await api.call("PUT", f"{base}/{key}", {key: "x"}, token=token)
        assert status == 200, (key, body)
        status, body = await api.call("GET", f"{base}/{key}", token=token)
        assert (status, body) == (200, {key: "x"}), key
    for key in ("Status", "1status", "_status"):
        status, body = await api.call("PUT", f"{base}/{key}", {key: "x"}, token=token)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), key
