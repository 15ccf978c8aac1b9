"""Room creation, events, state and history.

Spec: client-server-api, "Rooms", "Events", "Getting events for a room".
"""
from __future__ import annotations

import asyncio

import json
from collections.abc import Callable

from quart import Blueprint, request

from pocketserver.client.request_body import int_arg, json_object_body
from pocketserver.errors import InvalidParam, NotJson
from pocketserver.roomserver import sending
from pocketserver.roomserver.creation import create_room as create_room_service
from pocketserver.server import current_server
from pocketserver.storage import rooms as room_store
from pocketserver.storage.events import StoredEvent
from pocketserver.sync.filters import check_room_event_filter, event_matches

bp = Blueprint("rooms", __name__)
ROOM = "/_matrix/client/v3/rooms/<room_id>"


def _choice_arg(name: str, allowed: tuple[str, ...]) -> str | None:
    """A query parameter that must be one of `allowed` when present (Synapse's parse_string)."""
    value = request.args.get(name)
    if value is not None and value not in allowed:
        raise InvalidParam(f"Query parameter {name!r} must be one of {', '.join(allowed)}")
    return value


MEMBERSHIPS = ("invite", "join", "leave", "ban", "knock")


@bp.post("/_matrix/client/v3/createRoom")
async def create_room() -> dict:
    """operationId createRoom. Spec: "POST /_matrix/client/v3/createRoom"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    requester.refuse_if_suspended("Creating rooms")
    body = await json_object_body(empty_ok=True)
    profile = await server.profiles.get_profile(requester.user_id)
    room_id = await create_room_service(server.roomserver, requester.user_id, body,
                                        {k: v for k, v in profile.items() if k in ("displayname", "avatar_url") and v})
    return {"room_id": room_id}


@bp.get("/_matrix/client/v3/joined_rooms")
async def get_joined_rooms() -> dict:
    """operationId getJoinedRooms. Spec: "GET /_matrix/client/v3/joined_rooms"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    return {"joined_rooms": sorted(await room_store.get_rooms_for_user(server.db, requester.user_id))}


@bp.put(f"{ROOM}/send/<event_type>/<txn_id>")
async def send_message(room_id: str, event_type: str, txn_id: str) -> dict:
    """operationId sendMessage. Spec: "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}"."""
    server = current_server()
    with server.db.writer.expect():       # from the start: a batch opening now waits for this event too
        requester = await server.auth.require_user(request, allow_guest=True)
        requester.refuse_if_suspended("Sending events")     # redacting one's own goes through /redact
        content = await json_object_body()
        event_id = await sending.send_event(server.roomserver, requester.user_id, requester.device_id, room_id,
                                            event_type, content, txn_id)
    await server.presence.bump_active(requester.user_id)   # sending counts as activity, as in Synapse
    return {"event_id": event_id}


@bp.put(f"{ROOM}/state/<event_type>", defaults={"state_key": ""})
@bp.put(f"{ROOM}/state/<event_type>/<state_key>")
async def set_room_state_with_key(room_id: str, event_type: str, state_key: str) -> dict:
    """operationId setRoomStateWithKey. Spec: "PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)    # guests too, since v1.2
    requester.refuse_if_suspended("Sending state events")
    content = await json_object_body()
    if event_type == "m.room.member":       # a membership change, checked as the membership endpoints check it
        sending.check_state_content(event_type, state_key, content)
        event_id = await server.membership.set_member_state(requester.user_id, room_id, state_key, content,
                                                            guest=requester.is_guest)
        return {"event_id": event_id}
    event_id = await sending.set_state(server.roomserver, requester.user_id, room_id, event_type, state_key, content)
    if event_type == "m.room.guest_access":
        # Shielded: a client that goes away now must not leave guests in a room closed to them.
        await asyncio.shield(server.membership.remove_guests(room_id))
    return {"event_id": event_id}


@bp.get(f"{ROOM}/state/<event_type>", defaults={"state_key": ""})
@bp.get(f"{ROOM}/state/<event_type>/<state_key>")
async def get_room_state_with_key(room_id: str, event_type: str, state_key: str) -> dict:
    """operationId getRoomStateWithKey. Spec: "GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    event = await server.reader.state_event(requester.user_id, room_id, event_type, state_key)
    if _choice_arg("format", ("content", "event")) == "event":
        return (await server.reader.serialize([event], requester.user_id, requester.device_id))[0]
    content = event.json.get("content")
    return content if isinstance(content, dict) else {}


@bp.get(f"{ROOM}/state")
async def get_room_state(room_id: str) -> list:
    """operationId getRoomState. Spec: "GET /_matrix/client/v3/rooms/{roomId}/state"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    events = await server.reader.current_state(requester.user_id, room_id)
    return await server.reader.serialize(events, requester.user_id, requester.device_id)


@bp.put(f"{ROOM}/redact/<event_id>/<txn_id>")
async def redact_event(room_id: str, event_id: str, txn_id: str) -> dict:
    """operationId redactEvent. Spec: "PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}"."""
    server = current_server()
    requester = await server.auth.require_user(request)
    body = await json_object_body(empty_ok=True)
    redaction_id = await sending.redact_event(server.roomserver, requester.user_id, requester.device_id, room_id,
                                              event_id, txn_id, body.get("reason"), own_only=requester.suspended)
    return {"event_id": redaction_id}


@bp.get(f"{ROOM}/event/<event_id>")
async def get_one_room_event(room_id: str, event_id: str) -> dict:
    """operationId getOneRoomEvent. Spec: "GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    event = await server.reader.readable_event(requester.user_id, room_id, event_id)
    return (await server.reader.serialize([event], requester.user_id, requester.device_id))[0]


def _filter_arg() -> dict | None:
    raw = request.args.get("filter")
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):        # RecursionError: nested too deeply
        raise NotJson("filter is not JSON") from None
    return check_room_event_filter(value)


# The RoomEventFilter keys that leave events out of a /messages page.
SELECTING_KEYS = frozenset({"types", "not_types", "senders", "not_senders", "rooms", "not_rooms", "contains_url"})


def _selector(event_filter: dict | None, room_id: str) -> Callable[[StoredEvent], bool] | None:
    """The filter's test of an event, or None when it selects every event (lazy_load_members alone)."""
    if not event_filter or SELECTING_KEYS.isdisjoint(event_filter):
        return None
    return lambda e: event_matches(event_filter, event_type=e.type, sender=e.sender, room_id=room_id,
                                   content=e.json.get("content", {}))


@bp.get(f"{ROOM}/messages")
async def get_room_events(room_id: str) -> dict:
    """operationId getRoomEvents. Spec: "GET /_matrix/client/v3/rooms/{roomId}/messages"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    direction = request.args.get("dir", "b")
    if direction not in ("b", "f"):
        raise InvalidParam("dir must be 'b' or 'f'")
    event_filter = _filter_arg()
    limit = int_arg("limit", 10, 0, 1000)
    if event_filter and "limit" in event_filter:
        limit = min(limit, event_filter["limit"])
    events, start, end = await server.reader.messages(
        requester.user_id, room_id, from_token=request.args.get("from"), to_token=request.args.get("to"),
        direction=direction, limit=limit, keep=_selector(event_filter, room_id))
    body: dict = {"start": start.serialize(),
                  "chunk": await server.reader.serialize(events, requester.user_id, requester.device_id)}
    if end is not None:
        body["end"] = end.serialize()
    if event_filter and event_filter.get("lazy_load_members"):
        senders = {e.sender for e in events}
        members = await server.reader.members(requester.user_id, room_id)
        body["state"] = await server.reader.serialize([m for m in members if m.state_key in senders],
                                                      requester.user_id, requester.device_id)
    return body


@bp.get(f"{ROOM}/context/<event_id>")
async def get_event_context(room_id: str, event_id: str) -> dict:
    """operationId getEventContext. Spec: "GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    event_filter = _filter_arg()
    ctx = await server.reader.context(requester.user_id, room_id, event_id, int_arg("limit", 10, 0, 1000))
    # The filter applies to events_before, events_after and state, not to the event itself (after
    # the limit, which the spec allows); lazy_load_members keeps the members who sent what is returned.
    keep = _selector(event_filter, room_id)
    before = [e for e in ctx["events_before"] if keep is None or keep(e)]
    after = [e for e in ctx["events_after"] if keep is None or keep(e)]
    state = [e for e in ctx["state"] if keep is None or keep(e)]
    if event_filter and event_filter.get("lazy_load_members"):
        senders = {e.sender for e in (ctx["event"], *before, *after)}
        state = [e for e in state if e.type != "m.room.member" or e.state_key in senders]
    ser = server.reader.serialize
    return {"event": (await ser([ctx["event"]], requester.user_id, requester.device_id))[0],
            "events_before": await ser(before, requester.user_id, requester.device_id),
            "events_after": await ser(after, requester.user_id, requester.device_id),
            "state": await ser(state, requester.user_id, requester.device_id),
            "start": ctx["start"].serialize(), "end": ctx["end"].serialize()}


@bp.get(f"{ROOM}/members")
async def get_members_by_room(room_id: str) -> dict:
    """operationId getMembersByRoom. Spec: "GET /_matrix/client/v3/rooms/{roomId}/members"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    members = await server.reader.members(requester.user_id, room_id, at=request.args.get("at"),
                                          membership=_choice_arg("membership", MEMBERSHIPS),
                                          not_membership=_choice_arg("not_membership", MEMBERSHIPS))
    return {"chunk": await server.reader.serialize(members, requester.user_id, requester.device_id)}


@bp.get(f"{ROOM}/joined_members")
async def get_joined_members_by_room(room_id: str) -> dict:
    """operationId getJoinedMembersByRoom. Spec: "GET /_matrix/client/v3/rooms/{roomId}/joined_members"."""
    server = current_server()
    requester = await server.auth.require_user(request, allow_guest=True)
    return await server.reader.joined_members(requester.user_id, room_id)
