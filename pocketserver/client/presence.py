"""Presence.

Spec: client-server-api, "Presence".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("presence", __name__)


@bp.put("/_matrix/client/v3/presence/<user_id>/status")
async def set_presence(user_id: str) -> dict:
    """operationId setPresence. Spec: "PUT /_matrix/client/v3/presence/{userId}/status"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    body = await json_object_body()
    await server.presence.set_presence(requester.user_id, user_id, body)
    return {}


@bp.get("/_matrix/client/v3/presence/<user_id>/status")
async def get_presence(user_id: str) -> dict:
    """operationId getPresence. Spec: "GET /_matrix/client/v3/presence/{userId}/status"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    return await server.presence.get_presence(requester.user_id, user_id)
