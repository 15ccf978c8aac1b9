"""Login, refresh tokens, token expiry, logout and rate limits.

Spec: client-server-api, "Login", "Refreshing access tokens", "Logout", "Soft logout".
"""
from __future__ import annotations

from pocketserver.accounts import auth


def password_login(user: str, password: str = "pw", **extra):
    return {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password, **extra}


async def test_login_flows(api) -> None:
    status, body = await api.call("GET", "/_matrix/client/v3/login")
    assert status == 200 and body == {"flows": [{"type": "m.login.password"}]}


async def test_login_by_localpart_mxid_and_legacy_user(api) -> None:
    await api.register("jane")
    for user in ("jane", "JANE", "@jane:test.local", "@Jane:test.local"):
        status, body = await api.call("POST", "/_matrix/client/v3/login", password_login(user))
        assert status == 200 and body["user_id"] == "@jane:test.local", (user, body)
    status, body = await api.call("POST", "/_matrix/client/v3/login",
                                  {"type": "m.login.password", "user": "jane", "password": "pw"})
    assert status == 200
    for user in ("@jane:elsewhere.example", "nobody"):
        status, body = await api.call("POST", "/_matrix/client/v3/login", password_login(user))
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_login_with_existing_device_replaces_its_token(api) -> None:
    await api.register("kim")
    _, first = await api.call("POST", "/_matrix/client/v3/login", password_login("kim", device_id="KIMPHONE"))
    _, second = await api.call("POST", "/_matrix/client/v3/login", password_login("kim", device_id="KIMPHONE"))
    assert first["device_id"] == second["device_id"] == "KIMPHONE"
    status, _ = await api.call("GET", "/_matrix/client/v3/account/whoami", token=first["access_token"])
    assert status == 401
    status, _ = await api.call("GET", "/_matrix/client/v3/account/whoami", token=second["access_token"])
    assert status == 200


async def test_access_token_query_parameter(api) -> None:
    body = await api.register("lee")
    status, who = await api.call("GET", "/_matrix/client/v3/account/whoami",
                                 query={"access_token": body["access_token"]})
    assert status == 200 and who["user_id"] == "@lee:test.local"


async def test_refresh_rotation_and_soft_logout(api, monkeypatch) -> None:
    await api.register("mia")
    status, body = await api.call("POST", "/_matrix/client/v3/login", password_login("mia", refresh_token=True))
    assert status == 200 and body["expires_in_ms"] == 300_000
    access, refresh = body["access_token"], body["refresh_token"]

    real_now = auth.now_ms()
    monkeypatch.setattr(auth, "now_ms", lambda: real_now + 301_000)
    status, err = await api.call("GET", "/_matrix/client/v3/account/whoami", token=access)
    assert (status, err["errcode"], err["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", True)
    monkeypatch.undo()

    status, new = await api.call("POST", "/_matrix/client/v3/refresh", {"refresh_token": refresh})
    assert status == 200 and new["refresh_token"] != refresh and new["access_token"] != access
    status, who = await api.call("GET", "/_matrix/client/v3/account/whoami", token=new["access_token"])
    assert status == 200 and who["device_id"] == body["device_id"]
    # Replaying a used refresh token is refused.
    status, err = await api.call("POST", "/_matrix/client/v3/refresh", {"refresh_token": refresh})
    assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, err = await api.call("POST", "/_matrix/client/v3/refresh", {})
    assert (status, err["errcode"]) == (400, "M_MISSING_PARAM")


async def test_a_refresh_whose_answer_was_lost_can_be_repeated(api) -> None:
    """The old refresh token stays good until the new access or refresh token is used, so a client
    that lost the answer refreshes again; the pair it never received is dropped. Spec:
    client-server-api, "Refreshing access tokens"."""
    await api.register("max")
    _, body = await api.call("POST", "/_matrix/client/v3/login", password_login("max", refresh_token=True))
    first = body["refresh_token"]
    status, lost = await api.call("POST", "/_matrix/client/v3/refresh", {"refresh_token": first})
    assert status == 200
    status, again = await api.call("POST", "/_matrix/client/v3/refresh", {"refresh_token": first})
    assert status == 200 and again["refresh_token"] != lost["refresh_token"], again
    for token in (lost["access_token"], body["access_token"]):       # the unreceived and the old one
        status, err = await api.call("GET", "/_matrix/client/v3/account/whoami", token=token)
        assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, err = await api.call("POST", "/_matrix/client/v3/refresh", {"refresh_token": lost["refresh_token"]})
    assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")

    # Using the new access token revokes the old refresh token; so does using the new refresh token.
    status, _ = await api.call("GET", "/_matrix/client/v3/account/whoami", token=again["access_token"])
    assert status == 200
    status, err = await api.call("POST", "/_matrix/client/v3/refresh", {"refresh_token": first})
    assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, third = await api.call("POST", "/_matrix/client/v3/refresh", {"refresh_token": again["refresh_token"]})
    assert status == 200
    status, fourth = await api.call("POST", "/_matrix/client/v3/refresh", {"refresh_token": third["refresh_token"]})
    assert status == 200
    status, err = await api.call("POST", "/_matrix/client/v3/refresh", {"refresh_token": again["refresh_token"]})
    assert (status, err["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, who = await api.call("GET", "/_matrix/client/v3/account/whoami", token=fourth["access_token"])
    assert status == 200 and who["user_id"] == "@max:test.local"


async def test_logout_and_logout_all(api) -> None:
    await api.register("ned")
    tokens = []
    for _ in range(3):
        _, body = await api.call("POST", "/_matrix/client/v3/login", password_login("ned"))
        tokens.append(body["access_token"])
    status, _ = await api.call("POST", "/_matrix/client/v3/logout", {}, token=tokens[0])
    assert status == 200
    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=tokens[0]))[0] == 401
    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=tokens[1]))[0] == 200
    status, _ = await api.call("POST", "/_matrix/client/v3/logout/all", token=tokens[1])
    assert status == 200
    for token in tokens:
        assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=token))[0] == 401


async def test_login_gives_the_public_base_url_when_one_is_set(make_api) -> None:
    """As Synapse: `well_known` with public_baseurl; no guessed URL without it."""
    public = await make_api(public_baseurl="https://matrix.example.org")
    await public.register("ines")
    status, body = await public.call("POST", "/_matrix/client/v3/login", password_login("ines"))
    assert status == 200 and body["well_known"] == {"m.homeserver": {"base_url": "https://matrix.example.org/"}}
    plain = await make_api()      # the same data directory, without public_baseurl
    status, body = await plain.call("POST", "/_matrix/client/v3/login", password_login("ines"))
    assert status == 200 and "well_known" not in body


async def test_login_rate_limited_per_address(make_api) -> None:
    api = await make_api(rc_login_per_second=0.01, rc_login_burst=3)
    await api.register("olga")
    for _ in range(3):
        status, _ = await api.call("POST", "/_matrix/client/v3/login", password_login("olga"))
        assert status == 200
    status, body = await api.call("POST", "/_matrix/client/v3/login", password_login("olga"))
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED") and body["retry_after_ms"] > 1000


async def test_failed_passwords_rate_limited_per_account(make_api) -> None:
    api = await make_api(rc_failed_auth_per_second=0.01, rc_failed_auth_burst=2)
    await api.register("pete")
    for _ in range(2):
        status, body = await api.call("POST", "/_matrix/client/v3/login", password_login("pete", "wrong"))
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("POST", "/_matrix/client/v3/login", password_login("pete", "pw"))
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED")
