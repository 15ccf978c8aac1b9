"""End-to-end encryption keys: device keys, one-time keys, key changes and cross-signing.

Spec: client-server-api, "Key management API" and "Cross-signing".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("keys", __name__)


@bp.post("/_matrix/client/v3/keys/upload")
async def upload_keys() -> dict:
    """operationId uploadKeys. Spec: client-server-api, "POST /_matrix/client/v3/keys/upload"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    return await server.device_keys.upload_keys(requester, await json_object_body())


@bp.post("/_matrix/client/v3/keys/query")
async def query_keys() -> dict:
    """operationId queryKeys. Spec: client-server-api, "POST /_matrix/client/v3/keys/query"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    return await server.device_keys.query_keys(requester, await json_object_body())


@bp.post("/_matrix/client/v3/keys/claim")
async def claim_keys() -> dict:
    """operationId claimKeys. Spec: client-server-api, "POST /_matrix/client/v3/keys/claim"."""
    server = current_server()
    await server.auth.require_user(request, allow_guest=True)
    return await server.one_time_keys.claim_keys(await json_object_body())


@bp.get("/_matrix/client/v3/keys/changes")
async def get_keys_changes() -> dict:
    """operationId getKeysChanges. Spec: client-server-api, "GET /_matrix/client/v3/keys/changes"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.device_lists.get_keys_changes(requester.user_id, request.args.get("from"),
                                                      request.args.get("to"))


@bp.post("/_matrix/client/v3/keys/device_signing/upload")
async def upload_cross_signing_keys() -> dict:
    """operationId uploadCrossSigningKeys. Spec: "POST /_matrix/client/v3/keys/device_signing/upload"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    await server.cross_signing.upload_cross_signing_keys(requester, await json_object_body())
    return {}


@bp.post("/_matrix/client/v3/keys/signatures/upload")
async def upload_cross_signing_signatures() -> dict:
    """operationId uploadCrossSigningSignatures. Spec: "POST /_matrix/client/v3/keys/signatures/upload"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    return await server.cross_signing.upload_signatures(requester, await json_object_body())
