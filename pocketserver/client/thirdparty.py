"""Third-party network lookups, answered for a server without bridges.

Third-party protocols come from application services (bridges), which this server does not run:
it knows no protocol, so the protocol list is empty, a named protocol is unknown (404), and the
lookups by alias or user ID find nothing. Spec: client-server-api, "Third-party Networks".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.errors import MissingParam, NotFound
from pocketserver.server import current_server

bp = Blueprint("thirdparty", __name__)
V3 = "/_matrix/client/v3/thirdparty"


async def _caller() -> None:
    await current_server().auth.require_user(request, allow_guest=True)


@bp.get(f"{V3}/protocols")
async def get_protocols() -> dict:
    """operationId getProtocols. Spec: "GET /_matrix/client/v3/thirdparty/protocols"."""
    await _caller()
    return {}


@bp.get(f"{V3}/protocol/<protocol>")
@bp.get(f"{V3}/location/<protocol>")
@bp.get(f"{V3}/user/<protocol>")
async def query_protocol(protocol: str) -> dict:
    """operationIds getProtocolMetadata, queryLocationByProtocol, queryUserByProtocol: no bridge
    provides any protocol here, so each is unknown (spec: 404 "No protocol was found")."""
    await _caller()
    raise NotFound(f"No protocol {protocol!r} is provided by this server")


@bp.get(f"{V3}/location")
async def query_location_by_alias() -> list:
    """operationId queryLocationByAlias: no bridge knows any room alias, so the list is empty (as Synapse)."""
    await _caller()
    if not request.args.get("alias"):
        raise MissingParam("Missing alias")
    return []


@bp.get(f"{V3}/user")
async def query_user_by_id() -> list:
    """operationId queryUserByID: no bridge knows any user, so the list is empty (as Synapse)."""
    await _caller()
    if not request.args.get("userid"):
        raise MissingParam("Missing userid")
    return []
