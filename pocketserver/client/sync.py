"""Sync endpoint.

Spec: client-server-api, "Syncing".
"""
from __future__ import annotations

from quart import Blueprint, request

from pocketserver.errors import InvalidParam
from pocketserver.server import current_server

bp = Blueprint("sync", __name__)
# use_state_after (spec v1.16) answers in `state_after`; MSC4222's unstable name, which matrix-js-sdk
# sends on every /sync, in the unstable field, the only one it reads.
STATE_AFTER_PARAMS = (("use_state_after", "state_after"),
                      ("org.matrix.msc4222.use_state_after", "org.matrix.msc4222.state_after"))


def _state_after_key() -> str | None:
    """The response field for state at the end of the timeline, if the client asked for it."""
    for param, key in STATE_AFTER_PARAMS:
        value = request.args.get(param)
        if value is None:
            continue
        if value not in ("true", "false"):
            raise InvalidParam(f"{param} must be true or false")
        return key if value == "true" else None
    return None


@bp.get("/_matrix/client/v3/sync")
async def sync() -> dict:
    """operationId sync. Spec: client-server-api, "GET /_matrix/client/v3/sync"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    try:
        timeout = int(request.args.get("timeout", "0"))
    except ValueError:
        raise InvalidParam("timeout must be an integer") from None
    full_state = request.args.get("full_state", "false")
    if full_state not in ("true", "false"):
        raise InvalidParam("full_state must be true or false")
    state_after = _state_after_key()
    set_presence = request.args.get("set_presence", "online")
    if set_presence not in ("online", "offline", "unavailable"):
        raise InvalidParam("set_presence must be online, offline or unavailable")
    await server.presence.user_syncing(requester.user_id, set_presence, timeout, requester.device_id)
    return await server.sync.sync(requester.user_id, requester.device_id, since=request.args.get("since"),
                                  filter_value=request.args.get("filter"), full_state=full_state == "true",
                                  timeout_ms=timeout, state_after=state_after)
