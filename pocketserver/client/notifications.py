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
    limit = None
    if raw_limit is not None:     # a huge limit is capped by get_notifications, as on /messages
        if not (raw_limit.isascii() and raw_limit.isdigit()):
            raise InvalidParam("limit must be a non-negative integer")
        try:
            limit = int(raw_limit)
        except ValueError:     # more digits than int() takes
            raise InvalidParam("limit must be a non-negative integer") from None
    return await server.push.get_notifications(requester.user_id, from_token=request.args.get("from"),
                                               limit=limit,
                                               only=request.args.get("only"))
