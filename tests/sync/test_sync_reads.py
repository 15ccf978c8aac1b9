"""An incremental /sync reads what it needs without queueing for a reader thread.

A long-poll woken by a message answers while the send that woke it is still finishing on the event
loop; every trip to a reader thread would wait for that. So the user's room list, the per-device
sections (one-time key counts, fallback key types, to-device messages) and the unread counts are
index look-ups on the event loop's thread, and the new message comes from the event cache.

Spec: client-server-api, "GET /_matrix/client/v3/sync", "Extensions to /sync", "Receiving notifications".
"""
from __future__ import annotations

from typing import Any

R = "/_matrix/client/v3/rooms"
SYNC = "/_matrix/client/v3/sync"


async def test_incremental_sync_makes_no_trip_to_the_reader_pool(api, monkeypatch) -> None:
    alice, bob = await api.register("alice"), await api.register("bob")
    a, b = alice["access_token"], bob["access_token"]
    room = await api.create_room(a, preset="public_chat")
    assert (await api.call("POST", f"{R}/{room}/join", {}, token=b))[0] == 200
    status, body = await api.call("POST", "/_matrix/client/v3/keys/upload", {"one_time_keys": {"curve25519:K1": "k1"}},
                                  token=b)
    assert status == 200, body
    _, first = await api.call("GET", SYNC, token=b)
    status, _ = await api.call("PUT", f"{R}/{room}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hi bob"},
                               token=a)
    assert status == 200

    reads: list[str] = []
    real_read = api.server.db.read

    async def counted(fn: Any) -> Any:
        reads.append(getattr(fn, "__qualname__", repr(fn)))
        return await real_read(fn)
    monkeypatch.setattr(api.server.db, "read", counted)
    status, body = await api.call("GET", SYNC, token=b, query={"since": first["next_batch"], "timeout": "0"})
    assert status == 200, body
    entry = body["rooms"]["join"][room]
    assert [e["content"]["body"] for e in entry["timeline"]["events"]] == ["hi bob"]
    assert entry["unread_notifications"] == {"notification_count": 1, "highlight_count": 1}   # names bob
    assert body["device_one_time_keys_count"] == {"curve25519": 1, "signed_curve25519": 0}
    assert body["device_unused_fallback_key_types"] == []
    assert body["to_device"]["events"] == []
    assert reads == []
