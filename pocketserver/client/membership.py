"""Joining, leaving, inviting, kicking, banning, knocking and forgetting.

Spec: client-server-api, "Room membership".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("membership", __name__)
ROOM = "/_matrix/client/v3/rooms/<room_id>"


async def _join(room_id_or_alias: str) -> dict:
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    requester.refuse_if_suspended("Joining rooms")
    body = await json_object_body(empty_ok=True)
    room_id = await server.membership.resolve_room(room_id_or_alias)
    await server.membership.join(requester.user_id, room_id, body.get("reason"), guest=requester.is_guest)
    return {"room_id": room_id}


@bp.post(f"{ROOM}/join")
async def join_room_by_id(room_id: str) -> dict:
    """operationId joinRoomById. Spec: "POST /_matrix/client/v3/rooms/{roomId}/join"."""
    return await _join(room_id)


@bp.post("/_matrix/client/v3/join/<room_id_or_alias>")
async def join_room(room_id_or_alias: str) -> dict:
    """operationId joinRoom. Spec: "POST /_matrix/client/v3/join/{roomIdOrAlias}"."""
    return await _join(room_id_or_alias)


@bp.post("/_matrix/client/v3/knock/<room_id_or_alias>")
async def knock_room(room_id_or_alias: str) -> dict:
    """operationId knockRoom. Spec: "POST /_matrix/client/v3/knock/{roomIdOrAlias}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    requester.refuse_if_suspended("Knocking on rooms")
    body = await json_object_body(empty_ok=True)
    room_id = await server.membership.resolve_room(room_id_or_alias)
    await server.membership.knock(requester.user_id, room_id, body.get("reason"))
    return {"room_id": room_id}


@bp.post(f"{ROOM}/leave")
async def leave_room(room_id: str) -> dict:
    """operationId leaveRoom. Spec: "POST /_matrix/client/v3/rooms/{roomId}/leave"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    body = await json_object_body(empty_ok=True)
    await server.membership.resolve_room(room_id)
    await server.membership.leave(requester.user_id, room_id, body.get("reason"))
    return {}


@bp.post(f"{ROOM}/forget")
async def forget_room(room_id: str) -> dict:
    """operationId forgetRoom. Spec: "POST /_matrix/client/v3/rooms/{roomId}/forget"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    await server.membership.forget(requester.user_id, room_id)
    return {}


def _action(name: str):
    doing = {"invite": "Inviting", "kick": "Kicking", "ban": "Banning", "unban": "Unbanning"}[name] + " users"

    async def handler(room_id: str) -> dict:
        server = current_server()
        requester = await server.auth.require_user(request)
        requester.refuse_if_suspended(doing)
        body = await json_object_body()
        await server.membership.resolve_room(room_id)
        await getattr(server.membership, name)(requester.user_id, room_id, body.get("user_id"), body.get("reason"))
        return {}
    handler.__name__ = {"invite": "invite_user", "kick": "kick", "ban": "ban", "unban": "unban"}[name]
    handler.__doc__ = f'operationId {handler.__name__}. Spec: "POST /_matrix/client/v3/rooms/{{roomId}}/{name}".'
    return handler


for _name in ("invite", "kick", "ban", "unban"):
    bp.add_url_rule(f"{ROOM}/{_name}", view_func=_action(_name), methods=["POST"])
