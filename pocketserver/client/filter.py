"""Filter upload and download.

Spec: client-server-api, "Filtering".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.errors import Forbidden, NotFound
from pocketserver.server import current_server
from pocketserver.storage import filters
from pocketserver.sync.filters import check_filter

bp = Blueprint("filter", __name__)


@bp.post("/_matrix/client/v3/user/<user_id>/filter")
async def define_filter(user_id: str) -> dict:
    """operationId defineFilter. Spec: "POST /_matrix/client/v3/user/{userId}/filter"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    if requester.user_id != user_id:
        raise Forbidden("Cannot create filters for other users")
    definition = await json_object_body()
    check_filter(definition)
    filter_id = await server.db.write(lambda tx: filters.insert_filter(tx, user_id, definition))
    return {"filter_id": str(filter_id)}


@bp.get("/_matrix/client/v3/user/<user_id>/filter/<filter_id>")
async def get_filter(user_id: str, filter_id: str) -> dict:
    """operationId getFilter. Spec: "GET /_matrix/client/v3/user/{userId}/filter/{filterId}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    if requester.user_id != user_id:
        raise Forbidden("Cannot get filters for other users")
    if not (filter_id.isascii() and filter_id.isdigit()) or len(filter_id) > 18:
        raise NotFound("No such filter")
    found = await filters.get_filter(server.db, user_id, int(filter_id))
    if found is None:
        raise NotFound("No such filter")
    return found
