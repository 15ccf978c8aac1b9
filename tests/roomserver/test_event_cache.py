"""The events StateCache keeps for /sync: a redaction is never undone by a read from before its commit.

Spec: client-server-api, "Redactions" (clients must see the redacted form once it applied).
"""
from __future__ import annotations

import json
from typing import Any

from pocketserver.roomserver.visibility import StateCache
from pocketserver.storage.events import StoredEvent, _row


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


def test_row_reuses_a_known_event_only_with_the_same_redaction() -> None:
    known = {"$a": event("$a")}
    row = ("$a", "!room:test.local", 5, "m.room.message", None, "@alice:test.local",
           json.dumps({"type": "m.room.message", "content": {"body": "hi"}}), 1, 1, None, None, None, None)
    assert _row(row, known) is known["$a"]
    redacted_row = (*row[:6], json.dumps({"type": "m.room.message", "content": {}}), 1, 1, None, "$r", None, None)
    parsed = _row(redacted_row, known)
    assert parsed is not known["$a"] and parsed.json["content"] == {} and parsed.redacted_by == "$r"
