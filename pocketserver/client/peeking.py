"""Room previews: a room's state and latest messages, then its new events, without joining.

A member, a former member (up to when they left) or anyone for a world-readable room may read
these; everyone else gets 403, as on every other read. Spec: client-server-api, "Room Previews",
"GET /_matrix/client/v3/rooms/{roomId}/initialSync", "GET /_matrix/client/v3/events"; and the
deprecated "GET /_matrix/client/v3/events/{eventId}".
"""
from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, request

from pocketserver.client.request_body import int_arg
from pocketserver.errors import NotFound, Unrecognized
from pocketserver.server import current_server
from pocketserver.storage import account_data as account_data_store
from pocketserver.storage import events as event_store
from pocketserver.storage import rooms as room_store
from pocketserver.sync.sync import MAX_TIMEOUT_MS
from pocketserver.sync.tokens import StreamToken

bp = Blueprint("peeking", __name__)

DEFAULT_LIMIT = 10        # messages in a room's initial sync, as Synapse
MAX_LIMIT = 1000
PEEK_PAGE = 100           # events in one /events answer


@bp.get("/_matrix/client/v3/rooms/<room_id>/initialSync")
async def room_initial_sync(room_id: str) -> dict:
    """operationId roomInitialSync. Spec: "GET /_matrix/client/v3/rooms/{roomId}/initialSync".

    The current state (for a former member: the state when they left), the latest messages
    oldest first with a token to paginate back from, the user's room account data, whether the
    room is published, and for a member the presence of those joined, as Synapse answers.
    """
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    user_id, device_id = requester.user_id, requester.device_id
    limit = int_arg("limit", DEFAULT_LIMIT, 0, MAX_LIMIT)
    state = await server.reader.current_state(user_id, room_id)          # 403 for those who may not read
    events, now, before = await server.reader.messages(user_id, room_id, from_token=None, to_token=None,
                                                       direction="b", limit=limit)
    messages: dict[str, Any] = {"chunk": await server.reader.serialize(reversed(events), user_id, device_id),
                                "end": now.serialize()}
    if before is not None:
        messages["start"] = before.serialize()
    room = await server.roomserver.require_room(room_id)
    row = await room_store.get_room(server.db, room_id)
    body: dict[str, Any] = {
        "room_id": room_id,
        "messages": messages,
        "state": await server.reader.serialize(state, user_id, device_id),
        "visibility": "public" if row is not None and row.is_public else "private",
        "account_data": [{"type": t, "content": c}
                         for t, c in await account_data_store.get_room_account_data(server.db, user_id, room_id)],
        "presence": [],
    }
    membership = room.membership(user_id)
    if membership in ("invite", "join", "leave", "ban"):
        body["membership"] = membership
    if membership == "join":
        presence_now = server.presence.now()
        body["presence"] = [{"type": "m.presence", "sender": member,
                             "content": {**server.presence.state(member).format(presence_now), "user_id": member}}
                            for (event_type, member), pdu in sorted(room.state.items())
                            if event_type == "m.room.member" and pdu.content.get("membership") == "join"]
    return body


@bp.get("/_matrix/client/v3/events/<event_id>")
async def get_one_event(event_id: str) -> dict:
    """operationId getOneEvent. Spec: "GET /_matrix/client/v3/events/{eventId}".

    Deprecated since r0 in favour of the room's own /event/{eventId}, and still served (as by
    Synapse) for older clients: the event with its room ID, 404 when it does not exist or the
    user may not see it.
    """
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    stored = await event_store.get_event(server.db, event_id)
    if stored is None:
        raise NotFound("Event not found")
    event = await server.reader.readable_event(requester.user_id, stored.room_id, event_id)
    return (await server.reader.serialize([event], requester.user_id, requester.device_id))[0]


@bp.get("/_matrix/client/v3/events")
async def peek_events() -> dict:
    """operationId peekEvents. Spec: "GET /_matrix/client/v3/events" (with `room_id`).

    Long-polls up to `timeout` ms for the room's events after `from` (now when absent). Without
    `room_id` this is the deprecated event stream of every room (getEvents), which /sync replaced
    and this server does not serve.
    """
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    room_id = request.args.get("room_id")
    if not room_id:
        raise Unrecognized("Only peeking into one room (room_id) is served here; use /sync")
    timeout_ms = int_arg("timeout", 30_000, 0, MAX_TIMEOUT_MS)
    raw_from = request.args.get("from")
    start = StreamToken.parse(raw_from) if raw_from else StreamToken(events=await event_store.max_stream_ordering(server.db))
    # Listen before reading, so an event committed in between wakes the wait.
    waiter = server.notifier.register(requester.user_id, [room_id])
    try:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            waiter.event.clear()          # before the read: a commit after it wakes the wait below
            events, reached = await server.reader.events_after(requester.user_id, room_id, start.events, PEEK_PAGE)
            remaining = deadline - time.monotonic()
            if events or remaining <= 0 or not await server.notifier.wait(waiter, remaining):
                break
    finally:
        server.notifier.unregister(waiter)
    return {"start": start.serialize(), "end": start.with_events(reached).serialize(),
            "chunk": await server.reader.serialize(events, requester.user_id, requester.device_id)}
