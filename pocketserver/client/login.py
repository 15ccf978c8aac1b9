"""Login, token refresh and logout.

Spec: client-server-api, "Login", "Refreshing access tokens", "Logout".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("login", __name__)


@bp.get("/_matrix/client/v3/login")
async def get_login_flows() -> dict:
    """operationId getLoginFlows. Spec: client-server-api, "GET /_matrix/client/v3/login"."""
    return {"flows": [{"type": "m.login.password"}]}


@bp.post("/_matrix/client/v3/login")
async def login() -> dict:
    """operationId login. Spec: client-server-api, "POST /_matrix/client/v3/login".

    With `public_baseurl` set, the answer's `well_known` gives it as the homeserver URL (as
    Synapse does): a client that logged in over the LAN's address keeps working away from home.
    Without it the URL would be a guess from the listening address, so none is given.
    """
    server = current_server()
    body = await json_object_body()
    issued = await server.sessions.login(body, request.remote_addr or "")
    answer = issued.body(server.config.server_name)
    if server.config.public_baseurl:
        answer["well_known"] = {"m.homeserver": {"base_url": server.config.client_base_url() + "/"}}
    return answer


@bp.post("/_matrix/client/v3/refresh")
async def refresh() -> dict:
    """operationId refresh. Spec: client-server-api, "POST /_matrix/client/v3/refresh"."""
    body = await json_object_body()
    issued = await current_server().sessions.refresh(body.get("refresh_token"))
    return {"access_token": issued.access_token, "refresh_token": issued.refresh_token,
            "expires_in_ms": issued.expires_in_ms}


@bp.post("/_matrix/client/v3/logout")
async def logout() -> dict:
    """operationId logout. Spec: client-server-api, "POST /_matrix/client/v3/logout"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True, allow_locked=True)
    await server.sessions.logout(requester)
    return {}


@bp.post("/_matrix/client/v3/logout/all")
async def logout_all() -> dict:
    """operationId logout_all. Spec: client-server-api, "POST /_matrix/client/v3/logout/all"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True, allow_locked=True)
    await server.sessions.logout_all(requester)
    return {}
