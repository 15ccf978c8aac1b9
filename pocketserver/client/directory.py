"""Room aliases and the published room directory.

Spec: client-server-api, "Room aliases", "Published room directory".
"""
from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.errors import BadJson, InvalidParam
from pocketserver.server import current_server

bp = Blueprint("directory", __name__)
V3 = "/_matrix/client/v3"


@bp.put(f"{V3}/directory/room/<room_alias>")
async def set_room_alias(room_alias: str) -> dict:
    """operationId setRoomAlias. Spec: "PUT /_matrix/client/v3/directory/room/{roomAlias}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    await server.directory.create_alias(requester.user_id, room_alias, body.get("room_id"))
    return {}


@bp.get(f"{V3}/directory/room/<room_alias>")
async def get_room_id_by_alias(room_alias: str) -> dict:
    """operationId getRoomIdByAlias. Spec: "GET /_matrix/client/v3/directory/room/{roomAlias}"."""
    return await current_server().directory.get_alias(room_alias)


@bp.delete(f"{V3}/directory/room/<room_alias>")
async def delete_room_alias(room_alias: str) -> dict:
    """operationId deleteRoomAlias. Spec: "DELETE /_matrix/client/v3/directory/room/{roomAlias}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    await server.directory.delete_alias(requester.user_id, room_alias)
    return {}


@bp.get(f"{V3}/rooms/<room_id>/aliases")
async def get_local_aliases(room_id: str) -> dict:
    """operationId getLocalAliases. Spec: "GET /_matrix/client/v3/rooms/{roomId}/aliases"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    return {"aliases": await server.directory.local_aliases(requester.user_id, room_id)}


@bp.get(f"{V3}/directory/list/room/<room_id>")
async def get_room_visibility_on_directory(room_id: str) -> dict:
    """operationId getRoomVisibilityOnDirectory. Spec: "GET /_matrix/client/v3/directory/list/room/{roomId}"."""
    return {"visibility": await current_server().directory.get_visibility(room_id)}


@bp.put(f"{V3}/directory/list/room/<room_id>")
async def set_room_visibility_on_directory(room_id: str) -> dict:
    """operationId setRoomVisibilityOnDirectory. Spec: "PUT /_matrix/client/v3/directory/list/room/{roomId}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    body = await json_object_body(empty_ok=True)
    await server.directory.set_visibility(requester.user_id, requester.is_guest, room_id,
                                          body.get("visibility", "public"))
    return {}


def _query_limit() -> int | None:
    raw = request.args.get("limit")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidParam("limit must be an integer") from None


@bp.get(f"{V3}/publicRooms")
async def get_public_rooms() -> dict:
    """operationId getPublicRooms. Spec: "GET /_matrix/client/v3/publicRooms"."""
    server = current_server()
    await server.auth.get_user(request, allow_guest=True)     # optional, but a bad token is refused
    return await server.directory.public_rooms(server=request.args.get("server"), limit=_query_limit(),
                                               since=request.args.get("since"), search_term=None,
                                               room_types=None, third_party_instance_id=None)


def _typed(body: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is int):
        raise BadJson(f"{key} must be {what}")
    return value


@bp.post(f"{V3}/publicRooms")
async def query_public_rooms() -> dict:
    """operationId queryPublicRooms. Spec: "POST /_matrix/client/v3/publicRooms"."""
    server = current_server()
    await server.auth.require_user(request, allow_guest=True)
    body = await json_object_body(empty_ok=True)
    limit = _typed(body, "limit", int, "an integer")
    since = _typed(body, "since", str, "a string")
    flt = _typed(body, "filter", dict, "an object") or {}
    search_term = _typed(flt, "generic_search_term", str, "a string")
    room_types = flt.get("room_types")
    if room_types is not None and (not isinstance(room_types, list)
                                   or not all(t is None or isinstance(t, str) for t in room_types)):
        raise BadJson("filter.room_types must be a list of strings or nulls")
    include_all = _typed(body, "include_all_networks", bool, "a boolean") or False
    instance = _typed(body, "third_party_instance_id", str, "a string")
    if include_all and instance is not None:
        raise InvalidParam("Can't use include_all_networks with an explicit network")
    return await server.directory.public_rooms(server=request.args.get("server"), limit=limit, since=since,
                                               search_term=search_term, room_types=room_types,
                                               third_party_instance_id=instance)
