"""Third-party lookups on a server without bridges, the empty third-party identifier list, whois.

Spec: client-server-api, "Third-party Networks", "GET /_matrix/client/v3/account/3pid",
"GET /_matrix/client/v3/admin/whois/{userId}".
"""
from __future__ import annotations

from urllib.parse import quote

from tests.js_client import JsClient

V3 = "/_matrix/client/v3"


async def test_third_party_lookups_know_no_protocol(api) -> None:
    token = (await api.tokens("alice"))[0]
    assert await api.call("GET", f"{V3}/thirdparty/protocols", token=token) == (200, {})
    for path in ("protocol/irc", "location/irc", "user/irc"):
        status, body = await api.call("GET", f"{V3}/thirdparty/{path}", token=token)
        assert status == 404 and body["errcode"] == "M_NOT_FOUND", (path, body)
    assert await api.call("GET", f"{V3}/thirdparty/location", query={"alias": "#a:test.local"}, token=token) == (200, [])
    assert await api.call("GET", f"{V3}/thirdparty/user", query={"userid": "@a:test.local"}, token=token) == (200, [])
    for path in ("location", "user"):
        status, body = await api.call("GET", f"{V3}/thirdparty/{path}", token=token)
        assert status == 400 and body["errcode"] == "M_MISSING_PARAM", (path, body)
    status, body = await api.call("GET", f"{V3}/thirdparty/protocols")
    assert status == 401, body


async def test_no_third_party_identifiers(api) -> None:
    token = (await api.tokens("alice"))[0]
    assert await api.call("GET", f"{V3}/account/3pid", token=token) == (200, {"threepids": []})
    status, body = await api.call("GET", f"{V3}/capabilities", token=token)
    assert body["capabilities"]["m.3pid_changes"] == {"enabled": False}
    # Adding one is not something this server does.
    status, body = await api.call("POST", f"{V3}/account/3pid/add", {}, token=token)
    assert status in (404, 405) and body["errcode"] == "M_UNRECOGNIZED", body


async def test_whois_for_oneself_and_for_admins(api) -> None:
    alice = await api.register("alice", device_id="PHONE")
    bob = await api.register("bob")
    status, body = await api.call("GET", f"{V3}/admin/whois/{quote(alice['user_id'])}", token=alice["access_token"])
    assert status == 200, body
    assert body["user_id"] == alice["user_id"] and list(body["devices"]) == ["PHONE"]
    (session,) = body["devices"]["PHONE"]["sessions"]
    (connection,) = session["connections"]             # the device was just used, by this request
    assert isinstance(connection["ip"], str) and isinstance(connection["last_seen"], int), connection
    # Another user's is for admins only.
    status, body = await api.call("GET", f"{V3}/admin/whois/{quote(alice['user_id'])}", token=bob["access_token"])
    assert status == 403 and body["errcode"] == "M_FORBIDDEN", body
    await api.server.db.write(lambda tx: tx.execute("UPDATE users SET admin = 1 WHERE user_id = ?", (bob["user_id"],)))
    status, body = await api.call("GET", f"{V3}/admin/whois/{quote(alice['user_id'])}", token=bob["access_token"])
    assert status == 200 and list(body["devices"]) == ["PHONE"], body
    status, body = await api.call("GET", f"{V3}/admin/whois/{quote('@nobody:test.local')}", token=bob["access_token"])
    assert status == 404 and body["errcode"] == "M_NOT_FOUND", body


async def test_js_sdk_reads_protocols_and_3pids(homeserver, http) -> None:
    await homeserver.register_shared_secret(http, "js-3p", "js-3p-pw")
    js = await JsClient.start()
    try:
        await js.call("login", baseUrl=homeserver.base_url, user="js-3p", password="js-3p-pw")
        assert (await js.call("getThirdpartyProtocols"))["body"] == {}
        assert (await js.call("getThreePids"))["body"] == {"threepids": []}
    finally:
        await js.close()
