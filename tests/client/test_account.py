"""whoami, password change, deactivation and devices (with their last-seen times), with user-interactive auth.

Spec: client-server-api, "Account registration and management", "Device management",
"User-interactive authentication API".
"""
from __future__ import annotations

from tests.conftest import Api


def login(user: str, password: str = "pw", **extra):
    return {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password, **extra}


def password_auth(user: str, password: str, session: str):
    return {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password, "session": session}


async def test_change_password_uia_and_logout_other_devices(api) -> None:
    me = await api.register("quinn")
    _, other = await api.call("POST", "/_matrix/client/v3/login", login("quinn"))
    token = me["access_token"]

    status, challenge = await api.call("POST", "/_matrix/client/v3/account/password",
                                       {"new_password": "new"}, token=token)
    assert status == 401 and challenge["flows"] == [{"stages": ["m.login.password"]}]
    session = challenge["session"]
    status, body = await api.call("POST", "/_matrix/client/v3/account/password", {
        "new_password": "new", "auth": password_auth("quinn", "wrong", session)}, token=token)
    assert status == 401 and body["errcode"] == "M_FORBIDDEN"
    status, body = await api.call("POST", "/_matrix/client/v3/account/password", {
        "new_password": "new", "auth": password_auth("quinn", "pw", session)}, token=token)
    assert status == 200, body

    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=token))[0] == 200
    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=other["access_token"]))[0] == 401
    assert (await api.call("POST", "/_matrix/client/v3/login", login("quinn", "pw")))[0] == 403
    assert (await api.call("POST", "/_matrix/client/v3/login", login("quinn", "new")))[0] == 200


async def test_uia_cannot_authenticate_as_someone_else(api) -> None:
    me = await api.register("rita")
    await api.register("sam")
    status, challenge = await api.call("POST", "/_matrix/client/v3/account/password",
                                       {"new_password": "x"}, token=me["access_token"])
    status, body = await api.call("POST", "/_matrix/client/v3/account/password", {
        "new_password": "x", "auth": password_auth("sam", "pw", challenge["session"])},
        token=me["access_token"])
    assert status == 401 and body["errcode"] == "M_FORBIDDEN"


async def test_change_password_keeping_devices(api) -> None:
    me = await api.register("tara")
    _, other = await api.call("POST", "/_matrix/client/v3/login", login("tara"))
    status, body = await api.call("POST", "/_matrix/client/v3/account/password", {
        "new_password": "new", "logout_devices": False,
        "auth": {"type": "m.login.password", "user": "tara", "password": "pw"}}, token=me["access_token"])
    assert status == 200, body
    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=other["access_token"]))[0] == 200


async def test_deactivate(api) -> None:
    me = await api.register("uma")
    status, body = await api.call("POST", "/_matrix/client/v3/account/deactivate", {
        "auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "uma"},
                 "password": "pw"}}, token=me["access_token"])
    assert status == 200 and body == {"id_server_unbind_result": "no-support"}
    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=me["access_token"]))[0] == 401
    status, body = await api.call("POST", "/_matrix/client/v3/login", login("uma"))
    assert (status, body["errcode"]) == (403, "M_USER_DEACTIVATED")
    status, body = await api.call("GET", "/_matrix/client/v3/register/available", query={"username": "uma"})
    assert body["errcode"] == "M_USER_IN_USE"     # deactivated IDs are never reused


async def test_devices(api) -> None:
    me = await api.register("vic", initial_device_display_name="first")
    token = me["access_token"]
    _, second = await api.call("POST", "/_matrix/client/v3/login", login("vic", initial_device_display_name="second"))

    status, body = await api.call("GET", "/_matrix/client/v3/devices", token=token)
    assert status == 200
    names = {d["device_id"]: d["display_name"] for d in body["devices"]}
    assert names == {me["device_id"]: "first", second["device_id"]: "second"}
    assert all(d["user_id"] == "@vic:test.local" for d in body["devices"])

    status, body = await api.call("PUT", f"/_matrix/client/v3/devices/{me['device_id']}",
                                  {"display_name": "renamed"}, token=token)
    assert status == 200
    status, body = await api.call("GET", f"/_matrix/client/v3/devices/{me['device_id']}", token=token)
    assert body["display_name"] == "renamed" and body["last_seen_ts"] > 0
    status, body = await api.call("GET", "/_matrix/client/v3/devices/NOPE", token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("PUT", "/_matrix/client/v3/devices/NOPE", {"display_name": "x"}, token=token)
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")

    # Deleting a device needs UIA; then its token stops working.
    path = f"/_matrix/client/v3/devices/{second['device_id']}"
    status, challenge = await api.call("DELETE", path, {}, token=token)
    assert status == 401
    status, body = await api.call("DELETE", path, {"auth": password_auth("vic", "pw", challenge["session"])},
                                  token=token)
    assert status == 200, body
    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=second["access_token"]))[0] == 401

    _, third = await api.call("POST", "/_matrix/client/v3/login", login("vic"))
    status, challenge = await api.call("POST", "/_matrix/client/v3/delete_devices",
                                       {"devices": [third["device_id"], "UNKNOWN"]}, token=token)
    assert status == 401
    status, body = await api.call("POST", "/_matrix/client/v3/delete_devices", {
        "devices": [third["device_id"], "UNKNOWN"], "auth": password_auth("vic", "pw", challenge["session"])},
        token=token)
    assert status == 200, body
    status, body = await api.call("GET", "/_matrix/client/v3/devices", token=token)
    assert [d["device_id"] for d in body["devices"]] == [me["device_id"]]
    status, body = await api.call("POST", "/_matrix/client/v3/delete_devices", {"devices": "all"}, token=token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_devices_are_private(api) -> None:
    a = await api.register("wes")
    b = await api.register("xena")
    status, body = await api.call("GET", f"/_matrix/client/v3/devices/{b['device_id']}", token=a["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api.call("DELETE", f"/_matrix/client/v3/devices/{b['device_id']}", {}, token=a["access_token"])
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_deactivation_leaves_rooms(api) -> None:
    me = await api.register("leaver")
    other = await api.register("stayer")
    _, room = await api.call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, token=other["access_token"])
    await api.call("POST", f"/_matrix/client/v3/rooms/{room['room_id']}/join", {}, token=me["access_token"])
    status, _ = await api.call("POST", "/_matrix/client/v3/account/deactivate", {
        "auth": {"type": "m.login.password", "user": "leaver", "password": "pw"}}, token=me["access_token"])
    assert status == 200
    _, members = await api.call("GET", f"/_matrix/client/v3/rooms/{room['room_id']}/joined_members",
                                token=other["access_token"])
    assert set(members["joined"]) == {"@stayer:test.local"}
    # A deactivated account has no profile any more (Synapse answers 404 too).
    for path in ("", "/displayname"):
        status, body = await api.call("GET", f"/_matrix/client/v3/profile/@leaver:test.local{path}",
                                      token=other["access_token"])
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), path


async def test_last_seen_is_kept_in_memory_and_written_at_stop(app_factory) -> None:
    """Requests refresh a device's last-seen time without a write of their own (every client's
    /sync long-poll would otherwise make an idle server commit all day); /devices shows it at
    once, and a clean stop writes it, so it survives a restart."""
    app = app_factory()
    async with app.test_app() as running:
        api = Api(running.test_client(), app.config["POCKETSERVER"])
        me = await api.register("wren")
        token, device = me["access_token"], me["device_id"]
        _, first = await api.call("GET", f"/_matrix/client/v3/devices/{device}", token=token)
        commits = api.server.db.writer.stats.commits
        for _ in range(5):
            assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=token))[0] == 200
        _, seen = await api.call("GET", f"/_matrix/client/v3/devices/{device}", token=token)
        assert api.server.db.writer.stats.commits == commits          # nothing written for them
        assert seen["last_seen_ts"] >= first["last_seen_ts"] > 0

    app = app_factory()           # the same data directory, started again
    async with app.test_app() as running:
        api = Api(running.test_client(), app.config["POCKETSERVER"])
        row = await api.server.db.fetchone("SELECT last_seen_ts FROM devices WHERE device_id = ?", (device,))
        assert row is not None and row[0] >= seen["last_seen_ts"]


async def test_a_uia_session_for_one_device_does_not_delete_another(api) -> None:
    """The session of DELETE /devices/A does not authorise DELETE /devices/B (Synapse: the
    session is tied to the request's URI)."""
    me = await api.register("uma")
    _, second = await api.call("POST", "/_matrix/client/v3/login", login("uma"))
    _, third = await api.call("POST", "/_matrix/client/v3/login", login("uma"))
    token = me["access_token"]
    status, challenge = await api.call("DELETE", f"/_matrix/client/v3/devices/{second['device_id']}", {}, token=token)
    assert status == 401
    status, body = await api.call("DELETE", f"/_matrix/client/v3/devices/{third['device_id']}",
                                  {"auth": password_auth("uma", "pw", challenge["session"])}, token=token)
    assert status == 401 and "completed" not in body, body
    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=third["access_token"]))[0] == 200
    status, body = await api.call("DELETE", f"/_matrix/client/v3/devices/{second['device_id']}",
                                  {"auth": password_auth("uma", "pw", challenge["session"])}, token=token)
    assert status == 200, body
    assert (await api.call("GET", "/_matrix/client/v3/account/whoami", token=second["access_token"]))[0] == 401


async def test_too_many_wrong_uia_passwords_answer_429(make_api) -> None:
    """Failed passwords in UIA count against the account's allowance like failed logins; over it,
    429 M_LIMIT_EXCEEDED with retry_after_ms (as Synapse), not a 401 challenge."""
    api = await make_api(rc_failed_auth_per_second=0.01, rc_failed_auth_burst=2)
    me = await api.register("vic")
    token = me["access_token"]
    _, challenge = await api.call("POST", "/_matrix/client/v3/account/password", {"new_password": "n"}, token=token)
    for _ in range(2):
        status, body = await api.call("POST", "/_matrix/client/v3/account/password", {
            "new_password": "n", "auth": password_auth("vic", "wrong", challenge["session"])}, token=token)
        assert (status, body["errcode"]) == (401, "M_FORBIDDEN")
    status, body = await api.call("POST", "/_matrix/client/v3/account/password", {
        "new_password": "n", "auth": password_auth("vic", "pw", challenge["session"])}, token=token)
    assert (status, body["errcode"]) == (429, "M_LIMIT_EXCEEDED") and body["retry_after_ms"] > 1000, body


async def test_wrong_passwords_sent_at_once_are_not_all_checked(make_api) -> None:
    """Guesses sent at once through UIA: only the account's allowance of them is checked against
    the password; the rest are refused before (429), the right one among them too. Each attempt
    counts before the hash is checked (counted after, all of them passed the check first)."""
    import asyncio
    api = await make_api(rc_failed_auth_per_second=0.001, rc_failed_auth_burst=3)
    me = await api.register("wes")
    token = me["access_token"]
    _, challenge = await api.call("POST", "/_matrix/client/v3/delete_devices", {"devices": []}, token=token)
    guesses = [f"guess-{n}" for n in range(9)] + ["pw"]
    answers = await asyncio.gather(*(api.call("POST", "/_matrix/client/v3/delete_devices", {
        "devices": [], "auth": password_auth("wes", guess, challenge["session"])}, token=token) for guess in guesses))
    assert sorted(status for status, _ in answers) == [401] * 3 + [429] * 7, answers
    assert answers[-1][0] == 429


async def test_registrations_sent_at_once_are_not_all_hashed(make_api, monkeypatch) -> None:
    """The registration limit is spent before the password hash, so a flood from one address costs
    one hash per allowed registration, not one per request."""
    import asyncio
    api = await make_api(rc_registration_per_second=0.001, rc_registration_burst=1,
                         registration_requires_token=False)
    hashed = []
    real_hash = api.server.hasher.hash

    async def counting(password: str) -> str:
        hashed.append(password)
        return await real_hash(password)

    monkeypatch.setattr(api.server.hasher, "hash", counting)
    answers = await asyncio.gather(*(api.call("POST", "/_matrix/client/v3/register", {
        "username": f"flood{n}", "password": "pw", "auth": {"type": "m.login.dummy"}}) for n in range(10)))
    assert sorted(status for status, _ in answers) == [200] + [429] * 9, answers
    assert len(hashed) == 1
