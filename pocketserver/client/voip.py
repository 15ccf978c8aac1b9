"""TURN server credentials for calls.

With a shared secret the credentials are time-limited, in the TURN REST API form that coturn's
`use-auth-secret` checks: the username is "<expiry unix time>:<user ID>" and the password the
base64 HMAC-SHA1 of the username under the secret. Spec: client-server-api, "Voice over IP",
"GET /_matrix/client/v3/voip/turnServer".
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

from quart import Blueprint, request

from pocketserver.config import Config
from pocketserver.errors import Forbidden
from pocketserver.server import current_server

bp = Blueprint("voip", __name__)


def turn_credentials(config: Config, user_id: str, now_s: float) -> dict:
    """The response body; empty when no TURN server is configured, as Synapse answers then."""
    uris = config.turn_uri_list
    ttl = config.turn_user_lifetime_ms // 1000
    if not uris:
        return {}
    if config.turn_shared_secret:
        username = f"{int(now_s) + ttl}:{user_id}"
        digest = hmac.new(config.turn_shared_secret.encode(), username.encode(), hashlib.sha1).digest()
        return {"username": username, "password": base64.b64encode(digest).decode(), "uris": uris, "ttl": ttl}
    return {"username": config.turn_username, "password": config.turn_password, "uris": uris, "ttl": ttl}


@bp.get("/_matrix/client/v3/voip/turnServer")
async def get_turn_server() -> dict:
    """operationId getTurnServer. Spec: "GET /_matrix/client/v3/voip/turnServer"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    if requester.is_guest and not server.config.turn_allow_guests:
        raise Forbidden("Guest access to TURN is disabled on this server")
    return turn_credentials(server.config, requester.user_id, time.time())
