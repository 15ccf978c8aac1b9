"""whoami, password change, deactivation, the (empty) third-party identifier list, and whois.

Spec: client-server-api, "Account registration and management", "Current account information",
"Adding Account Administrative Contact Information", "Server Administration".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("account", __name__)


@bp.get("/_matrix/client/v3/account/whoami")
async def get_token_owner() -> dict:
    """operationId getTokenOwner. Spec: client-server-api, "GET /_matrix/client/v3/account/whoami"."""
    requester = await current_server().auth.require_user(request, allow_guest=True)
    return {"user_id": requester.user_id, "device_id": requester.device_id,
            "is_guest": requester.is_guest}


@bp.post("/_matrix/client/v3/account/password")
async def change_password() -> dict:
    """operationId changePassword. Spec: client-server-api, "POST /_matrix/client/v3/account/password"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    await server.account.change_password(requester, await json_object_body())
    return {}


@bp.post("/_matrix/client/v3/account/deactivate")
async def deactivate_account() -> dict:
    """operationId deactivateAccount. Spec: "POST /_matrix/client/v3/account/deactivate"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    await server.account.deactivate(requester, await json_object_body(empty_ok=True))
    return {"id_server_unbind_result": "no-support"}


@bp.get("/_matrix/client/v3/account/3pid")
async def get_account_3pids() -> dict:
    """operationId getAccount3PIDs. Spec: "GET /_matrix/client/v3/account/3pid".

    This server keeps no third-party identifiers (no email or phone verification; capabilities say
    `m.3pid_changes` is off), so every account has none; adding one answers M_UNRECOGNIZED.
    """
    await current_server().auth.require_user(request)
    return {"threepids": []}


@bp.get("/_matrix/client/v3/admin/whois/<user_id>")
async def get_who_is(user_id: str) -> dict:
    """operationId getWhoIs. Spec: "GET /_matrix/client/v3/admin/whois/{userId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.account.whois(requester, user_id)
