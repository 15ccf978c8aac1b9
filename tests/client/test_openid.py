"""OpenID tokens over HTTP and with matrix-js-sdk: request one, trade it for the user's ID.

Spec: client-server-api, "POST /_matrix/client/v3/user/{userId}/openid/request_token";
server-server-api, "GET /_matrix/federation/v1/openid/userinfo".
"""
from __future__ import annotations

import aiohttp

from pocketserver.accounts import openid
from pocketserver.accounts.auth import now_ms
from tests.js_client import JsClient

USERINFO = "/_matrix/federation/v1/openid/userinfo"


def request_token_path(user_id: str) -> str:
    return f"/_matrix/client/v3/user/{user_id}/openid/request_token"


async def test_request_and_trade_a_token(api) -> None:
    alice = await api.register("alice")
    status, body = await api.call("POST", request_token_path("@alice:test.local"), {}, token=alice["access_token"])
    assert status == 200, body
    assert body.keys() == {"access_token", "token_type", "matrix_server_name", "expires_in"}
    assert (body["token_type"], body["matrix_server_name"], body["expires_in"]) == ("Bearer", "test.local", 3600)
    assert await api.call("GET", USERINFO, query={"access_token": body["access_token"]}) == (
        200, {"sub": "@alice:test.local"})

    # The OpenID token is no access token, and an access token is no OpenID token.
    status, refused = await api.call("GET", "/_matrix/client/v3/account/whoami", token=body["access_token"])
    assert (status, refused["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, refused = await api.call("GET", USERINFO, query={"access_token": alice["access_token"]})
    assert (status, refused["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_refusals(api, monkeypatch) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a = alice["access_token"]
    status, body = await api.call("POST", request_token_path("@bob:test.local"), {}, token=a)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("POST", request_token_path("@alice:test.local"), {})
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await api.call("POST", request_token_path("@alice:test.local"), raw=b"not json", token=a)
    assert (status, body["errcode"]) == (400, "M_NOT_JSON")
    status, body = await api.call("POST", request_token_path("@alice:test.local"), [], token=a)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")

    status, body = await api.call("GET", USERINFO)
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    for junk in ("nope", "1.2.3.4", "x" * 5000):
        status, body = await api.call("GET", USERINFO, query={"access_token": junk})
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN"), junk

    # An hour later the token is spent.
    _, issued = await api.call("POST", request_token_path("@bob:test.local"), {}, token=bob["access_token"])
    later = now_ms() + openid.TOKEN_LIFETIME_MS + 1000
    monkeypatch.setattr("pocketserver.client.openid.now_ms", lambda: later)
    status, body = await api.call("GET", USERINFO, query={"access_token": issued["access_token"]})
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_guests_and_deactivated_users(make_api) -> None:
    api = await make_api(allow_guest_access=True)
    status, guest = await api.call("POST", "/_matrix/client/v3/register", {}, query={"kind": "guest"})
    assert status == 200, guest
    status, body = await api.call("POST", request_token_path(guest["user_id"]), {}, token=guest["access_token"])
    assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")

    carol = await api.register("carol")
    _, issued = await api.call("POST", request_token_path("@carol:test.local"), {}, token=carol["access_token"])
    assert (await api.call("GET", USERINFO, query={"access_token": issued["access_token"]}))[0] == 200
    status, body = await api.call("POST", "/_matrix/client/v3/account/deactivate", {
        "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "carol"},
                 "password": "pw"}}, token=carol["access_token"])
    assert status == 200, body
    status, body = await api.call("GET", USERINFO, query={"access_token": issued["access_token"]})
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_js_sdk_gets_a_token_a_widget_can_check(homeserver, http: aiohttp.ClientSession) -> None:
    js = await JsClient.start()
    try:
        await homeserver.register_shared_secret(http, "widgetuser", "widget-pw")
        await js.call("login", baseUrl=homeserver.base_url, user="widgetuser", password="widget-pw")
        body = (await js.call("getOpenIdToken"))["body"]
        assert body["matrix_server_name"] == "test.local" and body["expires_in"] == 3600
        # What a widget's back end does with it (spec: it must check the server name too).
        async with http.get(f"{homeserver.base_url}{USERINFO}", params={"access_token": body["access_token"]}) as resp:
            assert resp.status == 200
            assert await resp.json() == {"sub": "@widgetuser:test.local"}
    finally:
        await js.close()
