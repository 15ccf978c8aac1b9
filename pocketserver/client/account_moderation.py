"""Server admins lock and suspend accounts.

Spec: client-server-api, "GET/PUT /_matrix/client/v1/admin/lock/{userId}" and
"GET/PUT /_matrix/client/v1/admin/suspend/{userId}" (added in v1.18).
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.accounts.moderation import Kind
from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("account_moderation", __name__)
ADMIN = "/_matrix/client/v1/admin"


async def _get(user_id: str, kind: Kind) -> dict:
    server = current_server()
    requester = await server.auth.require_user(request)
    return {kind: await server.moderation.status(requester, user_id, kind)}


async def _put(user_id: str, kind: Kind) -> dict:
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body()
    return {kind: await server.moderation.set_status(requester, user_id, kind, body)}


@bp.get(f"{ADMIN}/lock/<user_id>")
async def get_admin_lock_user(user_id: str) -> dict:
    """operationId getAdminLockUser. Spec: "GET /_matrix/client/v1/admin/lock/{userId}"."""
    return await _get(user_id, "locked")


@bp.put(f"{ADMIN}/lock/<user_id>")
async def set_admin_lock_user(user_id: str) -> dict:
    """operationId setAdminLockUser. Spec: "PUT /_matrix/client/v1/admin/lock/{userId}"."""
    return await _put(user_id, "locked")


@bp.get(f"{ADMIN}/suspend/<user_id>")
async def get_admin_suspend_user(user_id: str) -> dict:
    """operationId getAdminSuspendUser. Spec: "GET /_matrix/client/v1/admin/suspend/{userId}"."""
    return await _get(user_id, "suspended")


@bp.put(f"{ADMIN}/suspend/<user_id>")
async def set_admin_suspend_user(user_id: str) -> dict:
    """operationId setAdminSuspendUser. Spec: "PUT /_matrix/client/v1/admin/suspend/{userId}"."""
    return await _put(user_id, "suspended")
