"""TURN credentials for calls: none configured, time-limited ones from a shared secret, fixed ones.

Spec: client-server-api, "GET /_matrix/client/v3/voip/turnServer".
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from pocketserver.config import ConfigError, load
from tests.conftest import start_server
from tests.js_client import JsClient

TURN = "/_matrix/client/v3/voip/turnServer"
URIS = "turn:turn.test.local:3478?transport=udp, turns:turn.test.local:5349?transport=tcp"


async def test_no_turn_server_configured(api) -> None:
    token = (await api.tokens("alice"))[0]
    assert await api.call("GET", TURN, token=token) == (200, {})     # as Synapse: nothing to offer
    status, body = await api.call("GET", TURN)
    assert status == 401 and body["errcode"] == "M_MISSING_TOKEN"


async def test_fixed_credentials_and_guests(make_api) -> None:
    api = await make_api(turn_uris=URIS, turn_username="pocket", turn_password="s3cret",
                         turn_user_lifetime_ms=3_600_000, allow_guest_access=True, turn_allow_guests=False)
    token = (await api.tokens("alice"))[0]
    status, body = await api.call("GET", TURN, token=token)
    assert status == 200, body
    assert body == {"username": "pocket", "password": "s3cret", "ttl": 3600,
                    "uris": ["turn:turn.test.local:3478?transport=udp", "turns:turn.test.local:5349?transport=tcp"]}
    status, guest = await api.call("POST", "/_matrix/client/v3/register", {}, query={"kind": "guest"})
    assert status == 200, guest
    status, body = await api.call("GET", TURN, token=guest["access_token"])
    assert status == 403 and body["errcode"] == "M_FORBIDDEN", body


def test_turn_settings_are_checked() -> None:
    for bad, problem in (({"turn_uris": "turn:x:3478"}, "turn_shared_secret"),
                         ({"turn_uris": "http://x", "turn_shared_secret": "s"}, "turn: or turns:"),
                         ({"turn_user_lifetime_ms": 10}, "turn_user_lifetime_ms")):
        with pytest.raises(ConfigError, match=problem):
            load(environ={}, flags={"server_name": "test.local", **bad})


async def test_js_sdk_gets_time_limited_credentials(tmp_path, http) -> None:
    server = start_server(tmp_path, turn_uris=URIS, turn_shared_secret="coturn-secret")
    js = await JsClient.start()
    try:
        await server.register_shared_secret(http, "caller", "caller-pw")
        await js.call("login", baseUrl=server.base_url, user="caller", password="caller-pw")
        before = int(time.time())
        body = (await js.call("turnServer"))["body"]
        expiry, user_id = body["username"].split(":", 1)
        assert user_id == "@caller:test.local" and body["ttl"] == 86_400
        assert before + 86_400 <= int(expiry) <= int(time.time()) + 86_400
        # The password is what coturn's use-auth-secret computes from the username.
        expected = hmac.new(b"coturn-secret", body["username"].encode(), hashlib.sha1).digest()
        assert base64.b64decode(body["password"]) == expected
        assert body["uris"] == ["turn:turn.test.local:3478?transport=udp", "turns:turn.test.local:5349?transport=tcp"]
    finally:
        await js.close()
        assert server.stop() == 0
