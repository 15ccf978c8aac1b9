"""Client config: global and per-room account data.

Spec: client-server-api, "Client Config".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.accounts.auth import Requester
from pocketserver.accounts.ignored_users import EVENT_TYPE as IGNORED_USERS_TYPE
from pocketserver.client.request_body import json_object_body
from pocketserver.errors import Forbidden, InvalidParam, MatrixError, NotFound
from pocketserver.server import current_server
from pocketserver.storage import account_data

bp = Blueprint("account_data", __name__)

# Account data the server manages itself: 405 M_BAD_JSON when a client tries to set either, both
# globally and for a room (spec: client-server-api, "Client Config", "Server Behaviour").
SERVER_MANAGED = {"m.fully_read", "m.push_rules"}
MAX_TYPE_LENGTH = 255


class _ServerManaged(MatrixError):
    errcode, status = "M_BAD_JSON", 405


async def _owner(user_id: str) -> Requester:
    requester = await current_server().auth.require_user(request, allow_guest=True)
    if requester.user_id != user_id:
        raise Forbidden("Cannot access account data of other users")
    return requester


def _check(data_type: str, room_id: str | None = None) -> None:
    if not data_type or len(data_type) > MAX_TYPE_LENGTH:
        raise InvalidParam("Invalid account data type")
    if room_id is not None and (not room_id.startswith("!") or len(room_id) > 255):
        raise InvalidParam(f"{room_id!r} is not a valid room ID")


@bp.put("/_matrix/client/v3/user/<user_id>/account_data/<data_type>")
async def set_account_data(user_id: str, data_type: str) -> dict:
    """operationId setAccountData. Spec: "PUT /_matrix/client/v3/user/{userId}/account_data/{type}"."""
    await _owner(user_id)
    _check(data_type)
    if data_type in SERVER_MANAGED:
        raise _ServerManaged(f"Cannot set {data_type} through this API.")
    content = await json_object_body()
    server = current_server()
    try:
        await server.db.write(lambda tx: account_data.set_account_data(tx, user_id, account_data.GLOBAL, data_type,
                                                                       content))
    finally:
        if data_type == IGNORED_USERS_TYPE:
            server.reader.ignored.changed(user_id)     # sync and push follow the new list at once
    return {}


@bp.get("/_matrix/client/v3/user/<user_id>/account_data/<data_type>")
async def get_account_data(user_id: str, data_type: str) -> dict:
    """operationId getAccountData. Spec: "GET /_matrix/client/v3/user/{userId}/account_data/{type}"."""
    await _owner(user_id)
    _check(data_type)
    if data_type == "m.push_rules":     # kept apart, yet "Servers must allow clients to read" it (spec)
        ruleset = await current_server().push.rules.get_ruleset(user_id)
        return {"global": ruleset.to_json()}
    found = await account_data.get_account_data(current_server().db, user_id, account_data.GLOBAL,
                                                 data_type)
    if found is None:
        raise NotFound("Account data not found")
    return found


@bp.put("/_matrix/client/v3/user/<user_id>/rooms/<room_id>/account_data/<data_type>")
async def set_account_data_per_room(user_id: str, room_id: str, data_type: str) -> dict:
    """operationId setAccountDataPerRoom. Spec: "Client Config"."""
    await _owner(user_id)
    _check(data_type, room_id)
    if data_type in SERVER_MANAGED:
        raise _ServerManaged(f"Cannot set {data_type} through this API.")
    content = await json_object_body()
    await current_server().db.write(lambda tx: account_data.set_account_data(
        tx, user_id, room_id, data_type, content))
    return {}


@bp.get("/_matrix/client/v3/user/<user_id>/rooms/<room_id>/account_data/<data_type>")
async def get_account_data_per_room(user_id: str, room_id: str, data_type: str) -> dict:
    """operationId getAccountDataPerRoom. Spec: "Client Config"."""
    await _owner(user_id)
    _check(data_type, room_id)
    found = await account_data.get_account_data(current_server().db, user_id, room_id, data_type)
    if found is None:
        raise NotFound("Account data not found")
    return found
