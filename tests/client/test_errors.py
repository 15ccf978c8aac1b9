"""Bad input always gets a Matrix error body with the spec's status, never a 500.

Spec: client-server-api, "Standard error response", "API Standards".
"""
from __future__ import annotations

import pytest


async def test_unknown_path_and_method(api) -> None:
    status, body = await api.call("GET", "/_matrix/client/v3/nonexistent")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    status, body = await api.call("DELETE", "/_matrix/client/versions")
    assert (status, body["errcode"]) == (405, "M_UNRECOGNIZED")


@pytest.mark.parametrize("raw, errcode", [
    (b"not json", "M_NOT_JSON"),
    (b"\xff\xfe\x00garbage", "M_NOT_JSON"),
    (b'{"a": NaN}', "M_NOT_JSON"),
    (b"", "M_NOT_JSON"),
    (b"[1, 2]", "M_BAD_JSON"),
    (b'"a string"', "M_BAD_JSON"),
    (b"[" * 5000 + b"]" * 5000, "M_NOT_JSON"),
    (b'{"a":' * 150 + b"1" + b"}" * 150, "M_BAD_JSON"),
])
async def test_malformed_bodies(api, raw: bytes, errcode: str) -> None:
    status, body = await api.call("POST", "/_matrix/client/v3/login", raw=raw)
    assert status == 400 and body["errcode"] == errcode and isinstance(body["error"], str)


async def test_oversized_body_is_refused(api) -> None:
    status, body = await api.call("POST", "/_matrix/client/v3/login",
                                  raw=b'{"a": "' + b"x" * 2_000_000 + b'"}')
    assert (status, body["errcode"]) == (413, "M_TOO_LARGE")


@pytest.mark.parametrize("payload", [
    {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": 5}, "password": "x"},
    {"type": "m.login.password", "identifier": "alice", "password": "x"},
    {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": 7},
    {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "x",
     "device_id": ["list"]},
    {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "x",
     "refresh_token": "yes"},
    {"type": "m.login.password"},
    {"type": "m.login.sso"},
    {"type": 12},
])
async def test_wrong_types_in_login(api, payload) -> None:
    status, body = await api.call("POST", "/_matrix/client/v3/login", payload)
    assert 400 <= status < 500 and body["errcode"].startswith("M_"), (status, body)


async def test_missing_and_unknown_tokens(api) -> None:
    status, body = await api.call("GET", "/_matrix/client/v3/account/whoami")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await api.call("GET", "/_matrix/client/v3/account/whoami", token="psat_nope")
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", False)
    status, body = await api.call("GET", "/_matrix/client/v3/account/whoami",
                                  headers={"Authorization": "Basic abc"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")   # as Synapse


async def test_cors_headers_on_every_response(api) -> None:
    resp = await api.client.get("/_matrix/client/v3/nonexistent")
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    resp = await api.client.options("/_matrix/client/v3/login")
    assert resp.status_code == 200
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]


async def test_unknown_user_profile_is_not_found(api) -> None:
    for user in ("@ghost:test.local", "@ghost:elsewhere.example", "not-a-user"):
        status, body = await api.call("GET", f"/_matrix/client/v3/profile/{user}")
        assert status in (400, 404) and body["errcode"] in ("M_NOT_FOUND", "M_INVALID_PARAM")


async def test_answers_are_not_cached_and_tokens_not_mixed(api) -> None:
    """JSON answers carry Cache-Control: no-store (they hold tokens and messages; Synapse's
    default); a request with a header token and a query token, or two Authorization headers, is
    refused, as Synapse refuses it, rather than the server picking one."""
    (token,) = await api.tokens("alice")
    resp = await api.client.get("/_matrix/client/v3/account/whoami", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    resp = await api.client.get("/_matrix/client/v3/nonexistent")
    assert resp.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    status, body = await api.call("GET", "/_matrix/client/v3/account/whoami", token=token,
                                  query={"access_token": "someone-elses"})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    from werkzeug.datastructures import Headers
    resp = await api.client.get("/_matrix/client/v3/account/whoami", headers=Headers(
        [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")]))
    assert resp.status_code == 401 and (await resp.get_json())["errcode"] == "M_MISSING_TOKEN"
