"""The rooms the caller shares with another user.

Spec: client-server-api, "Mutual Rooms" (added in v1.19), and MSC2666's unstable path, which
matrix-js-sdk (Element's user panel) calls when /versions lists
`uk.half-shot.msc2666.query_mutual_rooms`, answered as Synapse answers it.
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.errors import InvalidParam, MissingParam
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.server import current_server
from pocketserver.storage import rooms as room_store

bp = Blueprint("mutual_rooms", __name__)


class SelfQuery(InvalidParam):
    """MSC2666's unstable path refuses the caller's own ID with 422, as Synapse does."""

    status = 422


async def _mutual_rooms(token_arg: str, self_error: type[InvalidParam]) -> list[str]:
    """Room IDs both the caller and `user_id` are joined to. Every answer is whole: no batch
    token is ever handed out, so any token sent back is one this server did not make."""
    server = current_server()
    requester = await server.auth.require_user(request)
    values = request.args.getlist("user_id")
    if not values:
        raise MissingParam("Missing user_id query parameter")
    if len(values) > 1:
        raise InvalidParam("Duplicate user_id query parameter")
    try:
        other = str(UserID.parse(values[0]))
    except InvalidIdentifier:
        raise InvalidParam("The user ID provided was invalid") from None
    if token_arg in request.args:
        raise InvalidParam(f"Unknown {token_arg}")
    if other == requester.user_id:
        raise self_error("You cannot request a list of shared rooms with yourself")
    return await room_store.get_mutual_rooms(server.db, requester.user_id, other)


@bp.get("/_matrix/client/v1/mutual_rooms")
async def get_mutual_rooms() -> dict:
    """operationId getMutualRooms. Spec: "GET /_matrix/client/v1/mutual_rooms"."""
    joined = await _mutual_rooms("from", InvalidParam)
    return {"joined": joined, "count": len(joined)}


@bp.get("/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms")
async def get_mutual_rooms_unstable() -> dict:
    """MSC2666's query variant. Spec: MSC2666, "GET /_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms"."""
    return {"joined": await _mutual_rooms("batch_token", SelfQuery)}
