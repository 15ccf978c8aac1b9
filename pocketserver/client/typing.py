"""Typing notifications.

Spec: client-server-api, "Typing Notifications".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.ephemeral.typing import DEFAULT_TIMEOUT_MS
from pocketserver.errors import BadJson, MissingParam
from pocketserver.server import current_server

bp = Blueprint("typing", __name__)


@bp.put("/_matrix/client/v3/rooms/<room_id>/typing/<user_id>")
async def set_typing(room_id: str, user_id: str) -> dict:
    """operationId setTyping. Spec: "PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    body = await json_object_body()
    typing, timeout = body.get("typing"), body.get("timeout", DEFAULT_TIMEOUT_MS)
    if typing is None:
        raise MissingParam("Missing typing")
    if not isinstance(typing, bool):
        raise BadJson("typing must be a boolean")
    if typing and (not isinstance(timeout, int) or isinstance(timeout, bool)):
        raise BadJson("timeout must be an integer")
    await server.typing.set_typing(requester.user_id, user_id, room_id, typing, timeout if typing else 0)
    return {}
