"""Events sent by local clients: messages, state and redactions, idempotent per transaction ID.

Spec: client-server-api, "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}",
"PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}", "Redactions".
"""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pocketserver.e2ee import check_encryption_state_change
from pocketserver.errors import (BadJson, BadRequest, Forbidden, InvalidParam, MatrixError, NotFound, TooLarge,
                                 UserSuspended)
from pocketserver.rooms.auth_rules import auth_state_for
from pocketserver.roomserver import EventSpec, RoomServer, check_client_content
from pocketserver.roomserver.room_state import RoomState
from pocketserver.storage import events as event_store
from pocketserver.storage import relations as relation_store
from pocketserver.storage import rooms as room_store

MAX_TYPE_BYTES = 255


class BadAlias(MatrixError):
    errcode, status = "M_BAD_ALIAS", 400


def _check_type(event_type: str) -> None:
    if not event_type:
        raise BadJson("Event type must not be empty")
    if len(event_type.encode()) > MAX_TYPE_BYTES:    # Synapse's EventSizeError: 413 M_TOO_LARGE
        raise TooLarge("Event type must be at most 255 bytes")


class DuplicateAnnotation(MatrixError):
    errcode, status = "M_DUPLICATE_ANNOTATION", 400


async def send_event(rs: RoomServer, user_id: str, device_id: str, room_id: str, event_type: str,
                     content: Mapping[str, Any], txn_id: str) -> str:
    """Send a message event once per (device, txn_id); a retry returns the first event ID.

    An event that relates to another (m.relates_to with rel_type and event_id) relates to an event
    of its own room, as Synapse requires (400 otherwise). A second annotation (a reaction) of the
    same type and key on an event by the same user is refused while the first is not redacted.
    Spec: client-server-api, "Forming relationships between events", "Avoiding duplicate annotations".
    """
    _check_type(event_type)
    scope = f"send/{room_id}/{event_type}"
    if event_type == "m.room.redaction":
        # The same rules as /redact, whichever endpoint the redaction comes through (as Synapse).
        target = content.get("redacts")
        if not isinstance(target, str):
            raise BadJson("An m.room.redaction needs `redacts`, the ID of the event it redacts")
        rest = {k: v for k, v in content.items() if k != "redacts"}
        return await _send_once(rs, user_id, device_id, room_id, txn_id,
                                EventSpec(event_type, rest, redacts=target),
                                _may_redact(rs, user_id, room_id, target), scope=scope)
    return await _send_once(rs, user_id, device_id, room_id, txn_id, EventSpec(event_type, content),
                            await _valid_relation(rs, user_id, room_id, event_type, content), scope=scope)


async def _valid_relation(rs: RoomServer, user_id: str, room_id: str, event_type: str,
                          content: Mapping[str, Any]) -> Any:
    """For an event with a relation: the check, under the room's lock, that its parent is an event
    of this room and, for an annotation, that the user has not sent the same one already; None
    for other events. The parent is read before the lock is taken; only a parent not found yet
    (sent a moment ago) or an annotation reads again under it."""
    relation = content.get("m.relates_to")
    if not (isinstance(relation, Mapping) and isinstance(relation.get("rel_type"), str)
            and isinstance(relation.get("event_id"), str)):
        return None
    parent, key = relation["event_id"], relation.get("key")
    annotation = relation["rel_type"] == "m.annotation" and isinstance(key, str)
    found = await event_store.get_event(rs.db, parent)

    async def check(room: RoomState) -> None:
        target = found
        if target is None or annotation:
            await rs.settled(room_id)     # an event (or the same reaction) sent a moment ago may not be committed yet
            target = target or await event_store.get_event(rs.db, parent)
        if target is None:
            raise BadRequest("Can't send relation to unknown event")
        if target.room_id != room_id:
            raise BadRequest("Relations must be in the same room")
        if annotation and await relation_store.has_annotation(rs.db, room_id, parent, user_id, event_type, key):
            raise DuplicateAnnotation("Can't send same reaction twice")
    return check


async def _send_once(rs: RoomServer, user_id: str, device_id: str, room_id: str, txn_id: str,
                     spec: EventSpec, check: Any = None, *, scope: str) -> str:
    """Build and queue one event under the room lock, then wait for its commit outside it.

    A retransmission is the same txn_id on the same path (`scope`); the same txn_id on
    another room, event type or endpoint is a new request. Spec: client-server-api,
    "Transaction identifiers".
    """
    if len(txn_id.encode()) > 255:
        raise BadJson("Transaction ID is too long")
    scoped = f"{scope}/{txn_id}"
    txn = (user_id, device_id, txn_id, scoped)   # the event keeps txn_id; the dedup key is `scoped`
    assert rs.db.writer is not None
    with rs.db.writer.expect():                   # the writer's batch may wait for this event
        async with rs.lock(room_id):
            pending = rs.pending_txn(txn)
            if pending is None:
                earlier = event_store.get_txn_event(rs.db, user_id, device_id, scoped)
                if earlier is not None:
                    return earlier
                room = await rs.require_room(room_id, user_id)
                _require_joined(room, user_id)
                if check is not None:
                    await check(room)
                rs.limits.messages.spend(user_id)     # a retried txn_id above is not counted again
                pdu = rs.build(room.copy(), user_id, spec)
                pending, _ = rs.enqueue(room, [pdu], txn=txn)
    return (await asyncio.shield(pending))[0].event_id


def _require_joined(room: RoomState, user_id: str) -> None:
    if room.membership(user_id) != "join":
        raise Forbidden(f"User {user_id} not in room {room.room_id}")


def check_state_content(event_type: str, state_key: str, content: Mapping[str, Any]) -> None:
    """The checks of a state event's type, key and content that need no room."""
    _check_type(event_type)
    if len(state_key.encode()) > 255:
        raise TooLarge("State key must be at most 255 bytes")
    check_client_content(event_type, content)


async def set_state(rs: RoomServer, user_id: str, room_id: str, event_type: str, state_key: str,
                    content: Mapping[str, Any]) -> str:
    """Set one state entry; sending the same content as the current entry creates no new event.

    Not for m.room.member: membership changes go through roomserver.membership, which checks them
    as the membership endpoints do.
    """
    if event_type == "m.room.member":
        raise ValueError("member events are sent through Membership.set_member_state")
    check_state_content(event_type, state_key, content)
    if event_type == "m.room.canonical_alias":
        await _check_canonical_alias(rs, room_id, content)
    async with rs.lock(room_id):
        room = await rs.require_room(room_id, user_id)
        _require_joined(room, user_id)
        check_encryption_state_change(room.state, event_type, state_key, content)
        current = room.state.get((event_type, state_key))
        if current is not None and current.sender == user_id and dict(current.content) == dict(content):
            return current.event_id
        rs.limits.messages.spend(user_id)
        pdu = rs.build(room.copy(), user_id, EventSpec(event_type, content, state_key))
        persisted, final = await rs.persist(room, [pdu])
        rs.remember(final)
        return persisted[0].event_id


async def _check_canonical_alias(rs: RoomServer, room_id: str, content: Mapping[str, Any]) -> None:
    """Every alias in m.room.canonical_alias must be valid and point to this room.

    Spec: client-server-api, "m.room.canonical_alias" (M_BAD_ALIAS).
    """
    aliases = []
    if "alias" in content and content["alias"] is not None:
        aliases.append(content["alias"])
    alt = content.get("alt_aliases", [])
    if not isinstance(alt, list):
        raise BadJson("alt_aliases must be a list")
    aliases += alt
    for alias in aliases:
        if not isinstance(alias, str) or not alias.startswith("#") or ":" not in alias:
            raise InvalidParam(f"{alias!r} is not a room alias")     # the spec's errcode for bad syntax
        if alias.endswith(":" + rs.server_name) and await room_store.get_alias(rs.db, alias) != room_id:
            raise BadAlias(f"{alias} does not point to this room")


async def redact_event(rs: RoomServer, user_id: str, device_id: str, room_id: str, event_id: str, txn_id: str,
                       reason: Any, *, own_only: bool = False) -> str:
    """Redact an event the sender may redact: their own, or any with the `redact` power level.

    `own_only`: the sender's account is suspended, and may redact only its own events (spec:
    client-server-api, "Account suspension").
    """
    if reason is not None and not isinstance(reason, str):
        raise BadJson("reason must be a string")
    content = {} if reason is None else {"reason": reason}
    return await _send_once(rs, user_id, device_id, room_id, txn_id,
                            EventSpec("m.room.redaction", content, redacts=event_id),
                            _may_redact(rs, user_id, room_id, event_id, own_only=own_only),
                            scope=f"redact/{room_id}/{event_id}")


def _may_redact(rs: RoomServer, user_id: str, room_id: str, event_id: str, *, own_only: bool = False) -> Any:
    """The check, under the room's lock, that the event is in the room and the sender may redact
    it: their own, or any with the `redact` power level; never the room's create event.

    On one server the auth rules' "same domain" clause always holds, so this is where a
    redaction is checked (spec: rooms/v3, "Handling redactions"; client-server-api, "Redactions").
    """
    async def check(room: RoomState) -> None:
        target = await event_store.get_event(rs.db, event_id)
        if target is None or target.room_id != room_id:
            raise NotFound("Event not found")
        if target.event_id == room.create.event_id:
            raise Forbidden("Redacting create events is not permitted")
        if target.sender != user_id:
            if own_only:
                raise UserSuspended("Redacting other users' events is not allowed while the account is suspended")
            auth = auth_state_for(room.state, room.create, room.version)
            if auth.user_power_level(user_id) < auth.power_levels.redact:
                raise Forbidden("You do not have permission to redact this event")
    return check
