"""User directory search.

Spec: client-server-api, "User Directory".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.accounts import user_directory
from pocketserver.client.request_body import json_object_body
from pocketserver.errors import BadJson, InvalidParam, MissingParam
from pocketserver.server import current_server
from pocketserver.storage.user_directory import searchable_users

bp = Blueprint("user_directory", __name__)


@bp.post("/_matrix/client/v3/user_directory/search")
async def search_user_directory() -> dict:
    """operationId searchUserDirectory. Spec: "POST /_matrix/client/v3/user_directory/search".

    Finds the users who share a room with the caller or are in a public or world-readable room,
    as the spec's minimum and Synapse's default; `user_directory_search_all_users` widens it to
    every local user. Guests may not search (as Synapse).
    """
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    if "search_term" not in body:
        raise MissingParam("Missing search_term")
    term, limit = body["search_term"], body.get("limit", user_directory.DEFAULT_LIMIT)
    if not isinstance(term, str):
        raise BadJson("search_term must be a string")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidParam("limit must be a non-negative integer")
    users = await searchable_users(server.db, requester.user_id, server.config.user_directory_search_all_users)
    return user_directory.search(users, term, min(limit, user_directory.MAX_LIMIT))
