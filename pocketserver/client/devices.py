"""Device management.

Spec: client-server-api, "Device management".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("devices", __name__)


@bp.get("/_matrix/client/v3/devices")
async def get_devices() -> dict:
    """operationId getDevices. Spec: client-server-api, "GET /_matrix/client/v3/devices"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    return {"devices": await server.account.list_devices(requester.user_id)}


@bp.get("/_matrix/client/v3/devices/<device_id>")
async def get_device(device_id: str) -> dict:
    """operationId getDevice. Spec: client-server-api, "GET /_matrix/client/v3/devices/{deviceId}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    return await server.account.get_device(requester.user_id, device_id)


@bp.put("/_matrix/client/v3/devices/<device_id>")
async def update_device(device_id: str) -> dict:
    """operationId updateDevice. Spec: client-server-api, "PUT /_matrix/client/v3/devices/{deviceId}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    await server.account.update_device(requester.user_id, device_id, await json_object_body())
    return {}


@bp.delete("/_matrix/client/v3/devices/<device_id>")
async def delete_device(device_id: str) -> dict:
    """operationId deleteDevice. Spec: "DELETE /_matrix/client/v3/devices/{deviceId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body(empty_ok=True)
    await server.account.delete_device(requester, device_id, body.get("auth"))
    return {}


@bp.post("/_matrix/client/v3/delete_devices")
async def delete_devices() -> dict:
    """operationId deleteDevices. Spec: client-server-api, "POST /_matrix/client/v3/delete_devices"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    await server.account.delete_devices(requester, body.get("devices"), body.get("auth"))
    return {}
