"""Profile endpoints.

Spec: client-server-api, "Profiles".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.client.request_body import json_object_body
from pocketserver.server import current_server

bp = Blueprint("profile", __name__)


@bp.get("/_matrix/client/v3/profile/<user_id>")
async def get_user_profile(user_id: str) -> dict:
    """operationId getUserProfile. Spec: "GET /_matrix/client/v3/profile/{userId}"."""
    server = current_server()
    await server.auth.get_user(request, allow_guest=True)   # a bad token is still refused
    return await server.profiles.get_profile(user_id)


@bp.get("/_matrix/client/v3/profile/<user_id>/<key_name>")
async def get_profile_field(user_id: str, key_name: str) -> dict:
    """operationId getProfileField. Spec: "GET /_matrix/client/v3/profile/{userId}/{keyName}"."""
    server = current_server()
    await server.auth.get_user(request, allow_guest=True)
    return await server.profiles.get_field(user_id, key_name)


@bp.put("/_matrix/client/v3/profile/<user_id>/<key_name>")
async def set_profile_field(user_id: str, key_name: str) -> dict:
    """operationId setProfileField. Spec: "PUT /_matrix/client/v3/profile/{userId}/{keyName}"."""
    server = current_server()
    # Guests may change their display name only (spec: client-server-api, "Guest Access").
    requester = await server.auth.require_user(request, allow_guest=key_name == "displayname")
    requester.refuse_if_suspended("Changing the profile")
    await server.profiles.set_field(requester.user_id, user_id, key_name, await json_object_body())
    return {}


@bp.delete("/_matrix/client/v3/profile/<user_id>/<key_name>")
async def delete_profile_field(user_id: str, key_name: str) -> dict:
    """operationId deleteProfileField. Spec: "DELETE /_matrix/client/v3/profile/{userId}/{keyName}"."""
    server = current_server()
    # Guests may change their display name only (spec: client-server-api, "Guest Access").
    requester = await server.auth.require_user(request, allow_guest=key_name == "displayname")
    requester.refuse_if_suspended("Changing the profile")
    await server.profiles.delete_field(requester.user_id, user_id, key_name)
    return {}
