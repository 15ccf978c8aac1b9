"""The identifier grammar checks the room core needs: server names, user, room and event IDs.

Spec: appendices, "Identifier Grammar".
"""
from __future__ import annotations

import re

from pocketserver.rooms.versions import EventIdFormat, RoomVersion

MAX_IDENTIFIER_BYTES = 255
_IPV4 = re.compile(r"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$")
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]{2,45}\]$")
_DNS_NAME = re.compile(r"^[0-9A-Za-z.-]{1,255}$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_URL_SAFE_HASH = re.compile(r"^[A-Za-z0-9_-]{43}$")
_HASH = re.compile(r"^[A-Za-z0-9+/]{43}$")


def is_valid_server_name(server_name: str) -> bool:
    """Whether the string is `hostname [":" port]` with an IPv4, bracketed IPv6 or DNS hostname.

    Spec: appendices, "Server Name".
    """
    host, port = server_name, None
    if server_name.startswith("["):
        end = server_name.find("]")
        if end < 0:
            return False
        host, rest = server_name[: end + 1], server_name[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return False
            port = rest[1:]
    elif ":" in server_name:
        host, port = server_name.rsplit(":", 1)
    if port is not None and not _PORT.match(port):
        return False
    if _IPV6.match(host):
        return True
    if _IPV4.match(host):
        return all(int(part) <= 255 for part in host.split("."))
    return bool(_DNS_NAME.match(host))


def server_name_of(identifier: str) -> str:
    """The domain after the first `:` of a `&localpart:domain` identifier ("" when there is none).

    Spec: appendices, "Common Identifier Format".
    """
    _, sep, domain = identifier.partition(":")
    return domain if sep else ""


def is_valid_user_id(user_id: str) -> bool:
    """Whether the string is a user ID, accepting historical localparts (anything but `:` and NUL).

    Spec: appendices, "User Identifiers" and "Historical User IDs".
    """
    if not user_id.startswith("@") or len(user_id.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return False
    localpart, sep, domain = user_id[1:].partition(":")
    if not sep or "\x00" in localpart:
        return False
    return is_valid_server_name(domain)


def is_valid_room_id(room_id: str, version: RoomVersion) -> bool:
    """Whether the string is a room ID of the form this room version uses.

    Spec: appendices, "Room IDs".
    """
    if not room_id.startswith("!") or len(room_id.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return False
    if version.room_id_is_create_event_id:
        return bool(_URL_SAFE_HASH.match(room_id[1:]))
    localpart, sep, domain = room_id[1:].partition(":")
    return bool(sep) and "\x00" not in localpart and is_valid_server_name(domain)


def is_room_id_of_any_version(room_id: str) -> bool:
    """Whether the string is a room ID of some room version: `!opaque:server_name`, or `!` and the
    create event's URL-safe hash (room version 12). For IDs that come without their room.

    Spec: appendices, "Room IDs".
    """
    if not room_id.startswith("!") or len(room_id.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return False
    localpart, sep, domain = room_id[1:].partition(":")
    if sep:
        return "\x00" not in localpart and is_valid_server_name(domain)
    return bool(_URL_SAFE_HASH.match(localpart))


def is_valid_event_id(event_id: str, version: RoomVersion) -> bool:
    """Whether the string is an event ID of the form this room version uses.

    Spec: appendices, "Event IDs"; rooms/v1, v3 and v4, "Event IDs".
    """
    if not event_id.startswith("$") or len(event_id.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return False
    if version.event_id_format is EventIdFormat.SERVER_ASSIGNED:
        localpart, sep, domain = event_id[1:].partition(":")
        return bool(sep) and "\x00" not in localpart and is_valid_server_name(domain)
    if version.event_id_format is EventIdFormat.BASE64:
        return bool(_HASH.match(event_id[1:]))
    return bool(_URL_SAFE_HASH.match(event_id[1:]))
