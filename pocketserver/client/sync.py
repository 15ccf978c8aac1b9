"""Sync endpoint.

Spec: client-server-api, "Syncing".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.errors import InvalidParam
from pocketserver.server import current_server

bp = Blueprint("sync", __name__)


@bp.get("/_matrix/client/v3/sync")
async def sync() -> dict:
    """operationId sync. Spec: client-server-api, "GET /_matrix/client/v3/sync"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    try:
        timeout = int(request.args.get("timeout", "0"))
    except ValueError:
        raise InvalidParam("timeout must be an integer") from None
    full_state = request.args.get("full_state", "false")
    if full_state not in ("true", "false"):
        raise InvalidParam("full_state must be true or false")
    set_presence = request.args.get("set_presence", "online")
    if set_presence not in ("online", "offline", "unavailable"):
        raise InvalidParam("set_presence must be online, offline or unavailable")
    await server.presence.user_syncing(requester.user_id, set_presence, timeout)
    return await server.sync.sync(requester.user_id, requester.device_id, since=request.args.get("since"),
                                  filter_value=request.args.get("filter"), full_state=full_state == "true",
                                  timeout_ms=timeout)
