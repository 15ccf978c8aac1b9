"""Jumping to a point in a room's history by timestamp.

Spec: client-server-api, "GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.errors import InvalidParam, MissingParam
from pocketserver.roomserver import relations
from pocketserver.server import current_server

bp = Blueprint("timestamp", __name__)


@bp.get("/_matrix/client/v1/rooms/<room_id>/timestamp_to_event")
async def get_event_by_timestamp(room_id: str) -> dict:
    """operationId getEventByTimestamp. Spec: "GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    raw_ts, direction = request.args.get("ts"), request.args.get("dir")
    if raw_ts is None:
        raise MissingParam("Missing ts query parameter")
    if direction is None:
        raise MissingParam("Missing dir query parameter")
    try:
        origin_server_ts = int(raw_ts)
    except ValueError:
        raise InvalidParam("ts must be an integer") from None
    if not 0 <= origin_server_ts < 2**63:
        raise InvalidParam("ts is out of range")
    if direction not in ("f", "b"):
        raise InvalidParam("dir must be 'f' or 'b'")
    event = await relations.get_event_by_timestamp(server.reader, requester.user_id, room_id, origin_server_ts,
                                                   direction)
    return {"event_id": event.event_id, "origin_server_ts": event.json.get("origin_server_ts")}
