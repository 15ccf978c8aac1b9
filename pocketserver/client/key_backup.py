"""Server-side key backups.

Spec: client-server-api, "Server-side key backups".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("key_backup", __name__)
VERSION = "/_matrix/client/v3/room_keys/version"
KEYS = "/_matrix/client/v3/room_keys/keys"


@bp.post(VERSION)
async def post_room_keys_version() -> dict:
    """operationId postRoomKeysVersion. Spec: "POST /_matrix/client/v3/room_keys/version"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.key_backup.create_version(requester.user_id, await json_object_body())


@bp.get(VERSION)
async def get_room_keys_version_current() -> dict:
    """operationId getRoomKeysVersionCurrent. Spec: "GET /_matrix/client/v3/room_keys/version"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.key_backup.get_version(requester.user_id, None)


@bp.get(f"{VERSION}/<version>")
async def get_room_keys_version(version: str) -> dict:
    """operationId getRoomKeysVersion. Spec: "GET /_matrix/client/v3/room_keys/version/{version}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.key_backup.get_version(requester.user_id, version)


@bp.put(f"{VERSION}/<version>")
async def put_room_keys_version(version: str) -> dict:
    """operationId putRoomKeysVersion. Spec: "PUT /_matrix/client/v3/room_keys/version/{version}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    await server.key_backup.update_version(requester.user_id, version, await json_object_body())
    return {}


@bp.delete(f"{VERSION}/<version>")
async def delete_room_keys_version(version: str) -> dict:
    """operationId deleteRoomKeysVersion. Spec: "DELETE /_matrix/client/v3/room_keys/version/{version}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    await server.key_backup.delete_version(requester.user_id, version)
    return {}


@bp.put(KEYS)
async def put_room_keys() -> dict:
    """operationId putRoomKeys. Spec: "PUT /_matrix/client/v3/room_keys/keys"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    from pocketserver.e2ee.key_backup import parse_rooms
    rows = parse_rooms(await json_object_body())
    return await server.key_backup.put_keys(requester.user_id, request.args.get("version"), rows)


@bp.get(KEYS)
async def get_room_keys() -> dict:
    """operationId getRoomKeys. Spec: "GET /_matrix/client/v3/room_keys/keys"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.key_backup.get_keys(requester.user_id, request.args.get("version"))


@bp.delete(KEYS)
async def delete_room_keys() -> dict:
    """operationId deleteRoomKeys. Spec: "DELETE /_matrix/client/v3/room_keys/keys"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.key_backup.delete_keys(requester.user_id, request.args.get("version"))


@bp.put(f"{KEYS}/<room_id>")
async def put_room_keys_by_room_id(room_id: str) -> dict:
    """operationId putRoomKeysByRoomId. Spec: "PUT /_matrix/client/v3/room_keys/keys/{roomId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    from pocketserver.e2ee.key_backup import parse_sessions
    rows = [(room_id, s, k) for s, k in parse_sessions(await json_object_body())]
    return await server.key_backup.put_keys(requester.user_id, request.args.get("version"), rows)


@bp.get(f"{KEYS}/<room_id>")
async def get_room_keys_by_room_id(room_id: str) -> dict:
    """operationId getRoomKeysByRoomId. Spec: "GET /_matrix/client/v3/room_keys/keys/{roomId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.key_backup.get_keys(requester.user_id, request.args.get("version"), room_id)


@bp.delete(f"{KEYS}/<room_id>")
async def delete_room_keys_by_room_id(room_id: str) -> dict:
    """operationId deleteRoomKeysByRoomId. Spec: "DELETE /_matrix/client/v3/room_keys/keys/{roomId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.key_backup.delete_keys(requester.user_id, request.args.get("version"), room_id)


@bp.put(f"{KEYS}/<room_id>/<session_id>")
async def put_room_key_by_session_id(room_id: str, session_id: str) -> dict:
    """operationId putRoomKeyBySessionId. Spec: "PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    from pocketserver.e2ee.key_backup import parse_room_key
    rows = [(room_id, session_id, parse_room_key(await json_object_body()))]
    return await server.key_backup.put_keys(requester.user_id, request.args.get("version"), rows)


@bp.get(f"{KEYS}/<room_id>/<session_id>")
async def get_room_key_by_session_id(room_id: str, session_id: str) -> dict:
    """operationId getRoomKeyBySessionId. Spec: "GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.key_backup.get_keys(requester.user_id, request.args.get("version"), room_id, session_id)


@bp.delete(f"{KEYS}/<room_id>/<session_id>")
async def delete_room_key_by_session_id(room_id: str, session_id: str) -> dict:
    """operationId deleteRoomKeyBySessionId. Spec: "DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.key_backup.delete_keys(requester.user_id, request.args.get("version"), room_id,
                                               session_id)
