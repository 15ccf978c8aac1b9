"""Send-to-device messaging.

Spec: client-server-api, "Send-to-Device messaging".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("to_device", __name__)


@bp.put("/_matrix/client/v3/sendToDevice/<event_type>/<txn_id>")
async def send_to_device(event_type: str, txn_id: str) -> dict:
    """operationId sendToDevice. Spec: "PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    await server.to_device.send_to_device(requester, event_type, txn_id, await json_object_body())
    return {}
