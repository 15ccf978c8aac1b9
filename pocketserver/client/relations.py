"""Child events of an event, and the threads of a room.

Spec: client-server-api, "Relationships API" and "Querying threads in a room".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.errors import InvalidParam
from pocketserver.roomserver import relations
from pocketserver.server import current_server

bp = Blueprint("relations", __name__)
ROOM = "/_matrix/client/v1/rooms/<room_id>"
# Synapse's default page sizes for both endpoints, and its cap for any paginated endpoint.
DEFAULT_LIMIT = 5
MAX_LIMIT = 1000


def _limit_arg(*, minimum: int) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParam("limit must be an integer") from None
    if value < minimum:
        raise InvalidParam(f"limit must be at least {minimum}")
    return min(value, MAX_LIMIT)


def _choice_arg(name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.args.get(name, default)
    if value not in choices:
        raise InvalidParam(f"{name} must be one of {', '.join(choices)}")
    return value


def _recurse_arg() -> bool | None:
    raw = request.args.get("recurse")
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise InvalidParam("recurse must be 'true' or 'false'")
    return raw == "true"


async def _relating_events(room_id: str, event_id: str, rel_type: str | None, event_type: str | None) -> dict:
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    page = await relations.get_relating_events(
        server.reader, requester.user_id, room_id, event_id, rel_type=rel_type, event_type=event_type,
        from_token=request.args.get("from"), to_token=request.args.get("to"),
        direction=_choice_arg("dir", ("b", "f"), "b"), limit=_limit_arg(minimum=0), recurse=_recurse_arg())
    body: dict = {"chunk": await server.reader.serialize(page.chunk, requester.user_id, requester.device_id)}
    if page.next_batch is not None:
        body["next_batch"] = page.next_batch.serialize()
    if page.prev_batch is not None:
        body["prev_batch"] = page.prev_batch.serialize()
    if page.recursion_depth is not None:
        body["recursion_depth"] = page.recursion_depth
    return body


@bp.get(f"{ROOM}/relations/<event_id>")
async def get_relating_events(room_id: str, event_id: str) -> dict:
    """operationId getRelatingEvents. Spec: "GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}"."""
    return await _relating_events(room_id, event_id, None, None)


@bp.get(f"{ROOM}/relations/<event_id>/<rel_type>")
async def get_relating_events_with_rel_type(room_id: str, event_id: str, rel_type: str) -> dict:
    """operationId getRelatingEventsWithRelType.

    Spec: "GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}".
    """
    return await _relating_events(room_id, event_id, rel_type, None)


@bp.get(f"{ROOM}/relations/<event_id>/<rel_type>/<event_type>")
async def get_relating_events_with_rel_type_and_event_type(room_id: str, event_id: str, rel_type: str,
                                                          event_type: str) -> dict:
    """operationId getRelatingEventsWithRelTypeAndEventType.

    Spec: "GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}".
    """
    return await _relating_events(room_id, event_id, rel_type, event_type)


@bp.get(f"{ROOM}/threads")
async def get_thread_roots(room_id: str) -> dict:
    """operationId getThreadRoots. Spec: "GET /_matrix/client/v1/rooms/{roomId}/threads"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    roots, next_batch = await relations.get_thread_roots(
        server.reader, requester.user_id, room_id, include=_choice_arg("include", ("all", "participated"), "all"),
        from_token=request.args.get("from"), limit=_limit_arg(minimum=1))
    body: dict = {"chunk": await server.reader.serialize(roots, requester.user_id, requester.device_id)}
    if next_batch is not None:
        body["next_batch"] = next_batch.serialize()
    return body
