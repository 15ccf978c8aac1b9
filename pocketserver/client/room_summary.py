"""Room previews (MSC3266 room summary) and the space hierarchy.

Spec: client-server-api, "GET /_matrix/client/v1/room_summary/{roomIdOrAlias}", "Spaces".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.errors import InvalidParam
from pocketserver.server import current_server

bp = Blueprint("room_summary", __name__)
UNSTABLE = "/_matrix/client/unstable/im.nheko.summary"


async def _summary(room_id_or_alias: str) -> dict:
    server = current_server()
    requester = await server.auth.get_user(request, allow_guest=True)    # optional: public rooms need none
    return await server.room_summaries.summary(requester.user_id if requester else None, room_id_or_alias)


@bp.get("/_matrix/client/v1/room_summary/<room_id_or_alias>")
async def get_room_summary(room_id_or_alias: str) -> dict:
    """operationId getRoomSummary. Spec: "GET /_matrix/client/v1/room_summary/{roomIdOrAlias}"."""
    return await _summary(room_id_or_alias)


@bp.get(f"{UNSTABLE}/summary/<room_id_or_alias>")
@bp.get(f"{UNSTABLE}/rooms/<room_id_or_alias>/summary")
async def get_room_summary_unstable(room_id_or_alias: str) -> dict:
    """operationId getRoomSummary (MSC3266 unstable paths). Spec: MSC3266, "Client-Server API"."""
    body = await _summary(room_id_or_alias)
    # Clients written against the MSC read the prefixed names.
    body["im.nheko.summary.room_version"] = body["room_version"]
    body["im.nheko.summary.version"] = body["room_version"]
    if "encryption" in body:
        body["im.nheko.summary.encryption"] = body["encryption"]
    return body


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidParam(f"{name} must be an integer") from None


def _bool_arg(name: str) -> bool:
    raw = request.args.get(name, "false")
    if raw not in ("true", "false"):
        raise InvalidParam(f"Boolean query parameter {name!r} must be one of ['true', 'false']")
    return raw == "true"


@bp.get("/_matrix/client/v1/rooms/<room_id>/hierarchy")
async def get_space_hierarchy(room_id: str) -> dict:
    """operationId getSpaceHierarchy. Spec: "GET /_matrix/client/v1/rooms/{roomId}/hierarchy"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    return await server.room_summaries.hierarchy(
        requester.user_id, room_id, suggested_only=_bool_arg("suggested_only"), max_depth=_int_arg("max_depth"),
        limit=_int_arg("limit"), from_token=request.args.get("from"))
