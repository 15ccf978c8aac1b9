"""Room tagging: a user's tags on a room, kept as the room's `m.tag` account data.

Tags reach clients through /sync as that account data; these endpoints change one tag at a time
without a client having to rewrite the whole event. Spec: client-server-api, "Room Tagging".
"""
from __future__ import annotations

import json

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.errors import BadJson, Forbidden, InvalidParam, TooLarge
from pocketserver.server import current_server
from pocketserver.storage import account_data
from pocketserver.storage import rooms as room_store
from pocketserver.storage.writer import Transaction

bp = Blueprint("tags", __name__)

TAG_EVENT = "m.tag"
MAX_TAG_BYTES = 255           # spec: "The name of a tag MUST NOT exceed 255 bytes."
MAX_TAGS_BYTES = 65_536       # all of a room's tags together, as one event's size
PATH = "/_matrix/client/v3/user/<user_id>/rooms/<room_id>/tags"


async def _owner(user_id: str, room_id: str) -> None:
    requester = await current_server().auth.require_user(request, allow_guest=True)
    if requester.user_id != user_id:
        raise Forbidden("Cannot access the tags of other users")
    if not room_id.startswith("!") or len(room_id) > 255:
        raise InvalidParam(f"{room_id!r} is not a valid room ID")


@bp.get(PATH)
async def get_room_tags(user_id: str, room_id: str) -> dict:
    """operationId getRoomTags. Spec: "GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags"."""
    await _owner(user_id, room_id)
    content = await account_data.get_account_data(current_server().db, user_id, room_id, TAG_EVENT)
    return {"tags": account_data.tags_of(content)}


@bp.put(f"{PATH}/<tag>")
async def set_room_tag(user_id: str, room_id: str, tag: str) -> dict:
    """operationId setRoomTag. Spec: "PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}".

    Only a room the user has a membership in (any, a past one too) can be tagged, as in Synapse.
    """
    await _owner(user_id, room_id)
    if await room_store.get_local_membership(current_server().db, user_id, room_id) is None:
        raise Forbidden(f"User {user_id} has no membership in room {room_id}")
    if not tag or len(tag.encode()) > MAX_TAG_BYTES:
        raise InvalidParam(f"A tag name is 1 to {MAX_TAG_BYTES} bytes")
    body = await json_object_body()
    order = body.get("order")
    if "order" in body and (isinstance(order, bool) or not isinstance(order, (int, float))):
        raise BadJson("order must be a number")

    async def job(tx: Transaction) -> None:
        tags = account_data.tags_of(await account_data.get_account_data_tx(tx, user_id, room_id, TAG_EVENT))
        tags[tag] = body
        if len(json.dumps(tags, ensure_ascii=False).encode()) > MAX_TAGS_BYTES:
            raise TooLarge(f"A room's tags may take at most {MAX_TAGS_BYTES} bytes")
        await account_data.set_account_data(tx, user_id, room_id, TAG_EVENT, {"tags": tags})

    await current_server().db.write(job)
    return {}


@bp.delete(f"{PATH}/<tag>")
async def delete_room_tag(user_id: str, room_id: str, tag: str) -> dict:
    """operationId deleteRoomTag. Spec: "DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}".

    Removing a tag the room does not have succeeds and changes nothing, as in Synapse.
    """
    await _owner(user_id, room_id)

    async def job(tx: Transaction) -> None:
        tags = account_data.tags_of(await account_data.get_account_data_tx(tx, user_id, room_id, TAG_EVENT))
        if tag in tags:
            del tags[tag]
            await account_data.set_account_data(tx, user_id, room_id, TAG_EVENT, {"tags": tags})

    await current_server().db.write(job)
    return {}
