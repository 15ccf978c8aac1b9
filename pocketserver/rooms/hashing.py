"""Unpadded base64, content hashes, reference hashes and hash-derived event IDs.

Spec: server-server-api, "Signing Events"; appendices, "Unpadded Base64".
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from pocketserver.rooms.canonical import JsonDict, JsonValue, encode_canonical_json
from pocketserver.rooms.redaction import redact
from pocketserver.rooms.versions import EventIdFormat, RoomVersion


def encode_unpadded_base64(data: bytes) -> str:
    """Standard base64 without `=` padding.

    Spec: appendices, "Unpadded Base64".
    """
    return base64.b64encode(data).decode("ascii").rstrip("=")


def encode_url_safe_unpadded_base64(data: bytes) -> str:
    """URL-safe base64 (`-` and `_`) without `=` padding.

    Spec: appendices, "URL-safe unpadded Base64".
    """
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def decode_base64(text: str) -> bytes:
    """Decode standard or URL-safe base64, with or without padding; raise ValueError if malformed.

    Spec: appendices, "Unpadded Base64" ("SHOULD accept input with or without padding").
    """
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        raise ValueError("invalid base64 length")
    padded = stripped + "=" * (-len(stripped) % 4)
    altchars = b"-_" if ("-" in stripped or "_" in stripped) else None
    try:
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None


def compute_content_hash(event: Mapping[str, JsonValue]) -> bytes:
    """SHA-256 of the event's canonical JSON without unsigned, signatures and hashes.

    Spec: server-server-api, "Calculating the content hash for an event".
    """
    stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(encode_canonical_json(stripped)).digest()


def compute_reference_hash(event: Mapping[str, JsonValue], version: RoomVersion) -> bytes:
    """SHA-256 of the redacted event's canonical JSON without signatures and unsigned.

    Spec: server-server-api, "Calculating the reference hash for an event".
    """
    redacted = dict(redact(event, version))
    redacted.pop("signatures", None)
    redacted.pop("unsigned", None)
    return hashlib.sha256(encode_canonical_json(redacted)).digest()


def compute_event_id(event: Mapping[str, JsonValue], version: RoomVersion) -> str:
    """The event ID of a v3+ event: `$` plus the (URL-safe for v4+) unpadded base64 reference hash.

    Spec: rooms/v3, "Event IDs"; rooms/v4, "Event IDs".
    """
    reference_hash = compute_reference_hash(event, version)
    if version.event_id_format is EventIdFormat.BASE64:
        return "$" + encode_unpadded_base64(reference_hash)
    if version.event_id_format is EventIdFormat.URL_SAFE_BASE64:
        return "$" + encode_url_safe_unpadded_base64(reference_hash)
    raise ValueError(f"room version {version.identifier} event IDs are assigned by the origin server")


def compute_room_id(create_event: JsonDict, version: RoomVersion) -> str:
    """The v12+ room ID: the create event's ID with the sigil `!` instead of `$`.

    Spec: appendices, "Room IDs"; rooms/v12, "Authorisation rules" (rule 1.2 note).
    """
    if not version.room_id_is_create_event_id:
        raise ValueError(f"room version {version.identifier} room IDs are not derived from the create event")
    return "!" + compute_event_id(create_event, version)[1:]
