"""The list of events a user was notified about.

Spec: client-server-api, "Listing Notifications".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.errors import InvalidParam
from pocketserver.server import current_server

bp = Blueprint("notifications", __name__)


@bp.get("/_matrix/client/v3/notifications")
async def get_notifications() -> dict:
    """operationId getNotifications. Spec: "GET /_matrix/client/v3/notifications"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    raw_limit = request.args.get("limit")
    if raw_limit is not None and not (raw_limit.isdigit() and len(raw_limit) <= 9):
        raise InvalidParam("limit must be a non-negative integer")
    return await server.push.get_notifications(requester.user_id, from_token=request.args.get("from"),
                                               limit=int(raw_limit) if raw_limit is not None else None,
                                               only=request.args.get("only"))
