"""Upgrading a room to a new room version.

Spec: client-server-api, "Room Upgrades".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.errors import MissingParam
from pocketserver.server import current_server

bp = Blueprint("room_upgrade", __name__)


@bp.post("/_matrix/client/v3/rooms/<room_id>/upgrade")
async def upgrade_room(room_id: str) -> dict:
    """operationId upgradeRoom. Spec: "POST /_matrix/client/v3/rooms/{roomId}/upgrade"."""
    from pocketserver.roomserver.upgrade import parse_additional_creators, parse_new_version
    server = current_server()
    requester = await server.auth.require_user(request)
    requester.refuse_if_suspended("Upgrading rooms")
    body = await json_object_body()
    if "new_version" not in body:
        raise MissingParam('Missing params: ["new_version"]')
    version = parse_new_version(body["new_version"])
    creators = parse_additional_creators(body.get("additional_creators"), requester.user_id)
    profile = await server.profiles.get_profile(requester.user_id)
    replacement = await server.upgrades.upgrade(
        server.roomserver, requester.user_id, room_id, version, creators,
        {k: v for k, v in profile.items() if k in ("displayname", "avatar_url") and v})
    return {"replacement_room": replacement}
