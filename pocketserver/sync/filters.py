"""Validating filter definitions before they are stored.

Spec: client-server-api, "Filtering" and "POST /_matrix/client/v3/user/{userId}/filter".
"""
from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping
from typing import Any

from pocketserver.errors import BadJson, TooLarge
from pocketserver.rooms.identifiers import is_room_id_of_any_version, is_valid_user_id

MAX_FILTER_LIST = 1000
MAX_LIMIT = 10_000
# Filters are stored for good, so one is held to the size of an event (real clients' are < 1 KiB).
MAX_FILTER_BYTES = 65_536


def _strings(name: str, value: Any) -> None:
    if not isinstance(value, list) or len(value) > MAX_FILTER_LIST or not all(
            isinstance(v, str) for v in value):
        raise BadJson(f"{name} must be a list of strings")


def _ids(name: str, value: Any, valid: Callable[[str], bool] | None, what: str) -> None:
    _strings(name, value)
    for item in value if valid else ():
        if not valid(item):
            raise BadJson(f"{name} holds {item!r}, which is not a {what}")


def _event_filter(name: str, value: Any, *, room_event: bool, check_ids: bool = True) -> None:
    """Raise BadJson unless `value` is an EventFilter (a RoomEventFilter with `room_event`); with
    `check_ids`, its senders and rooms must be user and room IDs (as Synapse checks stored filters)."""
    if not isinstance(value, dict):
        raise BadJson(f"{name} must be an object")
    for key in ("types", "not_types"):
        if key in value:
            _strings(f"{name}.{key}", value[key])
    for key in ("senders", "not_senders"):
        if key in value:
            _ids(f"{name}.{key}", value[key], is_valid_user_id if check_ids else None, "user ID")
    if room_event:
        for key in ("rooms", "not_rooms"):
            if key in value:
                _ids(f"{name}.{key}", value[key], is_room_id_of_any_version if check_ids else None, "room ID")
        for key in ("contains_url", "include_redundant_members", "lazy_load_members",
                    "unread_thread_notifications"):
            if key in value and not isinstance(value[key], bool):
                raise BadJson(f"{name}.{key} must be a boolean")
    if "limit" in value:
        limit = value["limit"]
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT:
            raise BadJson(f"{name}.limit must be an integer between 0 and {MAX_LIMIT}")


def check_filter(definition: Mapping[str, Any]) -> None:
    """Raise BadJson unless `definition` has the shape of a Filter.

    Spec: client-server-api, "Filtering" (the Filter and RoomFilter schemas).
    """
    if len(json.dumps(definition, ensure_ascii=False).encode()) > MAX_FILTER_BYTES:
        raise TooLarge(f"Filter is larger than {MAX_FILTER_BYTES} bytes")
    if "event_fields" in definition:
        _strings("event_fields", definition["event_fields"])
    if "event_format" in definition and definition["event_format"] not in ("client", "federation"):
        raise BadJson("event_format must be 'client' or 'federation'")
    for key in ("presence", "account_data"):
        if key in definition:
            _event_filter(key, definition[key], room_event=False)
    room = definition.get("room")
    if room is None:
        return
    if not isinstance(room, dict):
        raise BadJson("room must be an object")
    for key in ("rooms", "not_rooms"):
        if key in room:
            _ids(f"room.{key}", room[key], is_room_id_of_any_version, "room ID")
    if "include_leave" in room and not isinstance(room["include_leave"], bool):
        raise BadJson("room.include_leave must be a boolean")
    for key in ("timeline", "state", "ephemeral", "account_data"):
        if key in room:
            _event_filter(f"room.{key}", room[key], room_event=True)


def _glob_match(patterns: list[str], value: str) -> bool:
    """Whether `value` matches one of the filter patterns ('*' is a wildcard)."""
    for pattern in patterns:
        if pattern == value or (pattern.endswith("*") and value.startswith(pattern[:-1])):
            return True
        if "*" in pattern and fnmatch.fnmatchcase(value, pattern):
            return True
    return False


def event_matches(event_filter: Mapping[str, Any] | None, *, event_type: str, sender: str,
                  room_id: str | None = None, content: Mapping[str, Any] | None = None) -> bool:
    """Whether an event passes an EventFilter / RoomEventFilter (types, senders, rooms, contains_url).

    Spec: client-server-api, "Filtering" (EventFilter, RoomEventFilter).
    """
    if not event_filter:
        return True
    if "not_types" in event_filter and _glob_match(event_filter["not_types"], event_type):
        return False
    if "types" in event_filter and not _glob_match(event_filter["types"], event_type):
        return False
    if "not_senders" in event_filter and sender in event_filter["not_senders"]:
        return False
    if "senders" in event_filter and sender not in event_filter["senders"]:
        return False
    if room_id is not None:
        if "not_rooms" in event_filter and room_id in event_filter["not_rooms"]:
            return False
        if "rooms" in event_filter and room_id not in event_filter["rooms"]:
            return False
    contains_url = event_filter.get("contains_url")
    if contains_url is not None and content is not None:
        if contains_url != isinstance(content.get("url"), str):
            return False
    return True


def check_room_event_filter(value: Any) -> dict[str, Any]:
    """Validate a RoomEventFilter given inline (e.g. /messages' `filter` parameter); its IDs are
    only compared, never checked (Synapse does not check them there either)."""
    _event_filter("filter", value, room_event=True, check_ids=False)
    return value
