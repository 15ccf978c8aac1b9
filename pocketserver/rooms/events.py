"""The Pdu record, parsing received PDUs, and building signed local events.

Spec: server-server-api, "PDUs"; rooms/vN, "Event format"; client-server-api, "Size limits".
"""
from __future__ import annotations

import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pocketserver.rooms.canonical import (
    CanonicalJsonError, JsonDict, JsonValue, check_strict_canonical_json, copy_json, encode_canonical_json,
)
from pocketserver.rooms.hashing import compute_event_id, compute_reference_hash, encode_unpadded_base64
from pocketserver.rooms.identifiers import is_valid_event_id, is_valid_room_id, is_valid_user_id
from pocketserver.rooms.signing import SigningKey, sign_event
from pocketserver.rooms.versions import EventIdFormat, RoomVersion

MAX_EVENT_BYTES = 65536
MAX_KEY_BYTES = 255          # `type` and `state_key`
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
StateKey = tuple[str, str]   # (type, state_key)


class EventFormatError(ValueError):
    """The JSON is not a valid PDU for the room version."""


class EventTooLarge(EventFormatError):
    """The event's canonical JSON is over the 65536-byte limit."""


@dataclass(frozen=True, slots=True, eq=False)
class Pdu:
    """Typed access to a PDU's top-level fields; `raw` is exactly what was signed or received.

    Treat every mapping here as read-only. Two Pdus are equal when their event IDs are.
    """

    event_id: str
    room_id: str
    sender: str
    type: str
    state_key: str | None
    content: Mapping[str, Any]
    prev_events: tuple[str, ...]
    auth_events: tuple[str, ...]
    depth: int
    origin_server_ts: int
    raw: Mapping[str, Any]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pdu) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)

    @property
    def is_state(self) -> bool:
        """Whether the event is a state event (it has a `state_key`).

        Spec: pdu_v1 definition (`state_key`).
        """
        return self.state_key is not None

    @property
    def state_tuple(self) -> StateKey:
        """The `(type, state_key)` key of a state event in a state map.

        Spec: rooms/v2, "Definitions" ("Unconflicted state map and conflicted state set").
        """
        if self.state_key is None:
            raise ValueError(f"{self.event_id} is not a state event")
        return (self.type, self.state_key)


def get_redacts(event: Pdu, version: RoomVersion) -> str | None:
    """The ID of the event an m.room.redaction redacts: top-level before v11, in content from v11.

    Spec: rooms/v11, "Moving the redacts property of m.room.redaction events to a content property".
    """
    source = event.content if version.redacts_in_content else event.raw
    redacts = source.get("redacts")
    return redacts if isinstance(redacts, str) else None


def _require(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """Return raw[key] if present with the JSON type `kind`, else raise EventFormatError.

    Spec: server-server-api, "Checks performed on receipt of a PDU" (step 1).
    """
    value = raw.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise EventFormatError(f"`{key}` missing or of the wrong type")
    return value


def _parse_references(raw: Mapping[str, Any], key: str, version: RoomVersion, limit: int) -> tuple[str, ...]:
    """The event IDs in prev_events or auth_events: `[id, hashes]` pairs in v1-2, plain IDs later.

    Spec: rooms/v1 and rooms/v3, "Event format" (pdu_v1, pdu_v3 definitions).
    """
    items = _require(raw, key, list)
    if len(items) > limit:
        raise EventFormatError(f"`{key}` has more than {limit} entries")
    ids = []
    for item in items:
        if version.event_id_format is EventIdFormat.SERVER_ASSIGNED:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], Mapping)):
                raise EventFormatError(f"`{key}` entries must be [event_id, hashes] pairs")
            item = item[0]
        if not isinstance(item, str) or not is_valid_event_id(item, version):
            raise EventFormatError(f"`{key}` holds an invalid event ID")
        ids.append(item)
    return tuple(ids)


def _parse_ids(raw: Mapping[str, Any], version: RoomVersion, event_id: str | None) -> tuple[str, str]:
    """Work out the event ID and room ID: given, computed from the hash, or read from the JSON.

    Spec: rooms/v1, v3 and v4 "Event IDs"; appendices, "Room IDs".
    """
    if event_id is None:
        if version.event_id_format is EventIdFormat.SERVER_ASSIGNED:
            event_id = _require(raw, "event_id", str)
        else:
            event_id = compute_event_id(raw, version)
    if not is_valid_event_id(event_id, version):
        raise EventFormatError("invalid event ID")
    if version.room_id_is_create_event_id and raw.get("type") == "m.room.create" and "room_id" not in raw:
        return event_id, "!" + event_id[1:]
    room_id = _require(raw, "room_id", str)
    if not is_valid_room_id(room_id, version):
        raise EventFormatError("invalid room ID")
    return event_id, room_id


def parse_pdu(raw: JsonDict, version: RoomVersion, event_id: str | None = None, *, owned: bool = False) -> Pdu:
    """Check the structure of a PDU for the room version and return it as a Pdu.

    Pass `event_id` only for events already checked (e.g. loaded from storage); otherwise v3+
    IDs are computed from the reference hash. `owned`: `raw` is a fresh dict nobody else holds,
    so it is kept rather than copied.

    Spec: server-server-api, "Checks performed on receipt of a PDU" (step 1); rooms/vN,
    "Event format"; client-server-api, "Size limits".
    """
    raw = dict(raw) if owned else copy_json(raw)
    if version.strict_canonical_json:
        try:
            check_strict_canonical_json(raw)
        except CanonicalJsonError as exc:
            raise EventFormatError(str(exc)) from None
    try:
        size = len(encode_canonical_json(raw))
    except (TypeError, ValueError) as exc:
        raise EventFormatError(f"not encodable as canonical JSON: {exc}") from None
    if size > MAX_EVENT_BYTES:
        raise EventTooLarge(f"event is {size} bytes, over the {MAX_EVENT_BYTES} limit")
    sender = _require(raw, "sender", str)
    if not is_valid_user_id(sender):
        raise EventFormatError("invalid sender")
    event_type = _require(raw, "type", str)
    if len(event_type.encode("utf-8")) > MAX_KEY_BYTES:
        raise EventFormatError("`type` is over 255 bytes")
    state_key = raw.get("state_key")
    if state_key is not None and (not isinstance(state_key, str) or len(state_key.encode("utf-8")) > MAX_KEY_BYTES):
        raise EventFormatError("`state_key` must be a string of at most 255 bytes")
    content = _require(raw, "content", dict)
    depth = _require(raw, "depth", int)
    if not 0 <= depth <= version.max_depth:
        raise EventFormatError("`depth` out of range")
    origin_server_ts = _require(raw, "origin_server_ts", int)
    hashes = _require(raw, "hashes", dict)
    if not isinstance(hashes.get("sha256"), str):
        raise EventFormatError("`hashes.sha256` missing")
    _require(raw, "signatures", dict)
    if "redacts" in raw and not version.redacts_in_content and not isinstance(raw["redacts"], str):
        raise EventFormatError("`redacts` must be an event ID")
    prev_events = _parse_references(raw, "prev_events", version, MAX_PREV_EVENTS)
    auth_events = _parse_references(raw, "auth_events", version, MAX_AUTH_EVENTS)
    event_id, room_id = _parse_ids(raw, version, event_id)
    return Pdu(
        event_id=event_id, room_id=room_id, sender=sender, type=event_type, state_key=state_key,
        content=content, prev_events=prev_events, auth_events=auth_events, depth=depth,
        origin_server_ts=origin_server_ts, raw=raw,
    )


def pdu_from_checked(raw: JsonDict, version: RoomVersion, event_id: str) -> Pdu:
    """A Pdu for JSON that `parse_pdu` accepted before it was stored, without checking it again.

    Reading a room's state back from storage parsed every state event in full (strict canonical
    JSON, its size, every ID): ~28 µs an event, against ~7 µs for this. `raw` is copied as
    parse_pdu copies it, so the Pdu shares nothing with the caller's cached JSON.
    """
    raw = copy_json(raw)
    pairs = version.event_id_format is EventIdFormat.SERVER_ASSIGNED
    if version.room_id_is_create_event_id and raw.get("type") == "m.room.create" and "room_id" not in raw:
        room_id = "!" + event_id[1:]
    else:
        room_id = raw["room_id"]
    return Pdu(
        event_id=event_id, room_id=room_id, sender=raw["sender"], type=raw["type"], state_key=raw.get("state_key"),
        content=raw["content"],
        prev_events=tuple(item[0] if pairs else item for item in raw["prev_events"]),
        auth_events=tuple(item[0] if pairs else item for item in raw["auth_events"]),
        depth=raw["depth"], origin_server_ts=raw["origin_server_ts"], raw=raw,
    )


def _references(events: Sequence[Pdu], version: RoomVersion) -> list[JsonValue]:
    """The prev_events/auth_events list for new events: IDs, or `[id, {"sha256": ...}]` pairs in v1-2.

    Spec: rooms/v1, "Event format" (pdu_v1 definition).
    """
    if version.event_id_format is EventIdFormat.SERVER_ASSIGNED:
        return [
            [e.event_id, {"sha256": encode_unpadded_base64(compute_reference_hash(e.raw, version))}]
            for e in events
        ]
    return [e.event_id for e in events]


def _random_localpart() -> str:
    """An 18-character alphanumeric opaque ID for server-assigned (v1-2) event IDs.

    Spec: rooms/v1, "Event IDs".
    """
    return "".join(secrets.choice(string.ascii_letters) for _ in range(18))


def build_event(
    *,
    version: RoomVersion,
    room_id: str | None,
    sender: str,
    type: str,
    content: JsonDict,
    prev_events: Sequence[Pdu],
    auth_events: Sequence[Pdu],
    origin_server_ts: int,
    server_name: str,
    signing_key: SigningKey,
    state_key: str | None = None,
    redacts: str | None = None,
    event_id_localpart: str | None = None,
) -> Pdu:
    """Build, hash and sign a local event, then give it its event ID (and, for a v12 create, room ID).

    `room_id` is None only for the m.room.create event of a v12+ room. `redacts` goes top-level
    before v11 and into content from v11. `event_id_localpart` fixes the opaque part of v1-2 IDs.

    Spec: server-server-api, "Adding hashes and signatures to outgoing events"; rooms/vN,
    "Event format" and "Event IDs".
    """
    is_v12_create = type == "m.room.create" and version.room_id_is_create_event_id
    if (room_id is None) != is_v12_create:
        raise ValueError("room_id must be omitted exactly for a v12+ m.room.create event")
    depth = min(max((e.depth for e in prev_events), default=0) + 1, version.max_depth)
    event: dict[str, Any] = {
        "auth_events": _references(auth_events, version),
        "content": dict(content),           # sign_event copies the whole event
        "depth": depth,
        "origin_server_ts": origin_server_ts,
        "prev_events": _references(prev_events, version),
        "sender": sender,
        "type": type,
    }
    if room_id is not None:
        event["room_id"] = room_id
    if state_key is not None:
        event["state_key"] = state_key
    if redacts is not None:
        if version.redacts_in_content:
            event["content"]["redacts"] = redacts
        else:
            event["redacts"] = redacts
    if version.event_id_format is EventIdFormat.SERVER_ASSIGNED:
        event["event_id"] = f"${event_id_localpart or _random_localpart()}:{server_name}"
    signed = sign_event(event, server_name, signing_key, version)
    return parse_pdu(signed, version, owned=True)


def create_event_content(
    version: RoomVersion, creator: str, additional_creators: Sequence[str] = (), **extra: JsonValue
) -> dict[str, JsonValue]:
    """The content of a new m.room.create event: room_version, plus `creator` (v1-10) or `additional_creators` (v12+).

    Spec: client-server-api, "m.room.create"; rooms/v11, "Remove the creator property";
    rooms/v12, "Event format".
    """
    content: dict[str, JsonValue] = {"room_version": version.identifier, **extra}
    if version.creator_in_content:
        content["creator"] = creator
    if additional_creators:
        if not version.additional_creators:
            raise ValueError(f"room version {version.identifier} has no additional creators")
        content["additional_creators"] = list(additional_creators)
    return content
