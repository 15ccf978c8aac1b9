"""Server discovery: /versions, .well-known and capabilities.

Spec: client-server-api, "Server Discovery", "Capabilities negotiation".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.errors import NotFound
from pocketserver.rooms.versions import KNOWN_ROOM_VERSIONS
from pocketserver.server import current_server

bp = Blueprint("versions", __name__)

# Spec versions are listed only once every required part of them is served: accounts, rooms
# (v1-12), sync, E2EE, content repository with authenticated media (v1.11), push, receipts,
# typing, presence, relations and threads, directory. What the client-server API added since:
#   v1.12: account locking, `via` on joins and knocks (read by nothing while rooms are local),
#          guests' authenticated media, inline thumbnails with a file name, unread markers (room
#          account data clients keep);
#   v1.13: account suspension, room reports from non-members;
#   v1.14: user reports;
#   v1.15: the stable room summary, hierarchy rooms' version and encryption; its OAuth 2.0 API is
#          optional (GET /auth_metadata answers M_UNRECOGNIZED, so clients use the legacy one);
#   v1.16: room version 12, /sync's use_state_after, GET state's format=event, m.profile_fields,
#          upgrades' additional_creators, m.room.create in stripped state.
# v1.17 changes the default push rules and application services' login, not built yet.
SUPPORTED_SPEC_VERSIONS: tuple[str, ...] = tuple(f"v1.{n}" for n in range(1, 17))
UNSTABLE_FEATURES: dict[str, bool] = {"org.matrix.simplified_msc3575": True,
                                      "uk.half-shot.msc2666.query_mutual_rooms": True}


@bp.get("/_matrix/client/versions")
async def get_versions() -> dict:
    """operationId getVersions. Spec: client-server-api, "GET /_matrix/client/versions"."""
    return {"versions": list(SUPPORTED_SPEC_VERSIONS), "unstable_features": UNSTABLE_FEATURES}


@bp.get("/.well-known/matrix/client")
async def get_wellknown() -> dict:
    """operationId getWellknown. Spec: client-server-api, "GET /.well-known/matrix/client"."""
    return {"m.homeserver": {"base_url": current_server().config.client_base_url() + "/"}}


@bp.get("/.well-known/matrix/server")
async def get_wellknown_server() -> dict:
    """Delegation of federation traffic to port 443, only when configured (as Synapse does).

    Spec: server-server-api, "GET /.well-known/matrix/server".
    """
    config = current_server().config
    if not config.serve_server_wellknown:
        raise NotFound(".well-known/matrix/server is not served by this server")
    return {"m.server": f"{config.server_name}:443"}


@bp.get("/.well-known/matrix/support")
async def get_wellknown_support() -> dict:
    """operationId getWellknownSupport, from `admin_contact`: a mailto: address as the admin's
    email, an http(s): page as the support page; 404 when it is unset.

    Spec: client-server-api, "GET /.well-known/matrix/support".
    """
    contact = current_server().config.admin_contact.strip()
    if contact.startswith("mailto:") and len(contact) > len("mailto:"):
        return {"contacts": [{"role": "m.role.admin", "email_address": contact[len("mailto:"):]}]}
    if contact.startswith(("https://", "http://")):
        return {"support_page": contact}
    raise NotFound("No support information is configured (admin_contact)")


@bp.get("/_matrix/client/v3/capabilities")
async def get_capabilities() -> dict:
    """operationId getCapabilities. Spec: client-server-api, "Capabilities negotiation"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    profile_changes = not requester.suspended      # a suspended account may not change its profile
    capabilities = {
        "m.change_password": {"enabled": True},
        "m.set_displayname": {"enabled": profile_changes},
        "m.set_avatar_url": {"enabled": profile_changes},
        "m.3pid_changes": {"enabled": False},
        "m.get_login_token": {"enabled": False},
        "m.profile_fields": {"enabled": profile_changes},
        "m.room_versions": {"default": server.config.default_room_version,
                            "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS}},
    }
    if not requester.is_guest and await server.moderation.is_admin(requester.user_id):
        capabilities["m.account_moderation"] = {"suspend": True, "lock": True}
    return {"capabilities": capabilities}
