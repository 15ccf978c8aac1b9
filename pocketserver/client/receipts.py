"""Receipts and read markers.

Spec: client-server-api, "Receipts" and "Fully read markers".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("receipts", __name__)


@bp.post("/_matrix/client/v3/rooms/<room_id>/receipt/<receipt_type>/<event_id>")
async def post_receipt(room_id: str, receipt_type: str, event_id: str) -> dict:
    """operationId postReceipt. Spec: "POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    # Synapse accepts an empty body here, as older clients send none.
    body = await json_object_body(empty_ok=True)
    await server.receipts.post_receipt(requester.user_id, room_id, receipt_type, event_id, body)
    return {}


@bp.post("/_matrix/client/v3/rooms/<room_id>/read_markers")
async def set_read_marker(room_id: str) -> dict:
    """operationId setReadMarker. Spec: "POST /_matrix/client/v3/rooms/{roomId}/read_markers"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    body = await json_object_body()
    await server.receipts.set_read_markers(requester.user_id, room_id, body)
    return {}
