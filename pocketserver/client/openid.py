"""OpenID: a token proving the user's identity to a third party, and the look-up that third party
makes with it.

The look-up belongs to the server-server API but needs none of federation: Synapse serves it on
its client listener too (its `openid` listener resource) for servers that do not federate.
Spec: client-server-api, "OpenID"; server-server-api, "OpenID".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.accounts.auth import now_ms
from pocketserver.accounts.openid import TOKEN_LIFETIME_MS
from pocketserver.client.request_body import json_object_body
from pocketserver.errors import Forbidden, MissingToken, UnknownToken
from pocketserver.server import current_server
from pocketserver.storage import accounts as account_store

bp = Blueprint("openid", __name__)


@bp.post("/_matrix/client/v3/user/<user_id>/openid/request_token")
async def request_openid_token(user_id: str) -> dict:
    """operationId requestOpenIdToken. Spec: "POST /_matrix/client/v3/user/{userId}/openid/request_token"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    if requester.user_id != user_id:
        raise Forbidden("Cannot request tokens for other users")
    await json_object_body()        # an empty object, reserved for future use; must still be JSON
    return {"access_token": server.openid_tokens.issue(user_id, now_ms()), "token_type": "Bearer",
            "matrix_server_name": server.config.server_name, "expires_in": TOKEN_LIFETIME_MS // 1000}


@bp.get("/_matrix/federation/v1/openid/userinfo")
async def openid_userinfo() -> dict:
    """operationId exchangeOpenIdToken. Spec: server-server-api, "GET /_matrix/federation/v1/openid/userinfo"."""
    token = request.args.get("access_token")
    if not token:
        raise MissingToken("Access token required")
    server = current_server()
    user_id = server.openid_tokens.owner(token, now_ms())
    user = await account_store.get_user(server.db, user_id) if user_id is not None else None
    if user is None or user.deactivated or user.locked:     # a locked account vouches for nothing
        raise UnknownToken("Access token unknown or expired")
    return {"sub": user_id}
