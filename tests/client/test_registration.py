"""Registration: UIA flows, tokens, open registration, guests, availability, shared secret.

Spec: client-server-api, "Account registration and management", "Token-authenticated registration",
"Guest access".
"""
from __future__ import annotations

import hashlib
import hmac


async def test_flows_with_token_required(api) -> None:
    status, body = await api.call("POST", "/_matrix/client/v3/register", {})
    assert status == 401
    assert body["flows"] == [{"stages": ["m.login.registration_token", "m.login.dummy"]}]
    assert isinstance(body["session"], str) and body["params"] == {}


async def test_token_flow_registers_and_counts_use(api) -> None:
    body = await api.register("erin", "pw", initial_device_display_name="tablet")
    assert body["user_id"] == "@erin:test.local" and body["access_token"].startswith("psat_")
    status, who = await api.call("GET", "/_matrix/client/v3/account/whoami", token=body["access_token"])
    assert status == 200 and who == {"user_id": "@erin:test.local", "device_id": body["device_id"],
                                     "is_guest": False}


async def test_dummy_alone_is_not_enough_when_token_required(api) -> None:
    status, body = await api.call("POST", "/_matrix/client/v3/register",
                                  {"username": "x", "password": "p", "auth": {"type": "m.login.dummy"}})
    assert status == 401 and body["completed"] == ["m.login.dummy"]


async def test_bad_token_and_unknown_session(api) -> None:
    status, body = await api.call("POST", "/_matrix/client/v3/register", {
        "username": "x", "password": "p", "auth": {"type": "m.login.registration_token", "token": "nope"}})
    assert status == 401 and body["errcode"] == "M_UNAUTHORIZED" and "flows" in body
    status, body = await api.call("POST", "/_matrix/client/v3/register", {
        "username": "x", "password": "p", "auth": {"type": "m.login.dummy", "session": "made-up"}})
    assert status == 401 and "errcode" in body


async def test_username_checks(api) -> None:
    await api.register("frank")
    status, body = await api.call("GET", "/_matrix/client/v3/register/available", query={"username": "frank"})
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")
    status, body = await api.call("GET", "/_matrix/client/v3/register/available", query={"username": "bad name!"})
    assert (status, body["errcode"]) == (400, "M_INVALID_USERNAME")
    status, body = await api.call("GET", "/_matrix/client/v3/register/available", query={"username": "free"})
    assert (status, body) == (200, {"available": True})
    status, body = await api.call("POST", "/_matrix/client/v3/register", {"username": "frank", "password": "p"})
    assert (status, body["errcode"]) == (400, "M_USER_IN_USE")


async def test_inhibit_login_and_missing_password(make_api) -> None:
    api = await make_api(registration_requires_token=False)
    status, body = await api.call("POST", "/_matrix/client/v3/register",
                                  {"username": "gina", "auth": {"type": "m.login.dummy"}})
    assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
    status, body = await api.call("POST", "/_matrix/client/v3/register", {
        "username": "gina", "password": "p", "inhibit_login": True, "auth": {"type": "m.login.dummy"}})
    assert status == 200 and body["user_id"] == "@gina:test.local" and "access_token" not in body


async def test_open_registration_with_refresh_token(make_api) -> None:
    api = await make_api(registration_requires_token=False)
    status, body = await api.call("POST", "/_matrix/client/v3/register", {})
    assert body["flows"] == [{"stages": ["m.login.dummy"]}]
    status, body = await api.call("POST", "/_matrix/client/v3/register", {
        "username": "hank", "password": "p", "device_id": "HANKDEV", "refresh_token": True,
        "auth": {"type": "m.login.dummy"}})
    assert status == 200 and body["device_id"] == "HANKDEV"
    assert body["refresh_token"].startswith("psrt_") and body["expires_in_ms"] == 300_000


async def test_registration_disabled(make_api) -> None:
    api = await make_api(enable_registration=False)
    status, body = await api.call("POST", "/_matrix/client/v3/register", {})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api.call("GET", "/_matrix/client/v1/register/m.login.registration_token/validity",
                                  query={"token": "abc"})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_guest_registration(make_api) -> None:
    api = await make_api()
    status, body = await api.call("POST", "/_matrix/client/v3/register", {}, query={"kind": "guest"})
    assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")

    guests = await make_api(allow_guest_access=True)
    status, body = await guests.call("POST", "/_matrix/client/v3/register", {}, query={"kind": "guest"})
    assert status == 200
    token = body["access_token"]
    status, who = await guests.call("GET", "/_matrix/client/v3/account/whoami", token=token)
    assert who["is_guest"] is True
    # Guests may not change passwords or deactivate (spec: "Guest access", allowed endpoints).
    status, body = await guests.call("POST", "/_matrix/client/v3/account/password", {"new_password": "x"}, token=token)
    assert (status, body["errcode"]) == (403, "M_GUEST_ACCESS_FORBIDDEN")


async def test_token_validity(api) -> None:
    token = await api.server.registration.create_token("family-2026", 2, None)
    status, body = await api.call("GET", "/_matrix/client/v1/register/m.login.registration_token/validity",
                                  query={"token": token})
    assert (status, body) == (200, {"valid": True})
    status, body = await api.call("GET", "/_matrix/client/v1/register/m.login.registration_token/validity",
                                  query={"token": "unknown"})
    assert body == {"valid": False}


async def test_shared_secret_mac_is_checked(api) -> None:
    status, body = await api.call("GET", "/_synapse/admin/v1/register")
    nonce = body["nonce"]
    status, body = await api.call("POST", "/_synapse/admin/v1/register", {
        "nonce": nonce, "username": "ivan", "password": "p", "admin": False, "mac": "00" * 20})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # The nonce was spent by the failed attempt.
    mac = hmac.new(b"test-shared-secret", b"\x00".join([nonce.encode(), b"ivan", b"p", b"notadmin"]),
                   hashlib.sha1).hexdigest()
    status, body = await api.call("POST", "/_synapse/admin/v1/register", {
        "nonce": nonce, "username": "ivan", "password": "p", "admin": False, "mac": mac})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_shared_secret_disabled_without_secret(make_api) -> None:
    api = await make_api(registration_shared_secret="")
    status, body = await api.call("GET", "/_synapse/admin/v1/register")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


async def test_registration_rate_limit(make_api) -> None:
    api = await make_api(registration_requires_token=False, rc_registration_per_second=0.01,
                         rc_registration_burst=2)
    for name in ("r1", "r2"):
        status, _ = await api.call("POST", "/_matrix/client/v3/register", {
            "username": name, "password": "p", "auth": {"type": "m.login.dummy"}})
        assert status == 200
    status, body = await api.call("POST", "/_matrix/client/v3/register", {
        "username": "r3", "password": "p", "auth": {"type": "m.login.dummy"}})
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED") and body["retry_after_ms"] > 0


async def test_a_flood_of_nonces_does_not_lock_out_shared_secret_registration(api, monkeypatch) -> None:
    """At the cap, the oldest nonce goes: asking for nonces again and again (no auth needed) does
    not leave the admin refused; a nonce taken just before its use still works."""
    from pocketserver.accounts import registration
    monkeypatch.setattr(registration, "MAX_NONCES", 5)
    for _ in range(20):
        status, _ = await api.call("GET", "/_synapse/admin/v1/register")
        assert status == 200
    status, body = await api.call("GET", "/_synapse/admin/v1/register")
    assert status == 200
    nonce = body["nonce"]
    mac = hmac.new(b"test-shared-secret", b"\x00".join([nonce.encode(), b"judy", b"p", b"notadmin"]),
                   hashlib.sha1).hexdigest()
    status, body = await api.call("POST", "/_synapse/admin/v1/register", {
        "nonce": nonce, "username": "judy", "password": "p", "admin": False, "mac": mac})
    assert status == 200 and body["user_id"] == "@judy:test.local", body
