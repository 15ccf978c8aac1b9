"""Simplified sliding sync endpoint (MSC4186), the sync Element X uses.

Spec: MSC4186 (not yet in the specification, so no operationId: the handler is named after the
endpoint, as Synapse's SlidingSyncRestServlet serves it).
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.errors import InvalidParam
from pocketserver.server import current_server

bp = Blueprint("sliding_sync", __name__)


@bp.post("/_matrix/client/unstable/org.matrix.simplified_msc3575/sync")
async def sliding_sync() -> dict:
    """Spec: MSC4186, "POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    try:
        timeout = int(request.args.get("timeout", "0"))
    except ValueError:
        raise InvalidParam("timeout must be an integer") from None
    set_presence = request.args.get("set_presence", "online")
    if set_presence not in ("online", "offline", "unavailable"):
        raise InvalidParam("set_presence must be online, offline or unavailable")
    body = await json_object_body(empty_ok=True)
    await server.presence.user_syncing(requester.user_id, set_presence, timeout, requester.device_id)
    return await server.sliding_sync.sliding_sync(requester.user_id, requester.device_id,
                                                  pos=request.args.get("pos"), timeout_ms=timeout, body=body)
