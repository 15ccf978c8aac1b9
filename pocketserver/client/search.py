"""Server-side search.

Spec: client-server-api, "Server Side Search".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("search", __name__)


@bp.post("/_matrix/client/v3/search")
async def search() -> dict:
    """operationId search. Spec: client-server-api, "POST /_matrix/client/v3/search"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    return await server.search.search(requester.user_id, requester.device_id, body, request.args.get("next_batch"))
