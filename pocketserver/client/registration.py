"""Registration endpoints, including Synapse's shared-secret admin registration.

Spec: client-server-api, "Account registration and management", "Token-authenticated registration".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.errors import Forbidden, MissingParam
from pocketserver.server import current_server

bp = Blueprint("registration", __name__)


@bp.post("/_matrix/client/v3/register")
async def register() -> dict:
    """operationId register. Spec: client-server-api, "POST /_matrix/client/v3/register"."""
    body = await json_object_body(empty_ok=True)
    kind = request.args.get("kind", "user")
    return await current_server().registration.register(body, kind, request.remote_addr or "")


@bp.get("/_matrix/client/v3/register/available")
async def check_username_availability() -> dict:
    """operationId checkUsernameAvailability. Spec: "GET /_matrix/client/v3/register/available"."""
    server = current_server()
    server.registration_limit.check(f"address:{request.remote_addr}")
    username = request.args.get("username")
    if username is None:
        raise MissingParam("Missing username")
    await server.registration.check_available(username)
    return {"available": True}


@bp.get("/_matrix/client/v1/register/m.login.registration_token/validity")
async def registration_token_validity() -> dict:
    """operationId registrationTokenValidity. Spec: "Token-authenticated registration"."""
    server = current_server()
    server.registration_limit.check(f"address:{request.remote_addr}")
    if not server.config.enable_registration:
        raise Forbidden("Registration has been disabled")
    token = request.args.get("token")
    if token is None:
        raise MissingParam("Missing token")
    server.registration.spend_token_check(request.remote_addr or "")
    return {"valid": await server.registration.token_valid(token)}


@bp.get("/_synapse/admin/v1/register")
async def get_shared_secret_nonce() -> dict:
    """A nonce for shared-secret registration (Synapse admin API compatible)."""
    server = current_server()
    if not server.config.registration_shared_secret:
        raise Forbidden("Shared secret registration is not enabled")
    return {"nonce": server.registration.new_nonce()}


@bp.post("/_synapse/admin/v1/register")
async def register_with_shared_secret() -> dict:
    """Create a user with an HMAC of the shared secret (Synapse admin API compatible)."""
    body = await json_object_body()
    return await current_server().registration.register_with_shared_secret(body)
