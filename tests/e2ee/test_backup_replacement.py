"""The rule for replacing a backed-up Megolm session with another key for the same session.

Spec: client-server-api, "Server-side key backups" (is_verified, then first_message_index, then forwarded_count).
"""
from __future__ import annotations

import pytest

from pocketserver.e2ee.key_backup import is_better_room_key, parse_room_key, parse_version
from pocketserver.errors import BadJson, MissingParam, NotFound
from pocketserver.storage.key_backup import RoomKey


def key(fmi: int = 0, forwarded: int = 0, verified: bool = False) -> RoomKey:
    return RoomKey(fmi, forwarded, verified, {"ciphertext": "x"})


def test_any_key_beats_none() -> None:
    assert is_better_room_key(key(fmi=100, forwarded=100), None)


@pytest.mark.parametrize(("new", "old", "better"), [
    (key(verified=True, fmi=9, forwarded=9), key(verified=False, fmi=0, forwarded=0), True),
    (key(verified=False, fmi=0, forwarded=0), key(verified=True, fmi=9, forwarded=9), False),
    (key(fmi=1, forwarded=9), key(fmi=2, forwarded=0), True),
    (key(fmi=3, forwarded=0), key(fmi=2, forwarded=9), False),
    (key(fmi=2, forwarded=0), key(fmi=2, forwarded=1), True),
    (key(fmi=2, forwarded=2), key(fmi=2, forwarded=1), False),
    (key(fmi=2, forwarded=1), key(fmi=2, forwarded=1), False),          # equal keeps the existing key
    (key(verified=True, fmi=2, forwarded=1), key(verified=True, fmi=3, forwarded=0), True),
])
def test_replacement_order(new: RoomKey, old: RoomKey, better: bool) -> None:
    assert is_better_room_key(new, old) is better


def test_parse_room_key() -> None:
    body = {"first_message_index": 1, "forwarded_count": 0, "is_verified": True, "session_data": {"a": 1}}
    assert parse_room_key(body) == RoomKey(1, 0, True, {"a": 1})
    for bad in ([], {**body, "first_message_index": True}, {**body, "forwarded_count": 1.5},
                {**body, "is_verified": 1}, {**body, "session_data": None}, {**body, "first_message_index": -2}):
        with pytest.raises(BadJson):
            parse_room_key(bad)


def test_parse_version() -> None:
    assert parse_version("12") == 12
    with pytest.raises(MissingParam):
        parse_version(None)
    for bad in ("abc", "-1", "1.5", "9" * 40):
        with pytest.raises(NotFound):
            parse_version(bad)
