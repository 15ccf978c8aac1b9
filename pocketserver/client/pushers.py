"""Pushers: list and set.

Spec: client-server-api, "Client behaviour" (push notifications).
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.push.pushers import parse_pusher_request
from pocketserver.server import current_server

bp = Blueprint("pushers", __name__)


@bp.get("/_matrix/client/v3/pushers")
async def get_pushers() -> dict:
    """operationId getPushers. Spec: "GET /_matrix/client/v3/pushers"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return {"pushers": [p.to_json() for p in server.push.pushers.for_user(requester.user_id)]}


@bp.post("/_matrix/client/v3/pushers/set")
async def post_pusher() -> dict:
    """operationId postPusher. Spec: "POST /_matrix/client/v3/pushers/set"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    pusher = parse_pusher_request(await json_object_body())
    await server.push.pushers.set_pusher(requester.user_id, requester.device_id, pusher)
    return {}
