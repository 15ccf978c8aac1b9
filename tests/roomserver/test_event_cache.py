"""The events StateCache keeps for /sync: a redaction is never undone by a read from before its commit.

Spec: client-server-api, "Redactions" (clients must see the redacted form once it applied).
"""
from __future__ import annotations

import json
from typing import Any

from pocketserver.roomserver.visibility import StateCache
from pocketserver.storage.events import StoredEvent, _row, _rows


def event(event_id: str, redacted_by: str | None = None, body: str = "hi") -> StoredEvent:
    content = {} if redacted_by else {"body": body}
    return StoredEvent(event_id, "!room:test.local", 5, "m.room.message", None, "@alice:test.local",
                       {"type": "m.room.message", "content": content}, 1, 1, None, redacted_by, None, None)


class NoReads:
    """A database that must not be read: the cache has to answer."""

    async def fetchall(self, sql: str, params: Any = ()) -> list:
        raise AssertionError(f"unexpected read: {sql}")


async def test_known_events_answer_without_a_read() -> None:
    cache = StateCache(NoReads())  # type: ignore[arg-type]
    cache.remember([event("$a"), event("$b")])
    found = await cache.events(["$b", "$a", "$b"])
    assert list(found) == ["$b", "$a"]


def test_a_read_from_before_the_redaction_commits_is_not_kept() -> None:
    cache = StateCache(NoReads())  # type: ignore[arg-type]
    original = event("$a")
    cache.remember([original])
    cache.forget_content("$a")                 # the redaction job ran; its commit may still be ahead
    assert "$a" not in cache.known_events
    cache.remember([event("$a")])              # a reader's snapshot from before the commit
    assert "$a" not in cache.known_events
    redacted = event("$a", redacted_by="$r")
    cache.remember([redacted])                 # read after the commit: final
    assert cache.known_events["$a"] is redacted
    cache.remember([event("$a")])              # an older snapshot arriving late never wins
    assert cache.known_events["$a"] is redacted


def test_rows_reuse_a_known_event_only_with_the_same_redaction() -> None:
    known = {"$a": event("$a")}
    row = ("$a", "!room:test.local", 5, "m.room.message", None, "@alice:test.local",
           json.dumps({"type": "m.room.message", "content": {"body": "hi"}}), 1, 1, None, None, None, None)
    assert _rows([row], known)[0] is known["$a"]
    redacted_row = (*row[:6], json.dumps({"type": "m.room.message", "content": {}}), 1, 1, None, "$r", None, None)
    other_row = ("$b", *row[1:])
    reused, parsed, other = _rows([row, redacted_row, other_row], known)
    assert reused is known["$a"]
    assert parsed is not known["$a"] and parsed.json["content"] == {} and parsed.redacted_by == "$r"
    assert other.event_id == "$b" and other.json == {"type": "m.room.message", "content": {"body": "hi"}}


def test_rows_parse_as_each_row_alone_and_share_their_key_strings() -> None:
    bodies = [{"type": "m.room.message", "content": {"body": f"message {i}", "msgtype": "m.text"},
               "origin_server_ts": 1000 + i, "unsigned": {"age_ts": i}} for i in range(3)]
    rows = [(f"${i}", "!room:test.local", i, "m.room.message", None, "@alice:test.local",
             json.dumps(body, separators=(",", ":")), 1, 1, None, None, None, None) for i, body in enumerate(bodies)]
    events = _rows(rows)
    assert events == [_row(r) for r in rows]
    assert [e.json for e in events] == bodies and [e.event_id for e in events] == ["$0", "$1", "$2"]
    first, second = ({id(k): k for k in e.json} for e in events[:2])
    assert set(first) == set(second)     # the same string objects, made once for the whole read
    assert _rows([]) == []


def test_events_share_their_room_id_sender_and_type_strings() -> None:
    rows = [(f"${i}", "".join(["!room:", "test.local"]), i, "".join(["m.room.", "message"]), None,
             "".join(["@alice:", "test.local"]),
             json.dumps({"room_id": "!room:test.local", "type": "m.room.message", "sender": "@alice:test.local"}),
             1, 1, None, None, None, None) for i in range(2)]
    first, second = _row(rows[0]), _row(rows[1])
    for name in ("room_id", "type", "sender"):
        assert getattr(first, name) is getattr(second, name) is first.json[name] is second.json[name]
    assert first.json == {"room_id": "!room:test.local", "type": "m.room.message", "sender": "@alice:test.local"}
