"""Reporting events, rooms and users to the server admin.

Spec: client-server-api, "Reporting content".
"""
from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.errors import BadJson, Forbidden, InvalidParam, NotFound
from pocketserver.ids import InvalidIdentifier, UserID
from pocketserver.server import Server, current_server
from pocketserver.storage import accounts as account_store

bp = Blueprint("reporting", __name__)
ROOM = "/_matrix/client/v3/rooms/<room_id>"
MAX_REASON_CHARS = 10_000


def _reason(body: dict[str, Any], *, required: bool) -> None:
    reason = body.get("reason")
    if reason is None and not required:
        return
    if not isinstance(reason, str):
        raise BadJson("Param 'reason' must be a string")
    if len(reason) > MAX_REASON_CHARS:
        raise BadJson("Param 'reason' is too long")


async def _store(server: Server, **fields: Any) -> None:
    """Keep one report for the admin; the 200 goes out after it is committed."""
    from pocketserver.storage import reports as report_store
    await server.db.write(lambda tx: report_store.insert_report(tx, received_ts=int(time.time() * 1000), **fields))


@bp.post(f"{ROOM}/report/<event_id>")
async def report_event(room_id: str, event_id: str) -> dict:
    """operationId reportEvent. Spec: "POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    _reason(body, required=False)
    if "score" in body and type(body["score"]) is not int:
        raise BadJson("Param 'score' must be an integer")
    try:
        # The reporter must be able to see the event; otherwise it does not exist for them.
        await server.reader.get_event(requester.user_id, room_id, event_id)
    except (Forbidden, NotFound):
        raise NotFound("Unable to report event: it does not exist or you aren't able to see it.") from None
    await _store(server, kind="event", reporter=requester.user_id, content=body, room_id=room_id,
                 event_id=event_id)
    return {}


@bp.post(f"{ROOM}/report")
async def report_room(room_id: str) -> dict:
    """operationId reportRoom. Spec: "POST /_matrix/client/v3/rooms/{roomId}/report"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    _reason(body, required=True)
    if await server.roomserver.get_room_state(room_id) is None:
        raise NotFound("Room does not exist")
    await _store(server, kind="room", reporter=requester.user_id, content=body, room_id=room_id)
    return {}


@bp.post("/_matrix/client/v3/users/<user_id>/report")
async def report_user(user_id: str) -> dict:
    """operationId reportUser. Spec: "POST /_matrix/client/v3/users/{userId}/report"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    _reason(body, required=True)
    try:
        target = UserID.parse(user_id)
    except InvalidIdentifier:
        raise InvalidParam(f"{user_id!r} is not a valid user ID") from None
    # Reports on unknown users answer 200 too (as Synapse), so the API does not reveal who exists.
    if target.server_name == server.config.server_name and await account_store.get_user(server.db, user_id):
        await _store(server, kind="user", reporter=requester.user_id, content=body, target_user_id=user_id)
    return {}
