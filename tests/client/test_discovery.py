"""Discovery, capabilities and metrics.

Spec: client-server-api, "Server Discovery", "Capabilities negotiation".
"""
from __future__ import annotations


async def test_versions_and_wellknown(api) -> None:
    status, body = await api.call("GET", "/_matrix/client/versions")
    assert status == 200 and isinstance(body["versions"], list) and isinstance(body["unstable_features"], dict)
    # The newest whole version (v1.17 changes the default push rules, not built yet).
    assert body["versions"][0] == "v1.1" and body["versions"][-1] == "v1.16"
    status, body = await api.call("GET", "/_matrix/client/v1/auth_metadata")    # no OAuth 2.0 API (v1.15)
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
    status, body = await api.call("GET", "/.well-known/matrix/client")
    assert status == 200 and body["m.homeserver"]["base_url"].startswith("http")
    status, body = await api.call("GET", "/.well-known/matrix/server")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_server_wellknown_when_enabled(make_api) -> None:
    api = await make_api(serve_server_wellknown=True, public_baseurl="https://matrix.example.org/")
    assert (await api.call("GET", "/.well-known/matrix/server"))[1] == {"m.server": "test.local:443"}
    assert (await api.call("GET", "/.well-known/matrix/client"))[1] == {
        "m.homeserver": {"base_url": "https://matrix.example.org/"}}


async def test_support_wellknown_from_admin_contact(make_api) -> None:
    """Spec: client-server-api, "GET /.well-known/matrix/support" (404 when there is nothing to say)."""
    status, body = await (await make_api()).call("GET", "/.well-known/matrix/support")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    api = await make_api(admin_contact="mailto:admin@example.org")
    assert await api.call("GET", "/.well-known/matrix/support") == (
        200, {"contacts": [{"role": "m.role.admin", "email_address": "admin@example.org"}]})
    api = await make_api(admin_contact="https://help.example.org/matrix")
    assert await api.call("GET", "/.well-known/matrix/support") == (200, {"support_page": "https://help.example.org/matrix"})


async def test_capabilities_need_auth(api) -> None:
    status, body = await api.call("GET", "/_matrix/client/v3/capabilities")
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    me = await api.register("kit")
    status, body = await api.call("GET", "/_matrix/client/v3/capabilities", token=me["access_token"])
    assert status == 200 and body["capabilities"]["m.change_password"] == {"enabled": True}
    versions = body["capabilities"]["m.room_versions"]
    assert versions["default"] == "12" and set(versions["available"]) == {str(v) for v in range(1, 13)}


async def test_metrics_counts_commits(api) -> None:
    await api.register("lou")
    resp = await api.client.get("/_matrix/client/versions")   # any request
    resp = await api.client.get("/_pocketserver/metrics", scope_base={"client": ("127.0.0.1", 5555)})
    text = (await resp.get_data()).decode()
    assert resp.status_code == 200
    commits = int(next(l for l in text.splitlines() if l.startswith("pocketserver_writer_commits_total ")).split()[1])
    assert commits >= 1


async def test_metrics_off_by_default(make_api) -> None:
    api = await make_api(enable_metrics=False)
    status, body = await api.call("GET", "/_pocketserver/metrics")
    assert (status, body["errcode"]) == (404, "M_UNRECOGNIZED")
